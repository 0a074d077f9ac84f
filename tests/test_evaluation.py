"""Zero-shot evaluation: the scoring core against transformers, metric normalisation by hand, de-tokenizers
on real benchmark lines, task-file parsers (and their errors), the report and the CLI.

Models are tiny random-weight GPT-2s (2 layers, 64 wide, 64 positions, GPT-2's vocabulary): random weights
are enough to check that every number is computed as specified. Tolerances: summed NLLs agree to 1e-3 nats
relative 1e-5 (float32 logits, summed over hundreds of tokens in a different order)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import shared_data
from gpt2 import scoring
from gpt2.cli import main
from gpt2.errors import DataError, GPT2Error
from gpt2.evaluation import cbt, detokenize, hellaswag, lambada, perplexity, prompted, report, winograd
from gpt2.evaluation.result import TaskResult

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval"
N_CTX = 64


# ---- models ----

@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=N_CTX, vocab_size=50257))
    directory = tmp_path_factory.mktemp("tiny-gpt2")
    hf.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def hf_model(tiny_dir):
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(tiny_dir).eval()


@pytest.fixture(scope="module")
def model(tiny_dir):
    from gpt2.model import GPT

    return GPT.from_pretrained(tiny_dir)


def hf_logprobs(hf_model, ids: list[int]) -> torch.Tensor:
    """log p over the vocabulary at every position of `ids`, from transformers, one unpadded sequence."""
    with torch.no_grad():
        return F.log_softmax(hf_model(torch.tensor([ids])).logits[0].float(), dim=-1)


def hf_continuation(hf_model, context: list[int], continuation: list[int]) -> tuple[float, list[bool]]:
    """By hand: log p(continuation | context) and, per token, whether it is the argmax (context cut from the
    left to fit the 64 positions)."""
    ids = (context + continuation)[:-1][-N_CTX:]
    logp = hf_logprobs(hf_model, ids)[len(ids) - len(continuation) :]
    greedy = [int(logp[j].argmax()) == t for j, t in enumerate(continuation)]
    return sum(logp[j, t].item() for j, t in enumerate(continuation)), greedy


# ---- scoring core ----

def test_rolling_windows_by_hand():
    assert scoring.rolling_windows(10, 4, 4) == [(0, 4, 4), (4, 8, 4), (6, 10, 2)]
    assert scoring.rolling_windows(10, 4, 2) == [(0, 4, 4), (2, 6, 2), (4, 8, 2), (6, 10, 2)]
    assert scoring.rolling_windows(9, 4, 3) == [(0, 4, 4), (3, 7, 3), (5, 9, 2)]
    assert scoring.rolling_windows(3, 4, 2) == [(0, 3, 3)]
    assert scoring.rolling_windows(0, 4, 2) == []
    with pytest.raises(ValueError, match="stride"):
        scoring.rolling_windows(10, 4, 5)


@pytest.mark.parametrize("n,n_ctx,stride",
                         [(1, 8, 8), (200, 64, 64), (200, 64, 32), (201, 64, 17), (50, 7, 1)])
def test_rolling_windows_score_every_token_once(n, n_ctx, stride):
    seen = []
    windows = scoring.rolling_windows(n, n_ctx, stride)
    for i, (begin, end, scored) in enumerate(windows):
        assert 0 < end - begin <= n_ctx and 0 < scored <= end - begin
        assert scored == end - begin if i == 0 else scored <= stride
        if i and end < n:
            assert end - begin == n_ctx  # full context whenever the text allows it
        seen += range(end - scored + 1, end + 1)  # indices into [eot] + ids of the scored targets
    assert seen == list(range(1, n + 1))


@pytest.mark.parametrize("stride,n", [(64, 300), (32, 300), (23, 300), (1, 90)])
def test_rolling_nll_equals_transformers_per_token_losses(model, hf_model, stride, n):
    torch.manual_seed(1)
    ids = torch.randint(0, 50256, (n,)).tolist()  # several windows of 64
    eot = 50256
    got = scoring.rolling_nll(model, ids, eot, stride=stride, batch_size=5)

    seq = [eot, *ids]
    want, count = 0.0, 0
    for begin, end, scored in scoring.rolling_windows(len(ids), N_CTX, stride):
        with torch.no_grad():
            logits = hf_model(torch.tensor([seq[begin:end]])).logits[0]
        losses = F.cross_entropy(logits, torch.tensor(seq[begin + 1 : end + 1]), reduction="none")
        want += losses[-scored:].double().sum().item()
        count += scored
    assert got.tokens == count == len(ids)
    assert got.nll == pytest.approx(want, rel=1e-5, abs=1e-3)


def test_rolling_nll_single_window_is_transformers_mean_loss(model, hf_model):
    ids = list(range(1000, 1040))
    got = scoring.rolling_nll(model, ids, 50256)
    with torch.no_grad():
        x = torch.tensor([[50256, *ids]])
        loss = hf_model(x, labels=x).loss.item()  # mean over the 40 predicted tokens
    assert got.tokens == 40 and got.nll == pytest.approx(40 * loss, rel=1e-5)


def test_score_continuations_match_transformers_and_ignore_padding(model, hf_model):
    requests = [
        ([50256, 464, 3797], [3332, 319]),
        ([50256], [40, 716, 257, 3797, 13]),
        ([50256, *range(2000, 2100)], [11, 12, 13]),  # too long: the context is cut from the left
        ([100, 200, 300, 400, 500, 600], [700]),
    ]
    batched = scoring.score_continuations(model, requests, batch_size=3)
    single = scoring.score_continuations(model, requests, batch_size=1)
    for (context, continuation), b, s in zip(requests, batched, single, strict=True):
        ids = (context + continuation)[:-1][-N_CTX:]
        logp = hf_logprobs(hf_model, ids)[len(ids) - len(continuation) :]
        want = logp.gather(1, torch.tensor(continuation)[:, None])[:, 0]
        assert b.logprobs == pytest.approx(want.tolist(), abs=1e-4)
        assert b.logprobs == pytest.approx(s.logprobs, abs=1e-5)
        assert b.greedy == (logp.argmax(-1) == torch.tensor(continuation)).tolist()
    with pytest.raises(ValueError, match="empty context"):
        scoring.score_continuations(model, [([], [1])])



def test_multiple_choice_picks_and_totals():
    S = scoring.ContinuationScore
    scores = [S([-1.0, -2.0]), S([-0.5]), S([-4.0]),  # example 0: three candidates
              S([-2.0]), S([-1.0, -1.0])]  # example 1: two, tied: the first wins
    assert scoring.best_candidates(scores, [3, 2]) == [1, 0]
    assert scoring.total_nll(scores) == scoring.NLL(11.5, 7)
    with pytest.raises(ValueError, match="add up to 4"):
        scoring.best_candidates(scores, [2, 2])

# ---- perplexity tasks ----

def test_word_count_and_perplexity_normalisation_by_hand():
    # Three PTB lines: 11 + 8 + 8 tokens, plus one <eos> per line.
    text = (FIXTURES / "ptb_sample.txt").read_text()
    assert perplexity.count_words(text) == 30
    assert perplexity.count_words(text, eos_per_line=False) == 27
    assert perplexity.count_words("a b\n\nc") == 3 + 3  # an empty line still ends a sentence
    m = perplexity.perplexity_metrics(nll=30 * math.log(50.0), tokens=40, words=30, n_bytes=100)
    assert m["word_perplexity"] == pytest.approx(50.0)
    assert m["token_perplexity"] == pytest.approx(math.exp(30 * math.log(50.0) / 40))
    assert m["bits_per_byte"] == pytest.approx(30 * math.log2(50.0) / 100)


@pytest.mark.parametrize("task,fixture,words",
                         [("ptb", "ptb_sample.txt", 30), ("wikitext2", "wiki_sample.tokens", 82),
                          ("perplexity", "ptb_sample.txt", 27)])  # any text: plain whitespace words
def test_evaluate_lm_normalises_by_original_words(model, gpt2_tokenizer, task, fixture, words):
    path = FIXTURES / fixture
    result = perplexity.evaluate_lm(model, gpt2_tokenizer, task, path, stride=32)
    text = perplexity.load_lm_text(task, path).text
    detokenized = task != "perplexity"  # the model reads de-tokenized WikiText and PTB
    assert ("@-@" not in text and " n't" not in text) == detokenized
    ids = gpt2_tokenizer.encode(text)
    nll = scoring.rolling_nll(model, ids, gpt2_tokenizer.eot_token_id, stride=32)
    assert (result.words, result.tokens, result.bytes) == (words, len(ids), len(text.encode()))
    assert result.nll == pytest.approx(nll.nll, rel=1e-6)
    assert result.metrics["word_perplexity"] == pytest.approx(math.exp(nll.nll / words))
    assert result.metrics["token_perplexity"] == pytest.approx(math.exp(nll.nll / len(ids)))
    assert result.metrics["bits_per_byte"] == pytest.approx(nll.nll / math.log(2) / len(text.encode()))


def test_real_test_sets_have_the_published_word_counts():
    assert perplexity.load_lm_text("wikitext2", shared_data("wikitext2", "wiki.test.tokens")).words == 245_569
    assert perplexity.load_lm_text("ptb", shared_data("ptb", "ptb.test.txt")).words == 82_430


def test_enwik8_and_text8_readers(monkeypatch):
    enwik8 = perplexity.load_lm_text("enwik8", FIXTURES / "enwik8_sample")
    assert enwik8.words is None and enwik8.n_bytes == (FIXTURES / "enwik8_sample").stat().st_size
    text8 = perplexity.load_lm_text("text8", FIXTURES / "text8_sample", limit=4)
    assert text8.text == " the quick brown fox" and text8.n_examples == 4
    # A file of the full corpus's size is cut to its test split, starting at a character boundary.
    data = (FIXTURES / "enwik8_sample").read_bytes()
    cut = data.index("é".encode()) + 1  # inside the two-byte é
    monkeypatch.setattr(perplexity, "HUTTER_SIZE", len(data))
    monkeypatch.setattr(perplexity, "HUTTER_TEST_START", cut)
    split = perplexity.load_lm_text("enwik8", FIXTURES / "enwik8_sample")
    assert split.text == data[cut + 1 :].decode() and split.n_bytes == len(data) - cut - 1


# ---- de-tokenizers ----

def test_wikitext_detokenizer_by_hand():
    line = ' The ice @-@ cream costs $ 1 @,@ 000 @.@ 50 ( see below . ) , he said : " it \'s fine " . '
    text = 'The ice-cream costs $ 1,000.50 (see below.), he said: "it\'s fine".'
    assert detokenize.detokenize_wikitext_line(line) == text
    assert detokenize.retokenize_wikitext_line(text) == line
    cases = [(" = = Early life = = ", "== Early life =="), (" = Robert = ", "= Robert ="), (" ", "")]
    for line, text in cases:
        assert detokenize.detokenize_wikitext_line(line) == text
        assert detokenize.retokenize_wikitext_line(text) == line
    # "U.S." is one WikiText token: its period stays, and so does the space before a sentence's own period.
    assert detokenize.detokenize_wikitext_line(" in the U.S. . ") == "in the U.S. ."


def test_ptb_detokenizer_by_hand():
    line = " the firm 's chief did n't say how N investors ' shares fell N N "
    text = "the firm's chief didn't say how 1 investors' shares fell 1 1"
    assert detokenize.detokenize_ptb_line(line) == text
    assert detokenize.retokenize_ptb_line(text) == line


@pytest.mark.parametrize("name", ["wiki.test.tokens", "wiki.valid.tokens"])
def test_wikitext_detokenizer_inverts_on_real_lines(name):
    lines = shared_data("wikitext2", name).read_text(encoding="utf-8").split("\n")[:-1]
    detok = [detokenize.detokenize_wikitext_line(line) for line in lines]
    failures = [line for line, d in zip(lines, detok, strict=True)
                if detokenize.retokenize_wikitext_line(d) != line]
    # The known exceptions are tokens WikiText itself left ambiguous ("1,000th", "var."): at most 0.1%.
    assert len(failures) <= len(lines) // 1000, failures[:3]
    # Joins are made only where they invert; nearly all are. (" , " stays after "SmackDown!", for example.)
    original, joined = "\n".join(lines), "\n".join(detok)
    for artifact in (" @-@ ", " @,@ ", " @.@ ", " , ", " . ", " 's ", "= = ", "( "):
        assert joined.count(artifact) <= original.count(artifact) // 100, artifact


@pytest.mark.parametrize("name", ["ptb.test.txt", "ptb.valid.txt"])
def test_ptb_detokenizer_inverts_on_every_real_line(name):
    lines = shared_data("ptb", name).read_text(encoding="utf-8").split("\n")[:-1]
    for line in lines:
        assert detokenize.retokenize_ptb_line(detokenize.detokenize_ptb_line(line)) == line


def test_cbt_detokenizer():
    line = "`` I 'm going to the XXXXX , '' said Tom . `` Do n't ! ''"
    assert detokenize.detokenize_cbt_line(line) == '"I\'m going to the XXXXX," said Tom. "Don\'t!"'


# ---- LAMBADA ----

def _greedy_word(hf_model, tokenizer, context: str, n_tokens: int) -> str | None:
    """The model's greedy continuation of `context` when it is " word" (n_tokens tokens) and re-encodes."""
    ids = [tokenizer.eot_token_id, *tokenizer.encode(context)]
    new = []
    for _ in range(n_tokens):
        new.append(int(hf_logprobs(hf_model, ids + new)[-1].argmax()))
    word = tokenizer.decode(new)
    ok = word.startswith(" ") and word[1:].isalpha() and tokenizer.encode(word) == new
    return word[1:] if ok else None


def test_lambada_accuracy_equals_hand_check(tmp_path, model, hf_model, gpt2_tokenizer):
    tok = gpt2_tokenizer
    rows = [json.loads(line)["text"] for line in (FIXTURES / "lambada_sample.jsonl").read_text().splitlines()]
    # Passages whose last word the random model predicts greedily: the accuracy cannot be trivially 0.
    for i, n_tokens in enumerate([1, 1, 2, 2] * 4):
        context = f"Story {i}: the light was on and"
        word = _greedy_word(hf_model, tok, context, n_tokens)
        if word is not None:
            rows.append(f"{context} {word}")
    assert len(rows) >= 4
    path = tmp_path / "lambada.jsonl"
    path.write_text("".join(json.dumps({"text": r}) + "\n" for r in rows))
    result = lambada.evaluate_lambada(model, tok, path, batch_size=4, protocol="both")
    assert result.details["protocols"] == ["paper", "lm-eval"]

    full = last = word_lp = last_lp = harness = harness_lp = 0.0
    for row in rows:
        context, word = row.rsplit(" ", 1)
        ctx, tgt = [tok.eot_token_id, *tok.encode(context)], tok.encode(" " + word)
        logprob, greedy = hf_continuation(hf_model, ctx, tgt)
        full += all(greedy)
        last += greedy[-1]
        word_lp += logprob
        last_lp += hf_continuation(hf_model, ctx + tgt[:-1], tgt[-1:])[0]
        # lm-evaluation-harness 0.4's _encode_pair: no <|endoftext|>; the continuation is what encoding
        # context + continuation adds to the context's own tokens
        whole, alone = tok.encode(f"{context} {word}"), tok.encode(context)
        logprob, greedy = hf_continuation(hf_model, alone, whole[len(alone):])
        harness += all(greedy)
        harness_lp += logprob
    n = len(rows)
    assert full > 0 and result.n_examples == n
    assert result.metrics["accuracy_full_word"] == full / n
    assert result.metrics["accuracy_last_token"] == last / n
    assert result.metrics["perplexity_full_word"] == pytest.approx(math.exp(-word_lp / n), rel=1e-4)
    assert result.metrics["perplexity_last_token"] == pytest.approx(math.exp(-last_lp / n), rel=1e-4)
    assert result.metrics["accuracy_lm_eval"] == harness / n
    assert result.metrics["perplexity_lm_eval"] == pytest.approx(math.exp(-harness_lp / n), rel=1e-4)
    assert result.metrics["perplexity_lm_eval"] != pytest.approx(result.metrics["perplexity_full_word"], rel=1e-6)
    # one protocol computes its own metrics only, the same values as `both` gives
    paper = lambada.evaluate_lambada(model, tok, path, batch_size=4)
    harness_only = lambada.evaluate_lambada(model, tok, path, batch_size=4, protocol="lm-eval")
    assert paper.metrics == {k: v for k, v in result.metrics.items() if not k.endswith("_lm_eval")}
    assert harness_only.metrics == {k: v for k, v in result.metrics.items() if k.endswith("_lm_eval")}
    assert paper.details["protocols"] == ["paper"] and harness_only.details["primary_metric"] == "accuracy_lm_eval"
    with pytest.raises(DataError, match="lambada has no protocol 'llm-c'; choose one of paper, lm-eval or both"):
        lambada.evaluate_lambada(model, tok, path, protocol="llm-c")


def test_lambada_reads_the_real_file():
    examples = lambada.read_lambada(shared_data("lambada", "lambada_test.jsonl"))
    assert len(examples) == 5153
    assert examples[0].target == "signs" and examples[0].context.endswith("I don't care about")
    assert all(ex.target and " " not in ex.target for ex in examples)


# ---- WSC and CBT ----

def test_wsc273_from_the_real_xml():
    path = shared_data("wsc", "WSCollection.xml")
    schemas = winograd.read_wsc(path)
    assert len(schemas) == 273 and len(winograd.read_wsc(path, limit=None)) == 285
    assert all(len(s.candidates) == 2 and s.label in (0, 1) and s.txt2 and s.pronoun for s in schemas)
    assert sum(s.label for s in schemas) == 136  # 137 A, 136 B
    first = schemas[0]
    prefix = "The city councilmen refused the demonstrators a permit because"
    assert first.sentence == f"{prefix} they feared violence."
    assert first.substitute(first.candidates[1]) == (f"{prefix} the demonstrators", " feared violence.")
    possessive = next(s for s in schemas if s.pronoun == "his")
    assert possessive.substitute(possessive.candidates[0])[0].endswith("'s")


def test_wsc_accuracy_equals_hand_check(model, hf_model, gpt2_tokenizer):
    tok = gpt2_tokenizer
    path = FIXTURES / "wsc_sample.xml"
    schemas = winograd.read_wsc(path)
    assert [s.candidates for s in schemas] == [["The bottle", "the bag"], ["Maria", "Zoë"]]  # ISO-8859-1 read
    assert [s.label for s in schemas] == [0, 1]
    result = winograd.evaluate_wsc(model, tok, path)
    correct = 0
    for s in schemas:
        scores = []
        for c in s.candidates:
            prefix, rest = s.substitute(c)
            context = [tok.eot_token_id, *tok.encode(prefix)]
            scores.append(hf_continuation(hf_model, context, tok.encode(rest))[0])
        correct += max(range(2), key=scores.__getitem__) == s.label
    assert result.metrics["accuracy_partial"] == correct / 2 and result.n_examples == 2


def test_cbt_parsing_and_accuracy_equals_hand_check(model, hf_model, gpt2_tokenizer):
    tok = gpt2_tokenizer
    path = FIXTURES / "cbt_cn_sample.txt"
    examples = cbt.read_cbt(path)
    assert len(examples) == 2 and [len(e.context) for e in examples] == [20, 20]
    assert examples[0].answer == "mill" and examples[0].label == 5 and len(examples[0].candidates) == 10
    assert examples[1].query.startswith("XXXXX flew") and examples[1].label == 2
    context, before, after = examples[0].split()
    assert before == "The miller said the cat was the best guard his " and after == " had ever had."
    assert context.count("\n") == 20 and '"Why do you sleep so much?" asked the miller' in context

    result = cbt.evaluate_cbt(model, tok, path, task="cbt-cn")
    correct = 0
    for e in examples:
        context, before, after = e.split()
        lead = " " if before.endswith(" ") else ""
        ctx = [tok.eot_token_id, *tok.encode(context + before.rstrip(" "))]
        scores = []
        for c in e.candidates:
            scores.append(hf_continuation(hf_model, ctx, tok.encode(lead + c + after))[0])
        correct += max(range(len(scores)), key=scores.__getitem__) == e.label
    assert result.metrics["accuracy"] == correct / 2 and result.task == "cbt-cn"


# ---- malformed task files ----

CBT_OK = (FIXTURES / "cbt_cn_sample.txt").read_text()
WSC_OK = (FIXTURES / "wsc_sample.xml").read_bytes()


@pytest.mark.parametrize("reader,content,line,message", [
    (lambada.read_lambada, b'{"text": "a b c"}\n{"text": "d e f"\n', 2, "not valid JSON"),
    (lambada.read_lambada, b'{"text": "a b c"}\n{"passage": "d e f"}\n', 2, 'with a "text" field, got an object'),
    (lambada.read_lambada, b'["a b c"]\n', 1, 'with a "text" field, got a JSON list'),
    (lambada.read_lambada, b'{"text": "a b"}\n{"text": "nospace"}\n', 2, "no last word"),
    (lambada.read_lambada, b'{"text": "a b"}\n{"text": "caf\xe9 au lait"}\n', 2, "not valid utf-8"),
    (lambada.read_lambada, b"", None, "empty"),
    (cbt.read_cbt, CBT_OK.replace("\tmill\t\t", "\tmill\t").encode(), 21, "3 tab-separated columns"),
    (cbt.read_cbt, CBT_OK.replace("\tmill\t\tcat|", "\tbarn\t\tcat|").encode(), 21, "not among the"),
    (cbt.read_cbt, CBT_OK.replace("7 In the evening", "In the evening").encode(), 7, "expected line number"),
    (cbt.read_cbt, CBT_OK.replace("21 The miller said", "\n21 The miller said").encode(), 21, "expected 21"),
    (cbt.read_cbt, CBT_OK.replace("The cat sat", "The c\xe2t sat").encode("latin-1"), 13, "not valid utf-8"),
    (cbt.read_cbt, b"  \n\n", None, "empty"),
    (winograd.read_wsc, WSC_OK.replace(b"<correctAnswer> A ", b"<correctAnswer> C "), 4, "<correctAnswer>"),
    (winograd.read_wsc, WSC_OK.replace(b"<answer>the bag </answer>", b""), 4, "two non-empty <answer>"),
    (winograd.read_wsc, WSC_OK.replace(b"<txt2> was too big.\n</txt2>", b""), 4, "<txt2>"),
    (winograd.read_wsc, WSC_OK.replace(b"</schema>", b"</schemas>", 1), 23, "not well-formed XML"),
    (winograd.read_wsc, WSC_OK.replace(b"ISO-8859-1", b"UTF-8"), 28, "not well-formed XML"),
    (lambda p: perplexity.load_lm_text("ptb", p), b" a b \n c \xff d \n", 2, "not valid utf-8"),
    (lambda p: perplexity.load_lm_text("wikitext2", p), b" \n \n", None, "empty"),
])
def test_malformed_task_files_raise_data_error_naming_file_and_line(tmp_path, reader, content, line, message):
    path = tmp_path / "task_file"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        reader(path)
    text = str(info.value)
    assert str(path) in text and message in text
    if line is not None:
        assert f"line {line}" in text


def test_missing_data_file_is_a_clear_error(monkeypatch, tmp_path):
    from gpt2.evaluation.tasks import resolve_data_path

    monkeypatch.setenv("GPT2_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"wikitext2/wiki.test.tokens: not found; .*GPT2_DATA_DIR.*--data-path"):
        resolve_data_path("wikitext2", fetch=False)
    (tmp_path / "ptb").mkdir()
    (tmp_path / "ptb" / "ptb.test.txt").write_text(" a \n")
    assert resolve_data_path("ptb") == tmp_path / "ptb" / "ptb.test.txt"
    with pytest.raises(DataError, match="needs --data-path"):
        resolve_data_path("perplexity")


# ---- prompted tasks ----

def test_answer_metrics_by_hand():
    assert prompted.normalize_answer("  The Cat, sat! ") == "cat sat"
    assert prompted.exact_match("A cow.", ["cow"]) == 1.0 and prompted.exact_match("cows", ["cow"]) == 0.0
    # "big cat" vs "cat sat": one common token, precision 1/2, recall 1/2.
    assert prompted.token_f1("the big cat", ["a cat sat", "dog"]) == pytest.approx(0.5)
    assert prompted.token_f1("", [""]) == 1.0 and prompted.token_f1("x", ["y"]) == 0.0
    assert prompted.first_sentences("One. Two! Three? Four.", 3) == "One. Two! Three?"


def test_rouge_and_bleu_of_perfect_outputs():
    pytest.importorskip("rouge_score")
    pytest.importorskip("sacrebleu")
    refs = ["the council approved a new footbridge over the river", "a bakery won an award for bread"]
    assert prompted.rouge_scores(refs, refs) == pytest.approx(
        {"rouge1": 100.0, "rouge2": 100.0, "rougeL": 100.0, "rouge_avg": 100.0})
    assert prompted.bleu_score(refs, refs) == pytest.approx(100.0)
    assert prompted.bleu_score(["completely different words here"], refs[:1]) < 10


def test_qa_exact_match_equals_hand_check(model, gpt2_tokenizer):
    from gpt2.sampling import generate

    tok = gpt2_tokenizer
    path = FIXTURES / "qa_sample.jsonl"
    result = prompted.evaluate_qa(model, tok, path, shots=2, max_new_tokens=4)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    answers = [[r["answer"]] if isinstance(r["answer"], str) else r["answer"] for r in rows]
    context = "".join(f"Q: {r['question']}\nA: {a[0]}\n\n" for r, a in zip(rows[:2], answers, strict=False))
    assert context.startswith("Q: What colour is the sky on a clear day?\nA: blue\n\nQ: How many legs")
    hits, predictions = 0, []
    for r, a in zip(rows[2:], answers[2:], strict=True):
        ids = tok.encode(f"{context}Q: {r['question']}\nA:")[-(N_CTX - 4) :]
        text = generate(model, ids, max_new_tokens=4, temperature=0.0, stop="\n", tokenizer=tok)[0].text
        predictions.append(text.strip())
        hits += prompted.exact_match(text.strip(), a)
    assert result.details["predictions"] == predictions
    assert result.n_examples == 2 and result.metrics["exact_match"] == 100 * hits / 2
    assert result.nll is None and result.details["shots"] == 2


def test_coqa_f1_with_several_answers_is_the_official_leave_one_out():
    refs = ["a red car", "red car", "the blue car"]  # SQuAD normalisation: "red car", "red car", "blue car"
    assert prompted.coqa_f1("red car", refs) == 1.0
    # leave out each answer in turn: best of the rest is 1 ("blue car"), 1, then 0.5 (only "red car" left)
    assert prompted.coqa_f1("blue car", refs) == pytest.approx((1 + 1 + 0.5) / 3)
    assert prompted.coqa_f1("blue car", ["red car"]) == 0.5


def test_coqa_reads_its_own_dev_file_as_the_jsonl(model, gpt2_tokenizer, tmp_path):
    """CoQA's official coqa-dev-v1.0.json (what `gpt2 eval --task coqa` fetches) gives the same prompts and
    predictions as the same stories in jsonl."""
    stories = [json.loads(line) for line in (FIXTURES / "coqa_sample.jsonl").read_text().splitlines()]
    official = [{"source": "mctest", "id": str(i), "filename": "x", "story": s["story"],
                 "questions": [{"input_text": q if isinstance(q, str) else q["input_text"], "turn_id": t + 1}
                               for t, q in enumerate(s["questions"])],
                 "answers": [{"input_text": a, "span_text": a, "turn_id": t + 1} for t, a in
                             enumerate(s["answers"] if isinstance(s["answers"], list) else
                                       s["answers"]["input_text"])]} for i, s in enumerate(stories)]
    (tmp_path / "coqa-dev-v1.0.json").write_text(json.dumps({"version": "1.0", "data": official}))
    ours = prompted.evaluate_coqa(model, gpt2_tokenizer, tmp_path / "coqa-dev-v1.0.json", max_new_tokens=4)
    jsonl = prompted.evaluate_coqa(model, gpt2_tokenizer, FIXTURES / "coqa_sample.jsonl", max_new_tokens=4)
    assert ours.details["predictions"] == jsonl.details["predictions"] and ours.metrics == jsonl.metrics
    # the other annotators' answers, as the official file has them, are scored the official way: here one
    # annotator answered as the model did and another "zebra" every time
    predictions, at = ours.details["predictions"], 0
    for story in official:
        turns = len(story["answers"])
        story["additional_answers"] = {"0": [{"input_text": p} for p in predictions[at : at + turns]],
                                       "1": [{"input_text": "zebra"}] * turns}
        at += turns
    (tmp_path / "coqa-dev-v1.0.json").write_text(json.dumps({"version": "1.0", "data": official}))
    scored = prompted.evaluate_coqa(model, gpt2_tokenizer, tmp_path / "coqa-dev-v1.0.json", max_new_tokens=4)
    references = [a["input_text"] for story in official for a in story["answers"]]
    # leaving out the matching annotator: the best of (reference, "zebra"); leaving out either other: 1.0
    expected = [(prompted.token_f1(p, [r, "zebra"]) + 2) / 3 for p, r in zip(predictions, references, strict=True)]
    assert scored.metrics["f1"] == pytest.approx(100 * sum(expected) / len(expected))
    (tmp_path / "bad.json").write_text(json.dumps({"version": "1.0", "data": [{"story": "s"}]}))
    with pytest.raises(DataError, match=r"bad.json: data\[0\]: .*no 'questions'"):
        prompted.evaluate_coqa(model, gpt2_tokenizer, tmp_path / "bad.json")


def test_prompted_tasks_run_on_fixtures(model, gpt2_tokenizer):
    pytest.importorskip("rouge_score")
    pytest.importorskip("sacrebleu")
    tok = gpt2_tokenizer
    summary = prompted.evaluate_summarize(model, tok, FIXTURES / "summarize_sample.jsonl", max_new_tokens=8)
    assert summary.n_examples == 2 and 0 <= summary.metrics["rouge_avg"] <= 100  # "highlights" accepted
    translation = prompted.evaluate_translate(model, tok, FIXTURES / "translate_sample.jsonl", shots=2,
                                              max_new_tokens=8)
    assert translation.n_examples == 2 and 0 <= translation.metrics["bleu"] <= 100
    coqa = prompted.evaluate_coqa(model, tok, FIXTURES / "coqa_sample.jsonl", max_new_tokens=4)
    assert coqa.n_examples == 3 and 0 <= coqa.metrics["f1"] <= 100  # 2 + 1 turns, both field layouts
    with pytest.raises(DataError, match="at least one more"):
        prompted.evaluate_qa(model, tok, FIXTURES / "qa_sample.jsonl", shots=4)


@pytest.mark.parametrize("task,content,line,message", [
    ("qa", b'{"question": "q?", "answer": "a"}\n{"question": "r?"}\n', 2, "fields ['question'] (no 'answer')"),
    ("qa", b'{"question": "q?", "answer": 3}\n', 1, 'field "answer" must be a string or list, got int'),
    ("translate", b'{"source": "a", "target": "b"}\n[1, 2]\n', 2, "expected a JSON object"),
    ("summarize", b'{"article": "a", "summary": "b"\n', 1, "not valid JSON"),
    ("coqa", b"", None, "empty"),
])
def test_malformed_prompted_files_raise_data_error(tmp_path, model, gpt2_tokenizer, task, content, line,
                                                    message):
    path = tmp_path / f"{task}.jsonl"
    path.write_bytes(content)
    runner = {"qa": prompted.evaluate_qa, "translate": prompted.evaluate_translate,
              "summarize": prompted.evaluate_summarize, "coqa": prompted.evaluate_coqa}[task]
    with pytest.raises(DataError) as info:
        runner(model, gpt2_tokenizer, path, max_new_tokens=4)
    assert str(path) in str(info.value) and message in str(info.value)
    if line is not None:
        assert f"line {line}" in str(info.value)


# ---- report and CLI ----

@pytest.mark.parametrize("n,nearest,exact", [(124_439_808, "117M", "117M"), (354_823_168, "345M", "345M"),
                                            (774_030_080, "762M", "762M"), (1_557_611_200, "1542M", "1542M"),
                                            (3_000_000, "117M", None), (7_000_000, "117M", None),
                                            (200_000_000, "117M", None)])
def test_paper_sizes(n, nearest, exact):
    """A report compares with the nearest size; results.json names a paper size only when the model is one."""
    assert report.nearest_paper_size(n) == nearest and report.paper_size(n) == exact


def test_write_results_merges_runs_and_shows_paper_numbers(tmp_path):
    def result(task, metrics):
        return TaskResult(task=task, metrics=metrics, n_examples=10, nll=1.5, tokens=7, runtime_s=0.5,
                          data_file="x", data_sha256="ab")

    report.write_results([result("wikitext2", {"word_perplexity": 31.0})], tmp_path, "m", 354_823_168)
    json_path, md_path = report.write_results([result("lambada", {"accuracy_full_word": 0.5})], tmp_path, "m",
                                              354_823_168)
    document = json.loads(json_path.read_text())
    assert document["paper_size"] == "345M" and set(document["tasks"]) == {"wikitext2", "lambada"}
    fields = {"metrics", "n_examples", "nll", "tokens", "runtime_s", "data_file", "data_sha256"}
    assert fields <= set(document["tasks"]["lambada"])
    md = md_path.read_text()
    assert "| WikiText2 (PPL) | 31.00 | 22.76 |" in md and "| LAMBADA (ACC) | 50.00 | 55.48 |" in md
    small_json, small_md = report.write_results([result("wikitext2", {"word_perplexity": 90.0})], tmp_path / "s",
                                                "small", 7_000_000)
    assert json.loads(small_json.read_text())["paper_size"] is None  # a 7M model is not "117M"
    assert "not one of the paper's sizes; the paper's 117M model shown for scale" in small_md.read_text()
    report.write_results([result("ptb", {"word_perplexity": 50.0})], tmp_path, "other", 1)
    assert set(json.loads(json_path.read_text())["tasks"]) == {"ptb"}  # another model starts afresh


def test_cli_eval_writes_results(tmp_path, tiny_dir, gpt2_tokenizer, capsys):
    from gpt2.commands import eval as eval_command

    parser = argparse.ArgumentParser(prog="gpt2")
    eval_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", "-m", str(tiny_dir), "--task", "ptb", "--data-path",
                              str(FIXTURES / "ptb_sample.txt"), "--out", str(tmp_path), "--no-progress",
                              "--stride", "16", "--limit", "2"])
    assert args.func(args) == 0
    document = json.loads((tmp_path / "results.json").read_text())
    ptb = document["tasks"]["ptb"]
    assert ptb["words"] == 19 + 2 and ptb["n_examples"] == 2 and ptb["details"]["stride"] == 16
    assert "ptb: token_perplexity" in capsys.readouterr().out
    assert "| PTB (PPL) |" in (tmp_path / "results.md").read_text()


# ---- HellaSwag ----

HELLASWAG_ROWS = [
    {"activity_label": "Removing ice from car",
     "ctx_a": "Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes "
     "smiles.", "ctx_b": "then", "ctx": "", "label": 3,
     "endings": [", the man adds wax to the windshield and cuts it.", ", a person board a ski lift, while two men "
                 "supporting the head of the person wearing winter clothes snow as the we girls sled.",
                 ", the man puts on a christmas coat, knitted with netting.", ", the man continues removing the "
                 "snow on his car."]},
    {"activity_label": "Home and Garden", "ctx_a": "[header] How to grow tomatoes [title] Choose a sunny spot.",
     "ctx_b": "water them", "ctx": "", "label": 0,
     "endings": ["every morning [step] Keep the soil moist.", "with milk.", "[title] Paint the fence red.",
                 "until the car starts."]},
    {"activity_label": "Baking cookies", "ctx_a": "A woman mixes flour and sugar in a bowl.", "ctx_b": "she",
     "ctx": "", "label": 1, "endings": ["drives to the airport.", "adds two eggs and stirs.", "sings to the moon.",
                                        "builds a house of cards."]},
    {"activity_label": "Health", "ctx_a": "[header] How to rest [title] Lie down.", "ctx_b": "close your eyes. [step]",
     "ctx": "", "label": 2, "endings": ["Eat a cake.", "Run a mile.", "Breathe slowly.", "Call a cab."]},
]


def test_hellaswag_clean_up_is_the_harnesss():
    # stripped before the brackets go, as the harness does: a leading bracket leaves a leading space
    assert hellaswag.clean(" [header] How to grow [title] Choose a spot. ") == " How to grow. Choose a spot."
    assert hellaswag.clean("every morning [step] Keep it moist.") == "every morning Keep it moist."


def test_hellaswag_pairs_split_as_lm_evals_encode_pair(gpt2_tokenizer):
    """A context the clean-up leaves ending in a space ("... eyes. [step]" -> "... eyes. "): lm-eval moves the
    space to the continuation, so the space's own token is scored (as lm-eval 0.4.13 does, checked by
    benchmarks/lm_eval_crosscheck.py); other contexts split where the ending starts."""
    tok = gpt2_tokenizer
    context, ending = "Health: Lie down. Close your eyes. ", " Breathe slowly."
    alone, cont = hellaswag.harness_pair(tok, context, ending)
    assert alone == tok.encode("Health: Lie down. Close your eyes.") and cont[0] == tok.encode(" ")[0]
    assert alone + cont == tok.encode(context + ending)
    alone, cont = hellaswag.harness_pair(tok, "She mixes flour.", " She adds eggs.")
    assert cont == tok.encode(" She adds eggs.")


def test_hellaswag_both_definitions_equal_a_hand_check(tmp_path, model, hf_model, gpt2_tokenizer):
    tok = gpt2_tokenizer
    rows = [{**r, "ctx": r["ctx_a"] + " " + r["ctx_b"]} for r in HELLASWAG_ROWS]
    path = tmp_path / "hellaswag_val.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = hellaswag.evaluate_hellaswag(model, tok, path, batch_size=3, protocol="both")
    right = dict.fromkeys(["acc_lm_eval", "acc_norm_lm_eval", "acc_llm_c", "acc_norm_llm_c"], 0)
    for r in rows:
        context = hellaswag.clean(f"{r['activity_label']}: {r['ctx_a']} {r['ctx_b'].capitalize()}")
        alone = tok.encode(context.rstrip())  # lm-eval's split: a trailing space belongs to the ending
        harness, plain = [], []
        for ending in r["endings"]:
            text = hellaswag.clean(ending)
            lp, _ = hf_continuation(hf_model, alone, tok.encode(f"{context} {text}")[len(alone):])
            harness.append((lp, lp / len(text)))
            cont = tok.encode(" " + ending)
            lp, _ = hf_continuation(hf_model, tok.encode(r["ctx"]), cont)
            plain.append((lp, lp / len(cont)))
        for name, values in (("acc_lm_eval", [h[0] for h in harness]), ("acc_norm_lm_eval", [h[1] for h in harness]),
                             ("acc_llm_c", [p[0] for p in plain]), ("acc_norm_llm_c", [p[1] for p in plain])):
            right[name] += max(range(len(values)), key=values.__getitem__) == r["label"]
    assert result.metrics == {name: n / len(rows) for name, n in right.items()}
    assert result.n_examples == 4 and result.details["primary_metric"] == "acc_norm_lm_eval"
    default = hellaswag.evaluate_hellaswag(model, tok, path, batch_size=2)
    assert default.metrics == {k: v for k, v in result.metrics.items() if k.endswith("_lm_eval")}
    assert default.details["protocols"] == ["lm-eval"]
    with pytest.raises(DataError, match="line 1: expected at least two string endings"):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps({**rows[0], "label": 7}) + "\n")
        hellaswag.read_hellaswag(bad)


def test_cli_eval_paper_runs_every_table_3_task_with_a_standard_file(tmp_path, tiny_dir, gpt2_tokenizer, monkeypatch):
    from gpt2.evaluation.tasks import TASKS

    fixtures = {"lambada": "lambada_sample.jsonl", "cbt-cn": "cbt_cn_sample.txt", "cbt-ne": "cbt_cn_sample.txt",
                "wikitext2": "wiki_sample.tokens", "wikitext103": "wiki_sample.tokens", "ptb": "ptb_sample.txt",
                "enwik8": "enwik8_sample", "text8": "text8_sample", "wsc": "wsc_sample.xml"}
    for task, name in fixtures.items():  # the data directory, filled by hand (nothing to download)
        target = tmp_path / "data" / TASKS[task].default_path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((FIXTURES / name).read_bytes())
    monkeypatch.setenv("GPT2_DATA_DIR", str(tmp_path / "data"))
    assert main(["eval", "-m", str(tiny_dir), "--task", "paper", "--limit", "2", "--stride", "16",
                 "--no-progress", "--protocol", "both", "--out", str(tmp_path / "out")]) == 0
    document = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(document["tasks"]) == set(fixtures) and document["paper_size"] is None
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| LAMBADA (ACC) |" in md  # the paper's reading, beside lm-eval's exact one, named as such:
    assert any(line.startswith("| lambada | accuracy_lm_eval |") and "`lambada_openai` acc exactly" in line
               for line in md.splitlines())


def test_a_missing_metric_package_is_named_before_any_decoding(monkeypatch, gpt2_tokenizer):
    import sys

    monkeypatch.setitem(sys.modules, "sacrebleu", None)  # import fails as if not installed
    with pytest.raises(GPT2Error, match=r"translate task needs the sacrebleu package: pip install sacrebleu"):
        prompted.evaluate_translate(None, gpt2_tokenizer, FIXTURES / "translate_sample.jsonl", shots=1)
    monkeypatch.setitem(sys.modules, "rouge_score.rouge_scorer", None)
    with pytest.raises(GPT2Error, match=r"summarize task needs the rouge-score package"):
        prompted.evaluate_summarize(None, gpt2_tokenizer, FIXTURES / "summarize_sample.jsonl")


# ---- shared-context multiple choice ----

def test_score_choices_equal_separate_pairs_including_the_fallback(model):
    """Each example's context read once for all its endings (one packed row, 3-d mask) gives what scoring
    the pairs one by one gives (score_continuations, itself checked against transformers above), to float
    accumulation order; an example too long to pack (N_CTX = 64) goes pair by pair, cut from the left."""
    from gpt2.evaluation.choices import score_choices

    g = torch.Generator().manual_seed(3)
    ids = lambda n: torch.randint(0, 50257, (n,), generator=g).tolist()  # noqa: E731
    examples = [(ids(9), [ids(3), ids(1), ids(5), ids(2)]), (ids(1), [ids(4), ids(4)]),
                (ids(20), [ids(2)]), (ids(40), [ids(20), ids(20)]),  # packed row 78 > 64: pair by pair
                (ids(60), [ids(10)])]  # context + ending 70 > 64: pair by pair, cut from the left
    got = score_choices(model, examples, batch_size=2)
    for (context, endings), scores in zip(examples, got, strict=True):
        want = scoring.score_continuations(model, [(context, e) for e in endings])
        assert len(scores) == len(endings)
        for a, b in zip(scores, want, strict=True):
            assert a.greedy == b.greedy
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-5)
    with pytest.raises(ValueError, match="example 0: empty"):
        score_choices(model, [([1], [[]])])


def test_cli_eval_protocol_is_checked_before_any_work(tmp_path, capsys):
    missing_model = str(tmp_path / "no-model")  # the protocol check comes first, then the model's
    assert main(["eval", "-m", missing_model, "--task", "lambada", "--protocol", "llm-c"]) == 2
    assert "lambada has no protocol 'llm-c'; choose one of paper, lm-eval or both" in capsys.readouterr().err
    assert main(["eval", "-m", missing_model, "--task", "wikitext2", "--protocol", "lm-eval"]) == 2
    assert "--protocol applies to tasks that report several definitions (lambada, hellaswag)" in capsys.readouterr().err
    assert main(["eval", "-m", missing_model, "--task", "lambada", "--protocol", "lm-eval"]) == 2
    assert "does not exist" in capsys.readouterr().err
