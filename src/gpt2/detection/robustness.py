"""`gpt2 detect robustness`: content detectors trained on the base generator's samples, and the watermark,
tested under misuse: a fine-tuned generator, another sampler, edits, and short texts.

Texts come in pairs, as in the demo: a window of human text is cut into a prompt (`prompt_tokens`) and its
continuation (`tokens`, the human text); the generator continues the same prompt (the machine text), once
plainly (what the content detectors see) and once with the watermark, same seeds (what the watermark's
z-test sees). Detectors named by their registry name are trained (or calibrated) on `train_pairs` pairs
drawn with the training sampler (a fifth held for TF-IDF's C) and, for a sampler shift that trains on
another sampler, once more on that one; detectors given as saved directories are used as they are.
Every row reports accuracy at the detector's threshold, AUROC and TPR at 1% FPR, each with a stratified
bootstrap 95% interval (`bootstrap` resamples), in results.json, results.md and robustness.png.

The fine-tune shift trains the generator `steps` steps (the project's Trainer, `init_from` the generator)
on half the documents of a narrow corpus (any text files; default: a package of the standard library,
`topic`) and tests on windows of the other half: human = that corpus's text, machine = the fine-tuned
model's continuations. Zero-shot detectors keep scoring with the base model, as a defender would.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from gpt2.data import prepare, read_documents
from gpt2.data.documents import expand_inputs
from gpt2.data.stdlib_corpus import stdlib_documents, write_jsonl
from gpt2.detection import DetectorError, load_detector, make_detector, metrics
from gpt2.detection.attacks import FineTuned, GenerationShift, SamplerShift, TextAttack, default_attacks
from gpt2.detection.detector import META_FILE, Detector
from gpt2.detection.watermark import WatermarkDetector
from gpt2.errors import DataError
from gpt2.files import atomic_write_text
from gpt2.inference import load_for_inference
from gpt2.output_dataset.spec import parse_sampling
from gpt2.sampling import Watermark, generate
from gpt2.training import TrainConfig, Trainer

WATERMARK = "watermark"


@dataclass
class RobustnessConfig:
    generator: str
    out: str
    detectors: Sequence[str] = ("tfidf", "loglik")
    attacks: Sequence[Any] | None = None  # Attack instances; None: default_attacks
    human: Sequence[str] | None = None  # text files / directories; None: the embedded corpus minus `topic`
    narrow: Sequence[str] | None = None  # the fine-tune corpus; None: the stdlib package `topic`
    topic: str = "email"
    paraphraser: str | None = None
    train_sampling: str = "topk:40"
    train_pairs: int = 200
    test_pairs: int = 100
    prompt_tokens: int = 16
    tokens: int = 128
    finetune_batch: int = 8
    finetune_lr: float = 3e-4
    bootstrap: int = 200
    seed: int = 0
    device: str = "auto"
    watermark: Watermark | None = None  # None: a fresh random key for this run, never written
    detector_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: bool = False


@dataclass
class TestSet:
    label: str
    kind: str
    human: list[str]
    machine: list[str]
    marked: list[str]
    trained_on: str


def topic_documents(topic: str) -> list[str]:
    """The source files of one standard-library package (`email`, `asyncio`, ...): a narrow corpus."""
    root = Path(sysconfig.get_paths()["stdlib"]) / topic
    docs = [p.read_text(encoding="utf-8", errors="replace") for p in sorted(root.rglob("*.py"))
            if "test" not in p.relative_to(root).parts]
    if not docs:
        raise DataError(f"{root}: no Python files; --topic names a standard-library package, e.g. email")
    return docs


def documents(paths: Sequence[str]) -> list[str]:
    return [doc for path in expand_inputs(paths) for doc in read_documents(path)]


def windows(docs: Sequence[str], tokenizer: Any, size: int, count: int, what: str) -> list[list[int]]:
    """`count` windows of `size` tokens, taken round-robin over the documents (each one's first, then each
    one's second, ...) so that long documents do not crowd out the others."""
    per_doc = []
    for doc in docs:
        ids = tokenizer.encode(doc)
        per_doc.append([ids[i : i + size] for i in range(0, len(ids) - size + 1, size)])
    out = [w[rank] for rank in range(max(map(len, per_doc), default=0)) for w in per_doc if rank < len(w)]
    if len(out) < count:
        raise DataError(f"{what}: {len(out)} windows of {size} tokens, {count} needed (fewer pairs, or more text)")
    return out[:count]


class Run:
    """One robustness run: the corpora, generations and detectors of a RobustnessConfig."""

    def __init__(self, cfg: RobustnessConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.model, self.tokenizer = load_for_inference(cfg.generator, cfg.device, "fp32")
        self.watermark = cfg.watermark or Watermark(secrets.token_bytes(32))
        self.attacks = list(cfg.attacks) if cfg.attacks is not None else default_attacks(cfg.paraphraser, cfg.tokens)
        if cfg.prompt_tokens + cfg.tokens >= self.model.config.n_positions:
            raise DataError(f"prompt_tokens + tokens = {cfg.prompt_tokens + cfg.tokens} do not fit the generator's "
                            f"{self.model.config.n_positions}-token context")
        human = documents(cfg.human) if cfg.human else None
        if human is None:
            skip = set(topic_documents(cfg.topic))
            human = [d for d in stdlib_documents(1_500_000) if d not in skip]
        size, n = cfg.prompt_tokens + cfg.tokens, cfg.train_pairs + cfg.test_pairs
        pairs = windows(human, self.tokenizer, size, n, "the human corpus")
        self.train_windows, self.test_windows = pairs[: cfg.train_pairs], pairs[cfg.train_pairs :]
        self.human_train = [self._text(w[cfg.prompt_tokens :]) for w in self.train_windows]
        self.human_test = [self._text(w[cfg.prompt_tokens :]) for w in self.test_windows]

    def _text(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids))

    def continuations(self, model, prompt_windows, sampling: str, seed: int, watermark=None) -> list[str]:
        config = replace(parse_sampling(sampling), max_new_tokens=self.cfg.tokens, seed=seed, eos_token_id=None,
                         watermark=watermark)
        prompts = [w[: self.cfg.prompt_tokens] for w in prompt_windows]
        return [self._text(s.tokens) for s in generate(model, prompts, config)]

    def test_set(self, label: str, kind: str, sampling: str, trained_on: str, model=None, human_windows=None):
        model = model or self.model
        prompts = human_windows or self.test_windows
        human = [self._text(w[self.cfg.prompt_tokens :]) for w in prompts] if human_windows else self.human_test
        seed = self.cfg.seed + 1000
        return TestSet(label, kind, human, self.continuations(model, prompts, sampling, seed),
                       self.continuations(model, prompts, sampling, seed, self.watermark), trained_on)

    # ---- detectors ----

    def train_detectors(self, sampling: str) -> dict[str, Detector | None]:
        """Every detector trained (or calibrated) on the base generator's samples drawn with `sampling`;
        saved ones as they are (None for any sampling but the training one: they cannot be retrained)."""
        cfg = self.cfg
        machine = self.continuations(self.model, self.train_windows, sampling, cfg.seed + 1)
        cut = max(1, len(machine) * 4 // 5)
        out: dict[str, Detector | None] = {}
        for spec in cfg.detectors:
            if Path(spec, META_FILE).is_file():
                out[spec] = load_detector(spec) if sampling == cfg.train_sampling else None
                continue
            options = {"min_df": 2 if cfg.train_pairs < 2000 else 5} if spec == "tfidf" else {"model": cfg.generator}
            det = make_detector(spec, **{**options, **cfg.detector_options.get(spec, {})})
            det.fit(self.human_train[:cut], machine[:cut], valid=(self.human_train[cut:], machine[cut:]))
            out[spec] = det
        return out

    def finetuned(self, steps: int) -> tuple[str, list[list[int]]]:
        """(checkpoint of the generator fine-tuned on half the narrow corpus, test windows of the other half)."""
        cfg = self.cfg
        docs = documents(cfg.narrow) if cfg.narrow else topic_documents(cfg.topic)
        if len(docs) < 2:
            raise DataError("the narrow corpus needs at least two documents (one half trains, one tests)")
        root = self.out / "finetune"
        write_jsonl(iter(docs[0::2]), root / "corpus.jsonl")
        prepare([root / "corpus.jsonl"], cfg.generator, root / "data", val_fraction=0.1, seed=cfg.seed,
                overwrite=True, progress=False)
        seq = min(256, self.model.config.n_positions)
        train = TrainConfig(data=str(root / "data"), out=str(root / "run"), init_from=cfg.generator,
                            max_steps=steps, batch_size=cfg.finetune_batch, seq_len=seq, lr=cfg.finetune_lr,
                            warmup_steps=0, eval_interval=max(1, steps), eval_tokens=4 * seq * cfg.finetune_batch,
                            dtype="fp32", device=None if cfg.device == "auto" else cfg.device, seed=cfg.seed)
        if (root / "run").exists():  # a rerun into the same --out starts the fine-tune over
            shutil.rmtree(root / "run")
        result = Trainer(train, progress=cfg.progress).train()
        test = windows(docs[1::2], self.tokenizer, cfg.prompt_tokens + cfg.tokens, cfg.test_pairs,
                       "the narrow corpus's held-out half")
        return result["checkpoint"], test

    def test_sets(self) -> list[TestSet]:
        cfg = self.cfg
        base = self.test_set(f"none ({cfg.train_sampling}, unedited)", "none", cfg.train_sampling,
                             cfg.train_sampling)
        sets = [base]
        for attack in self.attacks:
            if isinstance(attack, FineTuned):
                checkpoint, test = self.finetuned(attack.steps)
                model, _ = load_for_inference(checkpoint, cfg.device, "fp32")
                sets.append(self.test_set(attack.label, attack.kind, cfg.train_sampling, cfg.train_sampling,
                                          model, test))
            elif isinstance(attack, SamplerShift):
                sets.append(self.test_set(attack.label, attack.kind, attack.test, attack.train))
            elif isinstance(attack, TextAttack):
                edit = (lambda texts, a=attack: a.apply(texts, cfg.seed, self.tokenizer))
                human = edit(base.human) if "human" in attack.sides else base.human
                sets.append(TestSet(attack.label, attack.kind, human, edit(base.machine), edit(base.marked),
                                    cfg.train_sampling))
            elif not isinstance(attack, GenerationShift):
                raise DetectorError(f"{attack!r} is not an attack of gpt2.detection.attacks")
        return sets


def bootstrap(labels: np.ndarray, scores: np.ndarray, threshold: float, resamples: int, seed: int
              ) -> dict[str, Any]:
    """Accuracy, AUROC and TPR at 1% FPR with 95% percentile intervals over stratified resamples (human
    and machine texts resampled separately, so every resample has both)."""
    def measure(y, s):
        return (metrics.accuracy(y, s, threshold), metrics.auroc(y, s), metrics.tpr_at_fpr(y, s, 0.01))

    point = measure(labels, scores)
    rng = np.random.default_rng(seed)
    human, machine = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    draws = []
    for _ in range(resamples):
        idx = np.r_[rng.choice(human, len(human)), rng.choice(machine, len(machine))]
        draws.append(measure(labels[idx], scores[idx]))
    draws = np.array(draws).reshape(-1, 3)
    out: dict[str, Any] = {"n": int(len(labels))}
    for j, name in enumerate(("accuracy", "auroc", "tpr_at_1pct_fpr")):
        out[name] = float(point[j])
        out[f"{name}_ci"] = ([float(np.percentile(draws[:, j], 2.5)), float(np.percentile(draws[:, j], 97.5))]
                             if resamples else None)
    return out


def score_set(test: TestSet, detectors: dict[str, Detector | None], watermark: WatermarkDetector,
              cfg: RobustnessConfig) -> list[dict[str, Any]]:
    rows = []
    labels = np.r_[np.zeros(len(test.human)), np.ones(len(test.machine))].astype(np.int64)
    for name, det in [*detectors.items(), (WATERMARK, watermark)]:
        row: dict[str, Any] = {"shift": test.label, "kind": test.kind, "detector": name,
                               "trained_on": None if name == WATERMARK else test.trained_on}
        if det is None:
            rows.append({**row, "skipped": "a saved detector cannot be retrained on this sampler"})
            continue
        machine = test.marked if name == WATERMARK else test.machine
        scores = np.asarray(det.score(list(test.human) + list(machine)), dtype=np.float64)
        rows.append({**row, **bootstrap(labels, scores, det.threshold, cfg.bootstrap, cfg.seed)})
    return rows


def run_robustness(cfg: RobustnessConfig) -> dict[str, Any]:
    """Every shift x every detector (and the watermark); writes results.json, results.md, robustness.png."""
    run = Run(cfg)
    tests = run.test_sets()
    trained = {s: run.train_detectors(s) for s in dict.fromkeys(t.trained_on for t in tests)}
    wm = run.watermark
    watermark = WatermarkDetector(cfg.generator, key=wm.key, gamma=wm.gamma, context_width=wm.context_width,
                                  seeding=wm.seeding)
    rows = [r for t in tests for r in score_set(t, trained[t.trained_on], watermark, cfg)]
    result = {"generator": cfg.generator, "detectors": [*cfg.detectors, WATERMARK],
              "watermark": wm.describe(), "train_sampling": cfg.train_sampling, "train_pairs": cfg.train_pairs,
              "test_pairs": cfg.test_pairs, "prompt_tokens": cfg.prompt_tokens, "tokens": cfg.tokens,
              "bootstrap": cfg.bootstrap, "seed": cfg.seed, "rows": rows}
    write_results(result, cfg.out)
    return result


def _cell(row: dict[str, Any]) -> str:
    if "skipped" in row:
        return "-"
    lo, hi = row["auroc_ci"] or (float("nan"), float("nan"))
    acc, tpr = 100 * row["accuracy"], 100 * row["tpr_at_1pct_fpr"]
    return f"{row['auroc']:.3f} [{lo:.2f}, {hi:.2f}] · {acc:.1f}% · {tpr:.0f}%"


def markdown(result: dict[str, Any]) -> str:
    detectors = result["detectors"]
    shifts = list(dict.fromkeys(r["shift"] for r in result["rows"]))
    cells = {(r["shift"], r["detector"]): _cell(r) for r in result["rows"]}
    lines = [f"Generator `{result['generator']}`; detectors trained on its {result['train_sampling']} samples "
             f"({result['train_pairs']} pairs), tested on {result['test_pairs']} pairs of {result['tokens']}-token "
             f"texts. Cells: AUROC [95% bootstrap CI] · accuracy · TPR at 1% FPR. Watermark: z-test "
             f"(gamma {result['watermark']['gamma']}, delta {result['watermark']['delta']}, z > 4).", "",
             "| shift | " + " | ".join(detectors) + " |", "| --- |" + " --- |" * len(detectors)]
    lines += [f"| {s} | " + " | ".join(cells.get((s, d), "-") for d in detectors) + " |" for s in shifts]
    return "\n".join(lines) + "\n"


def write_results(result: dict[str, Any], out: str | os.PathLike) -> dict[str, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "md": out / "results.md", "png": out / "robustness.png"}
    atomic_write_text(paths["json"], json.dumps(result, indent=2) + "\n")
    atomic_write_text(paths["md"], "# Detection under misuse\n\n" + markdown(result))
    plot(result, paths["png"])
    return paths


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib  # lazy: slow to import, and only reports draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shifts = list(dict.fromkeys(r["shift"] for r in result["rows"]))
    detectors = result["detectors"]
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(shifts) * len(detectors) / 2), 5))
    width = 0.8 / len(detectors)
    for j, name in enumerate(detectors):
        rows = {r["shift"]: r for r in result["rows"] if r["detector"] == name and "skipped" not in r}
        x = [i + j * width for i, s in enumerate(shifts) if s in rows]
        y = [rows[s]["auroc"] for s in shifts if s in rows]
        err = [[rows[s]["auroc"] - (rows[s]["auroc_ci"] or [rows[s]["auroc"]] * 2)[0] for s in shifts if s in rows],
               [(rows[s]["auroc_ci"] or [rows[s]["auroc"]] * 2)[1] - rows[s]["auroc"] for s in shifts if s in rows]]
        ax.bar(x, y, width, yerr=err, capsize=2, label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(shifts))], shifts, rotation=60, ha="right", fontsize=7)
    ax.axhline(0.5, color="grey", lw=1, ls=":")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("AUROC (95% bootstrap CI)")
    ax.set_title("Detection under misuse")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
