"""Continuous batching: one worker thread owns the model and decodes every running sequence in shared
forward passes over one KV cache.

Each loop of the worker admits waiting sequences (up to `max_batch` running) into the decode batch, samples
one token for every row, drops the rows that finished or were cancelled, and steps the others in one
forward pass. The batch is `gpt2.sampling.DecodeBatch`, the engine `generate()` runs on, and each sequence
(a request's choice, `jobs.ChoiceRow`) is a `SampleRow` with the request's GenerationConfig and its own
random stream; so a request gets the tokens `generate()` gives it alone, whatever it shares a batch with
(padding moves logits only by float rounding; see `gpt2.sampling.engine`). This module keeps only what a
server adds: the queue, the worker thread, events.

Results go back to the asyncio side as events on the request's queue (`loop.call_soon_threadsafe`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from gpt2.model import GPT
from gpt2.sampling import DecodeBatch
from gpt2.server.jobs import ChoiceRow, Done, Failed, Job, QueueFull, SchedulerClosed, TokenLogprob

log = logging.getLogger("gpt2.server")


@dataclass
class Stats:
    """Counters for /health, tests and benchmarks."""

    submitted: int = 0
    rejected: int = 0
    completed: int = 0
    cancelled: int = 0
    failed: int = 0
    prefills: int = 0
    steps: int = 0  # decode steps (one forward each)
    tokens: int = 0  # tokens sampled
    largest_prefill: int = 0  # most sequences admitted in one prefill
    largest_step: int = 0  # most rows in one decode step
    calls: int = 0  # other model work run by the worker (e.g. /v1/detect)
    batch_sizes: dict[int, int] = field(default_factory=dict)  # rows per decode step -> how many steps

    def snapshot(self) -> dict[str, Any]:
        """The counters as a dict, safe to take while the worker updates them: the copies are single C-level
        operations under the GIL (dataclasses.asdict iterates in Python and can see `batch_sizes` change)."""
        return {**vars(self), "batch_sizes": self.batch_sizes.copy()}


class Scheduler:
    def __init__(self, model: GPT, tokenizer: Any, *, max_batch: int = 8, max_queue: int = 64) -> None:
        if max_batch < 1 or max_queue < 1:
            raise ValueError(f"max_batch and max_queue must be >= 1; got {max_batch} and {max_queue}")
        self.model, self.tokenizer = model.eval(), tokenizer
        self.max_batch, self.max_queue = max_batch, max_queue
        self.stats = Stats()
        self._cond = threading.Condition()
        self._waiting: deque[Job] = deque()
        self._calls: deque[tuple[Callable[[], Any], Future]] = deque()
        self._paused = False
        self._parked = False  # the worker is waiting (paused or idle)
        self._closed = False
        self._thread: threading.Thread | None = None
        self._seconds_per_job = 1.0  # moving average, for Retry-After
        self._batch = DecodeBatch(self.model)  # the running sequences (ChoiceRow rows), owned by the worker

    # ---- the asyncio side ----

    def start(self) -> None:
        with self._cond:
            if self._thread is None:
                self._closed = False
                self._thread = threading.Thread(target=self._run, name="gpt2-scheduler", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def submit(self, job: Job) -> None:
        """Queue a job for the batch, or raise QueueFull / SchedulerClosed."""
        config = job.config.for_model(self.model.config)
        job.pending.extend(ChoiceRow(job, config, p, s, self.tokenizer)
                           for p in range(len(job.prompts)) for s in range(job.n))
        with self._cond:
            self._admit_to_queue()
            self._waiting.append(job)
            self.stats.submitted += 1
            self._cond.notify_all()
        self.start()

    def call(self, fn: Callable[[], Any]) -> Future:
        """Run `fn` on the worker thread between decode steps (the model is never used by two threads)."""
        future: Future = Future()
        with self._cond:
            self._admit_to_queue()
            self._calls.append((fn, future))
            self._cond.notify_all()
        self.start()
        return future

    def cancel(self, job: Job) -> None:
        """Stop a job (its client went away): its sequences leave the batch before the next step."""
        with self._cond:
            if not job.cancelled and job.unfinished > 0:
                job.cancelled = True
                self.stats.cancelled += 1
                self._cond.notify_all()

    def pause(self, timeout: float = 30.0) -> None:
        """Hold the worker before its next step; returns once it is parked (tests use this to line
        requests up deterministically)."""
        with self._cond:
            self._paused = True
            if self._thread is not None and self._thread is not threading.current_thread():
                self._cond.wait_for(lambda: self._parked or self._thread is None, timeout)

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        """Requests not yet (fully) in the batch."""
        return len(self._waiting) + len(self._calls)

    @property
    def running(self) -> int:
        """Sequences in the batch."""
        return len(self._batch.rows)

    def _admit_to_queue(self) -> None:
        if self._closed:
            raise SchedulerClosed("the server is shutting down")
        if self.waiting >= self.max_queue:
            self.stats.rejected += 1
            # the queue drains about max_batch jobs per job duration
            rounds = (self.waiting + self.max_batch - 1) // self.max_batch
            raise QueueFull(max(1, min(60, round(rounds * self._seconds_per_job))))

    # ---- the worker thread ----

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (self._paused or not (self._waiting or self._calls or self._batch.rows)):
                    self._parked = True
                    self._cond.notify_all()
                    self._cond.wait()
                self._parked = False
                if self._closed:
                    break
                calls = list(self._calls)
                self._calls.clear()
                self._drop_cancelled_waiting()
                new = self._admit()
            for fn, future in calls:
                self._call(fn, future)
            try:
                with torch.inference_mode():
                    self._iterate(new)
            except Exception as e:  # a bug or out of memory: fail these requests, keep serving
                log.exception("decode step failed")
                self._fail_batch(new, f"generation failed: {type(e).__name__}: {e}")
        self._shutdown()

    def _call(self, fn: Callable[[], Any], future: Future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        self.stats.calls += 1
        try:
            with torch.inference_mode():
                future.set_result(fn())
        except Exception as e:
            future.set_exception(e)

    def _drop_cancelled_waiting(self) -> None:
        for job in [j for j in self._waiting if j.cancelled]:
            self._waiting.remove(job)

    def _admit(self) -> list[ChoiceRow]:
        """Move waiting sequences into the batch, first come first served, while they fit: at most
        max_batch rows, and the padded cache plus every row's remaining tokens within the context."""
        new: list[ChoiceRow] = []
        rows = self._batch.rows
        length, need = self._batch.length, max((s.remaining for s in rows), default=0)
        while self._waiting and len(rows) + len(new) < self.max_batch:
            job = self._waiting[0]
            row = job.pending[0]
            new_length = max(length, len(row.prompt))
            new_need = max(need, row.remaining)
            if new_length + new_need > self.model.config.n_positions:
                break  # wait until rows finish and their padding is trimmed
            length, need = new_length, new_need
            new.append(job.pending.popleft())
            if not job.pending:
                self._waiting.popleft()
        return new

    def _iterate(self, new: list[ChoiceRow]) -> None:
        batch = self._batch
        for row in batch.drop([i for i, s in enumerate(batch.rows) if s.job.cancelled]):
            self._row_finished(row)
        new = [s for s in new if not s.job.cancelled]
        if new:
            batch.admit(new)
            self.stats.prefills += 1
            self.stats.largest_prefill = max(self.stats.largest_prefill, len(new))
        if not batch.rows:
            return
        tokens = batch.sample()
        for row, token, record in zip(batch.rows, tokens.tolist(), self._logprobs(tokens), strict=True):
            row.add(token, record)
            row.emit()
        self.stats.tokens += len(batch.rows)
        for row in batch.drop_finished():  # before the step: if it fails, these requests are complete all the same
            self._row_finished(row)
        if batch.rows:
            batch.step()
            rows = len(batch.rows)
            self.stats.steps += 1
            self.stats.largest_step = max(self.stats.largest_step, rows)
            self.stats.batch_sizes[rows] = self.stats.batch_sizes.get(rows, 0) + 1

    def _logprobs(self, tokens: torch.Tensor) -> list[TokenLogprob | None]:
        """The chosen token's log-probability and the top alternatives, under the model's own distribution
        (before temperature and filters), for the rows that asked."""
        rows = self._batch.rows
        records: list[TokenLogprob | None] = [None] * len(rows)
        asked = [i for i, s in enumerate(rows) if s.job.logprobs is not None]
        if not asked:
            return records
        index = torch.tensor(asked, device=tokens.device)
        logprobs = F.log_softmax(self._batch.logits[index].float(), dim=-1)
        k = max(rows[i].job.logprobs for i in asked)
        top_values, top_ids = logprobs.topk(k, dim=-1) if k else (logprobs[:, :0], logprobs[:, :0].long())
        name = self.tokenizer.id_to_token_str
        for j, i in enumerate(asked):
            row, token = rows[i], int(tokens[i])
            n = row.job.logprobs
            pairs = zip(top_ids[j, :n].tolist(), top_values[j, :n].tolist(), strict=True)
            top = {name(t): v for t, v in pairs}
            chosen = float(logprobs[j, token])
            top.setdefault(name(token), chosen)  # OpenAI's format always includes the sampled token
            records[i] = TokenLogprob(name(token), chosen, top, len(row.text))
        return records

    def _row_finished(self, row: ChoiceRow) -> None:
        job = row.job
        job.unfinished -= 1
        if job.unfinished == 0 and not job.cancelled:
            job.post(Done(sum(map(len, job.prompts)), job.completion_tokens))
            self.stats.completed += 1
            seconds = time.monotonic() - job.submitted
            self._seconds_per_job = 0.9 * self._seconds_per_job + 0.1 * seconds

    def _fail_batch(self, new: list[ChoiceRow], message: str) -> None:
        jobs = {id(s.job): s.job for s in self._batch.rows + new}
        self._batch = DecodeBatch(self.model)
        with self._cond:
            for job in jobs.values():
                if job in self._waiting:
                    self._waiting.remove(job)
        for job in jobs.values():
            job.unfinished = 0
            job.post(Failed(message))
            self.stats.failed += 1

    def _shutdown(self) -> None:
        with self._cond:
            jobs = {id(s.job): s.job for s in self._batch.rows} | {id(j): j for j in self._waiting}
            self._waiting.clear()
            calls = list(self._calls)
            self._calls.clear()
        self._batch = DecodeBatch(self.model)
        for job in jobs.values():
            job.unfinished = 0
            job.post(Failed("the server is shutting down", status=503))
        for _, future in calls:
            future.cancel()
