"""The HTTP API against the real app and a tiny random model: results equal `generate()` with the same seed
(plain, streamed, batched with other requests, joining a running batch), logprobs equal the model's
log-softmax, GLTR ranks equal a direct count, and every invalid input gets the right 4xx."""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import torch
import torch.nn.functional as F
import uvicorn
from fastapi.testclient import TestClient

from conftest import serve_in_thread
from gpt2.config import GPTConfig
from gpt2.model import GPT
from gpt2.sampling import generate
from gpt2.scoring import rolling_windows
from gpt2.server import create_app
from gpt2.server.about import describe_detector, short_model_name

CONTEXT = 128  # the nano preset's
LIMIT = 64  # --max-tokens-limit in these tests


@pytest.fixture(scope="module")
def tokenizer():
    from gpt2.tokenizer import Tokenizer

    text = "hello world. the quick brown fox jumps over the lazy dog; hello again, world! " * 20
    return Tokenizer.train([text], vocab_size=300)


def tiny_model(tokenizer, seed: int = 0, cls=GPT) -> GPT:
    torch.manual_seed(seed)
    model = cls(GPTConfig.from_preset("nano", vocab_size=tokenizer.vocab_size)).eval()
    with torch.no_grad():  # peakier distributions, so that top-k and top-p change what is sampled
        for p in model.parameters():
            p.mul_(3.0)
    return model


@pytest.fixture(scope="module")
def model(tokenizer):
    return tiny_model(tokenizer)


@pytest.fixture
def make_client(model, tokenizer):
    """A TestClient (lifespan running) over a fresh app; keyword arguments go to create_app."""
    clients = []

    def make(**options):
        options = {"model_name": "tiny", "max_tokens_limit": LIMIT, **options}
        client = TestClient(create_app(options.pop("model", model), tokenizer, **options))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.app.state.scheduler.resume()
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


def reference(model, tokenizer, prompt, **options):
    """What generate() gives for a request, in the API's terms (text, finish_reason)."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    samples = generate(model, [tokenizer.encode(p) for p in prompts], tokenizer=tokenizer, **options)
    return [(s.text, {"eos": "stop"}.get(s.finish_reason, s.finish_reason)) for s in samples]


def texts(response) -> list[tuple[str, str]]:
    body = response.json()
    assert [c["index"] for c in body["choices"]] == list(range(len(body["choices"])))
    return [(c["text"], c["finish_reason"]) for c in body["choices"]]


def sse(response) -> tuple[list[dict], bool]:
    """The chunks of a server-sent event stream, and whether it ended with [DONE]."""
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    done = events[-1] == "data: [DONE]"
    return [json.loads(e[6:]) for e in events if e != "data: [DONE]"], done


def joined(chunks: list[dict], count: int) -> list[tuple[str, str]]:
    out = [["", None] for _ in range(count)]
    for chunk in chunks:
        for c in chunk["choices"]:
            assert out[c["index"]][1] is None, "text after the finishing chunk"
            out[c["index"]][0] += c["text"]
            out[c["index"]][1] = c["finish_reason"]
    return [tuple(x) for x in out]


SAMPLING = [
    dict(temperature=1.0),
    dict(temperature=0.8, top_k=20),
    dict(temperature=1.2, top_p=0.9),
    dict(temperature=0.0),
]


@pytest.mark.parametrize("options", SAMPLING)
def test_completion_equals_generate(client, model, tokenizer, options):
    body = {"prompt": "hello world", "max_tokens": 40, "seed": 11, "n": 3, **options}
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200, r.text
    ref = reference(model, tokenizer, "hello world", max_new_tokens=40, seed=11, num_samples=3, **options)
    assert texts(r) == ref
    data = r.json()
    assert data["object"] == "text_completion" and data["model"] == "tiny" and data["id"].startswith("cmpl-")
    assert isinstance(data["created"], int) and data["seed"] == 11
    prompt_tokens = len(tokenizer.encode("hello world"))
    usage = data["usage"]
    assert usage["prompt_tokens"] == prompt_tokens
    assert usage["total_tokens"] == prompt_tokens + usage["completion_tokens"]
    assert all(c["logprobs"] is None for c in data["choices"])


@pytest.mark.parametrize("options", SAMPLING[1:3])
def test_stream_equals_generate(client, model, tokenizer, options):
    body = {"prompt": "the quick", "max_tokens": 30, "seed": 5, "n": 2, "stream": True, **options}
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 200
    chunks, done = sse(r)
    assert done and len(chunks) > 2
    assert {c["id"] for c in chunks} == {chunks[0]["id"]} and chunks[0]["object"] == "text_completion"
    ref = reference(model, tokenizer, "the quick", max_new_tokens=30, seed=5, num_samples=2, **options)
    assert joined(chunks, 2) == ref


def test_list_prompts_and_token_id_prompts(client, model, tokenizer):
    prompts = ["hello", "the lazy dog", "world"]
    options = {"max_tokens": 20, "seed": 3, "top_k": 30}
    r = client.post("/v1/completions", json={"prompt": prompts, "n": 2, **options})
    ref = reference(model, tokenizer, prompts, max_new_tokens=20, seed=3, num_samples=2, top_k=30)
    assert texts(r) == ref
    assert r.json()["usage"]["prompt_tokens"] == sum(len(tokenizer.encode(p)) for p in prompts)
    ids = [tokenizer.encode(p) for p in prompts]
    by_ids = client.post("/v1/completions", json={"prompt": ids, "n": 2, **options})
    assert texts(by_ids) == texts(r)
    one = client.post("/v1/completions", json={"prompt": ids[1], **options})
    assert texts(one) == texts(r)[2:3]


def test_empty_prompt_is_unconditional(client, model, tokenizer):
    r = client.post("/v1/completions", json={"prompt": "", "max_tokens": 15, "seed": 2})
    samples = generate(model, [], max_new_tokens=15, seed=2, tokenizer=tokenizer)  # starts from <|endoftext|>
    assert texts(r)[0][0] == samples[0].text
    assert r.json()["usage"]["prompt_tokens"] == 1


def test_stop_strings(client, model, tokenizer):
    free = client.post("/v1/completions", json={"prompt": "hello", "max_tokens": 40, "seed": 9, "top_k": 10})
    text = free.json()["choices"][0]["text"]
    stop = next(text[i:i + 2] for i in range(5, len(text) - 2) if "\ufffd" not in text[i:i + 2])
    body = {"prompt": "hello", "max_tokens": 40, "seed": 9, "top_k": 10, "stop": [stop, "zzzz"]}
    r = client.post("/v1/completions", json=body)
    ref = reference(model, tokenizer, "hello", max_new_tokens=40, seed=9, top_k=10, stop=[stop, "zzzz"])
    assert texts(r) == ref
    assert ref[0][1] == "stop" and ref[0][0] == text[: text.index(stop)]
    chunks, _ = sse(client.post("/v1/completions", json={**body, "stream": True}))
    assert joined(chunks, 1) == ref
    assert stop not in "".join(c["choices"][0]["text"] for c in chunks)


def test_logprobs_equal_the_models_log_softmax(client, model, tokenizer):
    prompt = "the lazy"
    body = {"prompt": prompt, "max_tokens": 25, "seed": 4, "temperature": 0.9, "logprobs": 3}
    r = client.post("/v1/completions", json=body)
    choice = r.json()["choices"][0]
    (sample,) = generate(model, tokenizer.encode(prompt), max_new_tokens=25, seed=4, temperature=0.9,
                         tokenizer=tokenizer)
    lp = choice["logprobs"]
    assert set(lp) == {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
    assert len(lp["tokens"]) == len(sample.tokens)
    ids = tokenizer.encode(prompt) + sample.tokens
    with torch.no_grad():
        logprobs = F.log_softmax(model(torch.tensor([ids]))[0][0].float(), dim=-1)
    start = len(tokenizer.encode(prompt)) - 1
    name = tokenizer.id_to_token_str
    for i, token in enumerate(sample.tokens):
        row = logprobs[start + i]
        assert lp["tokens"][i] == name(token)
        assert lp["token_logprobs"][i] == pytest.approx(float(row[token]), abs=1e-4)
        top = lp["top_logprobs"][i]
        values, top_ids = row.topk(3)
        names = [name(t) for t in top_ids.tolist()]
        for n, v in zip(names, values.tolist(), strict=True):
            if names.count(n) == 1:  # two tokens can print alike (partial UTF-8 -> U+FFFD)
                assert top[n] == pytest.approx(v, abs=1e-4)
        assert set(names) <= set(top) and len(top) <= 4  # the sampled token is always there
    offsets = lp["text_offset"]
    assert offsets[0] == len(prompt) and offsets == sorted(offsets)
    assert offsets[-1] <= len(prompt) + len(choice["text"])
    chunks, _ = sse(client.post("/v1/completions", json={**body, "stream": True}))
    streamed = [t for c in chunks for t in c["choices"][0]["logprobs"]["token_logprobs"]]
    assert streamed == lp["token_logprobs"]


INVALID = [
    ({}, "prompt"),
    ({"prompt": 5}, "prompt"),
    ({"prompt": None}, "prompt"),
    ({"prompt": []}, "prompt"),
    ({"prompt": [1, "a"]}, "prompt"),
    ({"prompt": [[1], "a"]}, "prompt"),
    ({"prompt": ["x"] * 33}, "prompt"),
    ({"prompt": "x", "max_tokens": 0}, "max_tokens"),
    ({"prompt": "x", "max_tokens": -5}, "max_tokens"),
    ({"prompt": "x", "max_tokens": "10"}, "max_tokens"),
    ({"prompt": "x", "max_tokens": 1.5}, "max_tokens"),
    ({"prompt": "x", "temperature": -0.1}, "temperature"),
    ({"prompt": "x", "temperature": 2.5}, "temperature"),
    ({"prompt": "x", "temperature": "hot"}, "temperature"),
    ({"prompt": "x", "top_p": 0}, "top_p"),
    ({"prompt": "x", "top_p": 1.5}, "top_p"),
    ({"prompt": "x", "top_k": -1}, "top_k"),
    ({"prompt": "x", "top_k": 2.5}, "top_k"),
    ({"prompt": "x", "n": 0}, "n"),
    ({"prompt": "x", "n": 17}, "n"),
    ({"prompt": "x", "n": True}, "n"),
    ({"prompt": "x", "stop": 5}, "stop"),
    ({"prompt": "x", "stop": [""]}, "stop"),
    ({"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"prompt": "x", "seed": -1}, "seed"),
    ({"prompt": "x", "seed": "1"}, "seed"),
    ({"prompt": "x", "stream": "yes"}, "stream"),
    ({"prompt": "x", "logprobs": 6}, "logprobs"),
    ({"prompt": "x", "logprobs": -1}, "logprobs"),
    ({"prompt": "x", "echo": True}, "echo"),
    ({"prompt": "x", "presence_penalty": 0.5}, "presence_penalty"),
    ({"prompt": "x", "best_of": 3}, "best_of"),
]


@pytest.mark.parametrize(("body", "field"), INVALID, ids=[f"{f}-{i}" for i, (_, f) in enumerate(INVALID)])
def test_invalid_fields_get_422_naming_the_field(client, body, field):
    r = client.post("/v1/completions", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["param"] == field and field in error["message"]
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"prompt": "x", "max_tokens": LIMIT + 1}, 400, [f"at most {LIMIT}", "max_tokens"]),
    ({"prompt": "hello " * 200, "max_tokens": 4}, 400, [f"reads at most {CONTEXT} tokens", "the prompt is"]),
    ({"prompt": "hello " * 70, "max_tokens": LIMIT}, 400, [f"at most {CONTEXT}", "lower max_tokens"]),
    ({"prompt": ["hi", "hello " * 200], "max_tokens": 4}, 400, ["prompt 1 is"]),
    ({"prompt": [[1, 2, 99999]]}, 400, ["outside the vocabulary"]),
])
def test_requests_beyond_the_limits_get_400(client, body, status, words):
    r = client.post("/v1/completions", json=body)
    assert r.status_code == status, r.text
    assert all(w in r.json()["error"]["message"] for w in words), r.json()


def test_malformed_bodies(client):
    json_type = {"content-type": "application/json"}
    bad_json = client.post("/v1/completions", content=b'{"prompt": ', headers=json_type)
    assert bad_json.status_code == 422 and "not valid JSON" in bad_json.json()["error"]["message"]
    not_object = client.post("/v1/completions", json=["prompt"])
    assert not_object.status_code == 422
    huge = client.post("/v1/completions", content=b"x" * (3 * 1024 * 1024), headers=json_type)
    assert huge.status_code == 413
    chunks = (b"x" * 65536 for _ in range(48))  # no Content-Length: sent chunked
    assert client.post("/v1/completions", content=chunks, headers=json_type).status_code == 413
    small = (part for part in (b'{"prompt": "hi", ', b'"max_tokens": 2}'))
    assert client.post("/v1/completions", content=small, headers=json_type).status_code == 200
    for body in ({}, {"text": ""}, {"text": 5}, {"text": "hi", "alternatives": 50}):
        assert client.post("/v1/detect", json=body).status_code == 422, body
    assert client.get("/v1/completions").status_code == 405


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_queue_bound_gives_429_with_retry_after(make_client):
    client = make_client(max_queue=2, max_batch=1)
    scheduler = client.app.state.scheduler
    scheduler.pause()
    body = {"prompt": "hello", "max_tokens": 5, "seed": 1}
    with ThreadPoolExecutor(2) as pool:
        waiting = [pool.submit(client.post, "/v1/completions", json=body) for _ in range(2)]
        wait_for(lambda: scheduler.waiting == 2)
        for r in (client.post("/v1/completions", json=body),
                  client.post("/v1/completions", json={**body, "stream": True}),
                  client.post("/v1/detect", json={"text": "hello"})):
            assert r.status_code == 429, r.text
            assert int(r.headers["Retry-After"]) >= 1
            assert r.json()["error"]["code"] == "queue_full"
        scheduler.resume()
        assert [f.result().status_code for f in waiting] == [200, 200]
    assert scheduler.stats.rejected == 3
    assert client.post("/v1/completions", json=body).status_code == 200  # and it recovers


def test_concurrent_requests_decode_in_one_batch(make_client, model, tokenizer):
    client = make_client(max_batch=8)
    scheduler = client.app.state.scheduler
    requests = [
        {"prompt": "hello", "max_tokens": 30, "seed": 1, "temperature": 0.7},
        {"prompt": "the quick brown fox", "max_tokens": 20, "seed": 2, "top_k": 5, "n": 2},
        {"prompt": "world", "max_tokens": 25, "seed": 3, "top_p": 0.8, "stop": "o"},
        {"prompt": "a", "max_tokens": 12, "temperature": 0},
    ]
    scheduler.pause()
    with ThreadPoolExecutor(len(requests)) as pool:
        futures = [pool.submit(client.post, "/v1/completions", json=body) for body in requests]
        wait_for(lambda: scheduler.waiting == len(requests))
        scheduler.resume()
        responses = [f.result() for f in futures]
    stats = scheduler.stats
    assert stats.prefills == 1 and stats.largest_prefill == 5  # all five sequences admitted together
    assert stats.largest_step == 5 and max(stats.batch_sizes) == 5
    for body, r in zip(requests, responses, strict=True):
        options = {k: v for k, v in body.items() if k not in ("prompt", "max_tokens", "n")}
        ref = reference(model, tokenizer, body["prompt"], max_new_tokens=body["max_tokens"],
                        num_samples=body.get("n", 1), **options)
        assert texts(r) == ref, body


class FailingGPT(GPT):
    """Fails its second one-token decoding step (an out-of-memory, say)."""

    decode_steps = 0

    def forward(self, idx, *args, **kwargs):
        if idx.size(1) == 1:
            self.decode_steps += 1
            if self.decode_steps == 2:
                raise RuntimeError("boom")
        return super().forward(idx, *args, **kwargs)


def test_a_failed_step_still_completes_the_requests_that_had_finished(make_client, model, tokenizer):
    """The short request's rows finish on the step before the failure: it is answered, not left waiting."""
    failing = FailingGPT(model.config)
    failing.load_state_dict(model.state_dict())
    client = make_client(model=failing.eval(), max_batch=4)
    scheduler = client.app.state.scheduler
    scheduler.pause()
    with ThreadPoolExecutor(2) as pool:
        short = pool.submit(client.post, "/v1/completions", json={"prompt": "hello", "max_tokens": 2, "seed": 1})
        long = pool.submit(client.post, "/v1/completions", json={"prompt": "world", "max_tokens": 20, "seed": 2})
        wait_for(lambda: scheduler.waiting == 2)
        scheduler.resume()
        short, long = short.result(timeout=30), long.result(timeout=30)
    assert short.status_code == 200 and short.json()["usage"]["completion_tokens"] == 2
    assert long.status_code == 500 and "generation failed: RuntimeError: boom" in long.json()["error"]["message"]
    assert scheduler.stats.failed == 1 and scheduler.stats.completed == 1


def test_a_request_joins_a_running_batch(make_client, model, tokenizer):
    client = make_client(max_batch=4)
    scheduler = client.app.state.scheduler
    long = {"prompt": "hello world. the quick brown fox", "max_tokens": 60, "seed": 8, "top_k": 40}
    short = {"prompt": "dog", "max_tokens": 20, "seed": 9, "temperature": 0.5}
    scheduler.pause()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/v1/completions", json=long)
        wait_for(lambda: scheduler.waiting == 1)
        scheduler.resume()
        wait_for(lambda: scheduler.stats.steps >= 5)
        scheduler.pause()
        assert scheduler.running == 1
        second = pool.submit(client.post, "/v1/completions", json={**short, "stream": True})
        wait_for(lambda: scheduler.waiting == 1)
        scheduler.resume()
        r1, r2 = first.result(), second.result()
    assert scheduler.stats.prefills == 2 and 2 in scheduler.stats.batch_sizes  # decoded side by side
    ref_long = reference(model, tokenizer, long["prompt"], max_new_tokens=60, seed=8, top_k=40)
    ref_short = reference(model, tokenizer, "dog", max_new_tokens=20, seed=9, temperature=0.5)
    assert texts(r1) == ref_long
    assert joined(sse(r2)[0], 1) == ref_short


def test_packed_model_with_a_growing_and_trimmed_cache_serves_as_generate(make_client, model, tokenizer,
                                                                          monkeypatch):
    from gpt2.model import KVCache
    from gpt2.packing import pack_for_cpu

    calls = {"_grow": 0, "drop_front": 0}
    for name in calls:
        original = getattr(KVCache, name)

        def counted(self, *args, _original=original, _name=name):
            calls[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(KVCache, name, counted)
    packed = pack_for_cpu(copy.deepcopy(model))
    client = make_client(model=packed, max_batch=4)
    scheduler = client.app.state.scheduler
    # the long prompt finishes first, leaving the short one's left padding to trim; the short one then runs
    # past the 64 positions its merged cache started with
    requests = [{"prompt": "hello world. the quick brown fox jumps over the lazy dog", "max_tokens": 8,
                 "seed": 4, "top_k": 40},
                {"prompt": "dog", "max_tokens": LIMIT, "seed": 5, "temperature": 0.7}]
    scheduler.pause()
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(client.post, "/v1/completions", json=body) for body in requests]
        wait_for(lambda: scheduler.waiting == 2)
        scheduler.resume()
        responses = [f.result() for f in futures]
    for body, r in zip(requests, responses, strict=True):
        options = {k: v for k, v in body.items() if k not in ("prompt", "max_tokens")}
        assert texts(r) == reference(packed, tokenizer, body["prompt"], max_new_tokens=body["max_tokens"],
                                     **options), body
    assert responses[1].json()["usage"]["completion_tokens"] > 50  # long enough to grow the cache
    assert calls["drop_front"] >= 1 and calls["_grow"] >= 1, calls


def test_more_sequences_than_the_batch_holds(make_client, model, tokenizer):
    client = make_client(max_batch=2)
    prompts = ["hello", "world"]
    r = client.post("/v1/completions", json={"prompt": prompts, "n": 3, "max_tokens": 10, "seed": 1})
    assert texts(r) == reference(model, tokenizer, prompts, max_new_tokens=10, seed=1, num_samples=3)
    assert client.app.state.scheduler.stats.largest_step <= 2


def test_api_key(make_client):
    client = make_client(api_key="s3cret")
    body = {"prompt": "hi", "max_tokens": 2}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
        routes = (("post", "/v1/completions", body), ("post", "/v1/detect", {"text": "hi"}),
                  ("get", "/v1/models", None))
        for method, path, payload in routes:
            r = client.request(method.upper(), path, json=payload, headers=headers)
            assert r.status_code == 401, (path, headers)
            assert r.headers["WWW-Authenticate"] == "Bearer"
            assert r.json()["error"]["code"] == "invalid_api_key"
    good = {"Authorization": "Bearer s3cret"}
    assert client.post("/v1/completions", json=body, headers=good).status_code == 200
    assert client.post("/v1/detect", json={"text": "hi"}, headers=good).status_code == 200
    assert client.get("/v1/models", headers=good).status_code == 200
    assert client.get("/health").json()["auth_required"] is True  # the page asks for the key
    assert client.get("/").status_code == 200


class FakeDetector:
    name = "fake"

    def score(self, texts):
        return [0.25 for _ in texts]


def test_detect_ranks_equal_a_direct_computation(make_client, model, tokenizer):
    client = make_client(detector=FakeDetector())
    text = "hello world, the quick brown fox. Zebra! é"
    r = client.post("/v1/detect", json={"text": text, "alternatives": 4})
    assert r.status_code == 200, r.text
    data = r.json()
    ids = [tokenizer.eot_token_id, *tokenizer.encode(text)]
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0][0, :-1].float()
    tokens = data["tokens"]
    assert [t["id"] for t in tokens] == ids[1:]
    for i, t in enumerate(tokens):
        target = ids[i + 1]
        assert t["rank"] == 1 + int((logits[i] > logits[i, target]).sum())  # 1 = the model's first choice
        assert t["prob"] == pytest.approx(float(logits[i].softmax(-1)[target]), rel=1e-4)
        assert t["bucket"] == next(b for b, n in (("top10", 10), ("top100", 100), ("top1000", 1000),
                                                  ("rest", 10**9)) if t["rank"] <= n)
        top = logits[i].softmax(-1).topk(4)
        assert [a["id"] for a in t["top"]] == top.indices.tolist()
    assert "".join(t["text"] for t in tokens) == text  # pieces join to the text, characters unsplit
    assert sum(data["counts"].values()) == len(tokens)
    assert sum(data["fractions"].values()) == pytest.approx(1.0)
    assert data["fractions"]["top100"] == data["counts"]["top100"] / len(tokens)
    detector = data["detector"]
    assert (detector["name"], detector["score"], detector["windows"]) == ("fake", 0.25, [
        {"start": 0, "end": len(tokens), "score": 0.25}])
    assert detector["accuracy"] is None and detector["trained_on"] is None  # nothing measured: none claimed
    assert data["window"] == {"context": CONTEXT, "stride": CONTEXT // 2, "windows": 1}


def test_models_health_schema_and_page(client):
    models = client.get("/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "tiny"
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["context_length"] == CONTEXT and health["detector"] is None
    schema = client.get("/openapi.json").json()
    assert {"/v1/completions", "/v1/detect", "/v1/tokenize", "/v1/models", "/health"} <= set(schema["paths"])
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "Check text" in page.text
    scripts = [f"/static/{name}.js" for name in ("app", "common", "write", "check", "tokens")]
    for asset in (*scripts, "/static/style.css", "/static/favicon.svg", "/favicon.ico"):
        assert client.get(asset).status_code == 200, asset
    assert client.get("/favicon.ico").headers["content-type"] == "image/svg+xml"
    assert not [js for js in scripts if "innerHTML" in client.get(js).text]  # text only ever goes in as text
    human = client.get("/examples").json()["human"]  # people's prose, from Python's own documentation
    assert human and all(100 < len(e["text"]) < 1500 and e["source"].startswith("pydoc_data") for e in human)


def test_tokenize_counts_and_keeps_the_end(client, tokenizer):
    text = "hello world. the quick brown fox jumps over the lazy dog; é " * 3
    ids = tokenizer.encode(text)
    assert client.post("/v1/tokenize", json={"text": text}).json() == {"tokens": len(ids), "context_length": CONTEXT}
    for keep in (0, 5, 17, len(ids) + 3):
        tail = client.post("/v1/tokenize", json={"text": text, "keep_last": keep}).json()["text"]
        assert text.endswith(tail) and len(tokenizer.encode(tail)) <= keep  # an end of the text that fits
        assert len(tokenizer.encode(tail)) >= min(keep, len(ids)) - 2  # dropping at most a cut token or two
    assert client.post("/v1/tokenize", json={"text": "x", "keep_last": -1}).status_code == 422


class RecordingDetector:
    name = "recording"

    def __init__(self) -> None:
        self.texts: list[str] = []

    def score(self, texts):
        self.texts.extend(texts)
        return [len(t) / 1000 for t in texts]


def test_detect_scores_any_length_in_rolling_windows(make_client, model, tokenizer):
    """A text past the context: each token ranked by the window that scores it (rolling_windows, stride
    half the context), the detector over windows of the context (the last one ending with the text)."""
    detector = RecordingDetector()
    client = make_client(detector=detector, max_check_tokens=400)
    text = "hello world. the quick brown fox jumps over the lazy dog; hello again, world! " * 14
    ids = tokenizer.encode(text)
    assert CONTEXT < len(ids) <= 400
    data = client.post("/v1/detect", json={"text": text, "alternatives": 0}).json()
    seq = [tokenizer.eot_token_id, *ids]
    windows = rolling_windows(len(ids), CONTEXT, CONTEXT // 2)
    assert data["window"] == {"context": CONTEXT, "stride": CONTEXT // 2, "windows": len(windows)} and len(windows) > 2
    ranks = []
    with torch.no_grad():
        for begin, end, n in windows:
            logits = model(torch.tensor([seq[begin:end]]))[0][0, -n:].float()
            target = torch.tensor(ids[end - n : end])
            ranks += (1 + (logits > logits.gather(1, target[:, None])).sum(-1)).tolist()
    assert [t["rank"] for t in data["tokens"]] == ranks and [t["id"] for t in data["tokens"]] == ids
    assert "".join(t["text"] for t in data["tokens"]) == text
    spans = [(w["start"], w["end"]) for w in data["detector"]["windows"]]
    assert spans[-1][1] == len(ids) and all(b - a == CONTEXT for a, b in spans) and spans[0][0] == 0
    assert detector.texts == ["".join(t["text"] for t in data["tokens"][a:b]) for a, b in spans]
    assert data["detector"]["score"] == pytest.approx(sum(len(t) / 1000 for t in detector.texts) / len(spans))
    long = client.post("/v1/detect", json={"text": text * 2})
    assert long.status_code == 400 and long.json()["error"]["param"] == "text"
    assert "checks at most 400 tokens" in long.json()["error"]["message"]


def test_what_the_page_says_about_the_model_and_the_detector(tmp_path):
    assert [short_model_name(s) for s in ("gpt2", "/home/me/out/run1/", "out/run1/final", "C:\\m\\x")] == [
        "gpt2", "run1", "run1/final", "x"]
    assert describe_detector(tmp_path / "none")["accuracy"] is None  # nothing saved: nothing claimed
    det = tmp_path / "det"
    det.mkdir()
    info = {"C": 0.5, "train_texts": 2000, "valid_accuracy_by_C": {"0.5": 0.91, "1": 0.9}}
    (det / "detector.json").write_text(json.dumps({"detector": "tfidf", "info": info}))
    about = describe_detector(det)
    assert (about["trained_on"], about["accuracy"], about["accuracy_on"]) == (
        "2,000 texts, human- and model-written", 0.91, "its validation texts")
    report = {"accuracy": 0.87, "n": 1000, "real": "/data/webtext.test.jsonl", "fake": "/data/small.test.jsonl",
              "length_unit": "tokens", "accuracy_by_length": [{"bucket": "0-64", "n": 10, "accuracy": 0.6}]}
    (tmp_path / "results.json").write_text(json.dumps(report))
    about = describe_detector(det, "WebText vs GPT-2 117M", tmp_path / "results.json")
    assert about["trained_on"] == "WebText vs GPT-2 117M" and about["accuracy"] == 0.87
    assert about["accuracy_on"] == "webtext.test.jsonl and small.test.jsonl"  # file names, not the paths
    assert about["by_length"] == report["accuracy_by_length"]


class SlowGPT(GPT):
    """A GPT that takes 20 ms per forward, so a generation is still running when its client leaves."""

    def forward(self, *args, **kwargs):
        time.sleep(0.02)
        return super().forward(*args, **kwargs)


@pytest.fixture
def live_server(tokenizer):
    """The app under uvicorn on a free loopback port, with a slow model."""
    app = create_app(tiny_model(tokenizer, cls=SlowGPT), tokenizer, model_name="slow", max_tokens_limit=120)
    with serve_in_thread(app) as url:
        yield app, url


@pytest.mark.parametrize("stream", [True, False])
def test_client_disconnect_stops_the_generation(live_server, stream):
    app, url = live_server
    scheduler = app.state.scheduler
    body = {"prompt": "hello", "max_tokens": 120, "seed": 1, "stream": stream}
    if stream:
        with httpx.Client() as http, http.stream("POST", f"{url}/v1/completions", json=body) as r:
            assert r.status_code == 200
            next(r.iter_lines())  # the first chunk arrived: generation is under way
    else:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/completions", json=body, timeout=0.5)
    wait_for(lambda: scheduler.stats.cancelled == 1 and scheduler.running == 0)
    assert scheduler.stats.completed == 0
    assert scheduler.stats.tokens < 100  # stopped well before 120 tokens (~2.4 s of work)


def test_cli_serve_builds_the_app(tmp_path, model, tokenizer, monkeypatch):
    from gpt2.checkpoint import save_pretrained
    from gpt2.commands import serve

    save_pretrained(model, tmp_path / "ckpt", tokenizer=tokenizer)
    detection = pytest.importorskip("gpt2.detection")
    real = [f"the dog {w} slept by the river today" for w in ("quietly", "calmly", "softly", "happily")] * 3
    fake = [f"the fox {w} jumps over the lazy dog" for w in ("quick", "brown", "red", "swift")] * 3
    detector = detection.make_detector("tfidf", min_df=1).fit(real, fake)
    detector.save(tmp_path / "detector")
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--model", str(tmp_path / "ckpt"), "--max-batch", "2",
                              "--api-key", "k", "--detector", str(tmp_path / "detector")])
    assert (args.host, args.port, args.max_queue, args.max_tokens_limit) == ("127.0.0.1", 8000, 64, 512)
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    assert args.func(args) == 0
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 8000)
    with TestClient(seen["app"]) as c:
        r = c.post("/v1/completions", json={"prompt": "hello", "max_tokens": 8, "seed": 1},
                   headers={"Authorization": "Bearer k"})
        assert r.status_code == 200
        assert texts(r) == reference(model, tokenizer, "hello", max_new_tokens=8, seed=1)
        assert c.get("/health").json()["max_batch"] == 2
        assert c.get("/health").json()["model"] == f"{tmp_path.name}/ckpt"  # no path: "ckpt" and its parent
        text = "the fox swift jumps over the lazy dog"
        checked = c.post("/v1/detect", json={"text": text}, headers={"Authorization": "Bearer k"}).json()
        expected = float(detector.score([text])[0])
        assert (checked["detector"]["name"], checked["detector"]["score"]) == ("tfidf", pytest.approx(expected))
        # what it was trained on and its accuracy on validation texts, from its detector.json
        assert checked["detector"]["trained_on"] == "24 texts, human- and model-written"


def test_importing_the_server_loads_neither_evaluation_nor_detection():
    """The server stands on the scoring core alone (gpt2.scoring), not on the packages built on it."""
    code = ("import sys, gpt2.server.app; "
            "print(sorted(m for m in sys.modules if m.startswith(('gpt2.evaluation', 'gpt2.detection'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---- the watermark (issue #23): server-side key, request field `watermark` ----

WATERMARK_KEY = "server-side-watermark-key-7f3a9c"  # what must never leave the server


@pytest.fixture(scope="module")
def watermark():
    from gpt2.sampling import Watermark

    return Watermark(WATERMARK_KEY, gamma=0.25, delta=2.0)


def test_watermarked_completions_carry_the_keys_green_lists(make_client, model, tokenizer, watermark, tmp_path):
    """The served tokens (each choice's 64) have z > 4 with the key and |z| < 3 with another; so does the
    returned text as a detector sees it (tokenized again: this tiny tokenizer's stray bytes come back as
    more, unwatermarked, tokens, so the four choices are tested together)."""
    from gpt2.checkpoint import save_pretrained
    from gpt2.sampling import Watermark, score_ids

    client = make_client(watermark=watermark)
    body = {"prompt": "hello", "max_tokens": LIMIT, "seed": 1, "n": 4}
    marked, plain = (client.post("/v1/completions", json={**body, **extra}) for extra in ({}, {"watermark": False}))
    assert marked.status_code == plain.status_code == 200
    assert (marked.json()["watermark"], plain.json()["watermark"]) == (True, False)  # on by default
    assert texts(plain) == reference(model, tokenizer, "hello", max_new_tokens=LIMIT, seed=1, num_samples=4)
    prompt = tokenizer.encode("hello")
    samples = generate(model, [prompt], max_new_tokens=LIMIT, seed=1, num_samples=4, watermark=watermark,
                       tokenizer=tokenizer)
    assert [s.text for s in samples] == [text for text, _ in texts(marked)]  # the served tokens
    unmarked = generate(model, [prompt], max_new_tokens=LIMIT, seed=1, num_samples=4, tokenizer=tokenizer)
    other = Watermark("another-key-of-the-same-shape-12")
    vocab = model.config.vocab_size
    for sample, free in zip(samples, unmarked, strict=True):
        assert score_ids(prompt[-1:] + sample.tokens, watermark, vocab).z > 4
        assert abs(score_ids(prompt[-1:] + sample.tokens, other, vocab).z) < 3
        assert abs(score_ids(prompt[-1:] + free.tokens, watermark, vocab).z) < 3
    detection = pytest.importorskip("gpt2.detection.watermark")
    save_pretrained(model, tmp_path / "ckpt", tokenizer=tokenizer)
    text = "hello" + "".join(t for t, _ in texts(marked))
    detector = detection.WatermarkDetector(str(tmp_path / "ckpt"), key=WATERMARK_KEY)
    assert detector.test(text).z > 4
    assert abs(detection.WatermarkDetector(str(tmp_path / "ckpt"), key=other.key).test(text).z) < 3
    # the check view's z-test, under the server's key, is the detector's
    checked = client.post("/v1/detect", json={"text": text}).json()["watermark"]
    assert checked["watermarked"] and checked["z"] == pytest.approx(detector.test(text).z)


@pytest.mark.parametrize("options", SAMPLING[:3])
def test_watermarked_tokens_equal_generate(make_client, model, tokenizer, watermark, options):
    """The server and generate() share the engine: same config, key and seed, same tokens; alone, streamed,
    or in one batch beside an unwatermarked request."""
    client = make_client(watermark=watermark, max_batch=8)
    body = {"prompt": "hello world", "max_tokens": 40, "seed": 11, "n": 2, **options}
    ref = reference(model, tokenizer, "hello world", max_new_tokens=40, seed=11, num_samples=2,
                    watermark=watermark, **options)
    assert ref != reference(model, tokenizer, "hello world", max_new_tokens=40, seed=11, num_samples=2, **options)
    assert texts(client.post("/v1/completions", json=body)) == ref
    assert joined(sse(client.post("/v1/completions", json={**body, "stream": True}))[0], 2) == ref
    scheduler = client.app.state.scheduler
    scheduler.pause()
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(client.post, "/v1/completions", json={**body, "watermark": w}) for w in (True, False)]
        wait_for(lambda: scheduler.waiting == 2)
        scheduler.resume()
        marked, plain = (f.result() for f in futures)
    assert scheduler.stats.largest_step == 4  # decoded together
    assert texts(marked) == ref
    assert texts(plain) == reference(model, tokenizer, "hello world", max_new_tokens=40, seed=11, num_samples=2,
                                     **options)


def test_the_watermark_key_is_never_sent_or_logged(make_client, watermark, caplog):
    caplog.set_level("DEBUG")
    client = make_client(watermark=watermark)
    body = {"prompt": "hello", "max_tokens": 8, "seed": 3}
    responses = [
        client.post("/v1/completions", json=body),
        client.post("/v1/completions", json={**body, "stream": True, "logprobs": 2}),
        client.post("/v1/completions", json={**body, "max_tokens": LIMIT + 1}),  # 400
        client.post("/v1/completions", json={**body, "watermark": "on"}),  # 422 (the body is echoed)
        client.post("/v1/detect", json={"text": "hello world"}),
        client.get("/v1/models"), client.get("/health"), client.get("/openapi.json"), client.get("/"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 400, 422, 200, 200, 200, 200, 200]
    assert client.get("/health").json()["watermark"] == watermark.describe()  # the public settings only
    secret = WATERMARK_KEY.lower()
    for r in responses:
        assert secret not in r.text.lower() and secret not in str(r.headers).lower(), r.request.url
    assert secret not in caplog.text.lower()
    assert WATERMARK_KEY not in repr(client.app.state.scheduler.stats.snapshot())


def test_asking_for_a_watermark_without_a_key_is_refused(client):
    r = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2, "watermark": True})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "watermark" and "watermark" in error["message"] and "no watermark key" in error["message"]
    assert client.post("/v1/completions", json={"prompt": "x", "watermark": "yes"}).status_code == 422
    off = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2, "watermark": False})
    assert off.status_code == 200 and off.json()["watermark"] is False
    assert client.post("/v1/detect", json={"text": "hello"}).json()["watermark"] is None
    assert client.get("/health").json()["watermark"] is None


def test_cli_serve_watermark_reads_the_key_from_a_file_or_the_environment(tmp_path, model, tokenizer,
                                                                           monkeypatch, capsys):
    from gpt2.checkpoint import save_pretrained
    from gpt2.commands import serve
    from gpt2.sampling import Watermark, WatermarkError

    save_pretrained(model, tmp_path / "ckpt", tokenizer=tokenizer)
    (tmp_path / "key").write_text(WATERMARK_KEY + "\n")
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    monkeypatch.delenv("GPT2_WATERMARK_KEY", raising=False)
    base = ["serve", "--model", str(tmp_path / "ckpt")]
    for extra, env in ((["--watermark", "--watermark-key-file", str(tmp_path / "key")], None),
                       (["--watermark", "--watermark-delta", "3"], WATERMARK_KEY)):
        if env:
            monkeypatch.setenv("GPT2_WATERMARK_KEY", env)
        args = parser.parse_args(base + extra)
        assert args.func(args) == 0
        with TestClient(seen["app"]) as c:
            r = c.post("/v1/completions", json={"prompt": "hello", "max_tokens": 8, "seed": 1})
            wm = c.get("/health").json()["watermark"]
        expected = Watermark(WATERMARK_KEY, delta=wm["delta"])
        served = seen["app"].state.scheduler.model  # packed for CPU: logits equal the fixture's to rounding
        assert texts(r) == reference(served, tokenizer, "hello", max_new_tokens=8, seed=1, watermark=expected)
        assert "watermarking completions" in capsys.readouterr().err
    monkeypatch.delenv("GPT2_WATERMARK_KEY")
    for extra, words in ((["--watermark"], "GPT2_WATERMARK_KEY"),
                         (["--watermark-key-file", str(tmp_path / "missing")], "not found")):
        with pytest.raises(WatermarkError, match=words):
            args = parser.parse_args(base + extra)
            args.func(args)
    (tmp_path / "short").write_text("k3y")
    with pytest.raises(WatermarkError) as e:
        args = parser.parse_args(base + ["--watermark-key-file", str(tmp_path / "short")])
        args.func(args)
    assert "k3y" not in str(e.value) and "\n" not in str(e.value)
    out = capsys.readouterr()
    assert WATERMARK_KEY not in out.out + out.err
