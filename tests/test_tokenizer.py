"""The tokenizer against independent implementations: tiktoken's r50k_base, transformers' GPT2Tokenizer on the
files we write, openai/gpt-2's original encoder.py (ported below), and Hugging Face tokenizers' trainer."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest
import regex
import tiktoken
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SHARED, real_text, shared_data
from gpt2.cli import main
from gpt2.errors import TokenizerError
from gpt2.tokenizer import Tokenizer

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()  # "sequence longer than model_max_length" on whole corpora

HF_FILES = ["vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
SAMPLE = (
    "Hello world! GPT-2's tokenizer   handles 'll 've 'S, numbers 1234567 and ünïcödé 😀.\n\n"
    "  Indented\tline\r\n<|endoftext|>after the end\u00a0nbsp \u3000ideographic space   \n"
)


# ---------------------------------------------------------------------------- independent references


def openai_bytes_to_unicode() -> dict[int, str]:
    """openai/gpt-2 src/encoder.py, verbatim in substance."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


class OpenAIEncoder:
    """openai/gpt-2 src/encoder.py's Encoder: the original regex and pair-ranked BPE (merges all occurrences
    of the best pair per step), reading encoder.json + vocab.bpe. Slow but the reference."""

    def __init__(self, encoder: dict[str, int], bpe_merges: list[tuple[str, str]]):
        self.encoder = encoder
        self.byte_encoder = openai_bytes_to_unicode()
        self.bpe_ranks = dict(zip(bpe_merges, range(len(bpe_merges)), strict=True))
        self.cache: dict[str, str] = {}
        self.pat = regex.compile(
            r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
        )

    def bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = tuple(token)
        while len(word) > 1:
            pairs = set(zip(word, word[1:], strict=False))
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word: list[str] = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new_word.extend(word[i:])
                    break
                new_word.extend(word[i:j])
                i = j
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
        self.cache[token] = " ".join(word)
        return self.cache[token]

    def encode(self, text: str) -> list[int]:
        ids = []
        for token in self.pat.findall(text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return ids

    @classmethod
    def from_files(cls, encoder_json: Path, vocab_bpe: Path) -> OpenAIEncoder:
        encoder = json.loads(encoder_json.read_text(encoding="utf-8"))
        lines = vocab_bpe.read_text(encoding="utf-8").split("\n")[1:-1]
        return cls(encoder, [tuple(line.split()) for line in lines])


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def r50k(gpt2_tokenizer) -> tiktoken.Encoding:
    return tiktoken.get_encoding("r50k_base")  # the conftest fixture has seeded tiktoken's cache


@pytest.fixture(scope="module")
def gpt2_dir(gpt2_tokenizer, tmp_path_factory) -> Path:
    return gpt2_tokenizer.save_pretrained(tmp_path_factory.mktemp("gpt2-hf"))


@pytest.fixture(scope="module")
def hf_gpt2(gpt2_dir):
    return transformers.GPT2TokenizerFast.from_pretrained(gpt2_dir)


@pytest.fixture(scope="module")
def openai_dir(gpt2_dir, tmp_path_factory) -> Path:
    """encoder.json + vocab.bpe in OpenAI's layout (ASCII-escaped JSON), made from the files we wrote."""
    directory = tmp_path_factory.mktemp("gpt2-openai")
    vocab = json.loads((gpt2_dir / "vocab.json").read_text(encoding="utf-8"))
    (directory / "encoder.json").write_text(json.dumps(vocab), encoding="utf-8")
    shutil.copyfile(gpt2_dir / "merges.txt", directory / "vocab.bpe")
    return directory


@pytest.fixture(scope="module")
def openai_encoder(openai_dir) -> OpenAIEncoder:
    return OpenAIEncoder.from_files(openai_dir / "encoder.json", openai_dir / "vocab.bpe")


def corpus_files() -> list[str]:
    data = SHARED / "data"
    files = (
        sorted(p for p in data.rglob("*") if p.is_file() and p.name != "README.md") if data.is_dir() else []
    )
    return [str(p.relative_to(data)) for p in files] or ["(absent)"]


def corpus_texts(path: Path) -> list[str]:
    """A file's documents: each `text` of a .jsonl, else the whole file (WSCollection.xml is Latin-1)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    if path.suffix == ".jsonl":
        return [json.loads(line)["text"] for line in text.split("\n") if line.strip()]
    return [text]


# fmt: off
FRAGMENTS = [
    "<|endoftext|>", "<|endoftext", "|>", "'s", "'ll", "'S", "'re", "don't", " ", "  ", "   ", "\n", "\n\n",
    "\r\n", "\t", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u1680", "\u2000", "\u2028", "\u202f",
    "\u3000", "\u200b", "\u180e", "\ufeff", "\x00", "\x7f", "😀", "👨\u200d👩\u200d👧", "🇫🇷", "é", "e\u0301",
    "中文字", "١٢٣", "Ǆ", "ǅ", "123", "4.5", "hello", " world", "Hello", " The", "\U0010fffd",
]
# fmt: on
texts = st.lists(
    st.one_of(
        st.text(max_size=12),
        st.sampled_from(FRAGMENTS),
        st.text(alphabet=" \t\n\r\x0b\x0c\xa0\u2003\u3000", min_size=1, max_size=60),
    ),
    max_size=24,
).map("".join)
hypothesis_settings = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# ---------------------------------------------------------------------------- GPT-2's vocabulary


def test_gpt2_basics(gpt2_tokenizer):
    tok = gpt2_tokenizer
    assert (tok.vocab_size, len(tok), tok.eot_token_id, tok.eos_token_id) == (50257, 50257, 50256, 50256)
    assert tok.name == "gpt2"
    assert tok.encode("Hello world") == [15496, 995]
    assert tok.encode(" Hello world") == [18435, 995]
    assert tok.decode([15496, 995]) == "Hello world"
    assert tok.special_tokens == {"<|endoftext|>": 50256}
    assert tok.token_bytes(995) == b" world"
    assert tok.id_to_token(995) == "Ġworld" and tok.id_to_token_str(995) == " world"
    assert tok.id_to_token(198) == "Ċ" and tok.id_to_token_str(198) == "\n"
    assert tok.id_to_token(50256) == "<|endoftext|>"
    assert tok.id_to_token_str(tok.encode("😀")[0]) == "\ufffd"  # the first bytes of a 4-byte character


def test_special_token_policy(gpt2_tokenizer):
    tok = gpt2_tokenizer
    text = "a<|endoftext|>b"
    assert tok.encode(text) == [64, 27, 91, 437, 1659, 5239, 91, 29, 65]  # plain text by default
    assert tok.encode(text, allowed_special="all") == [64, 50256, 65]
    assert tok.encode(text, allowed_special={"<|endoftext|>"}) == [64, 50256, 65]
    assert tok.encode(text, allowed_special=set()) == tok.encode(text)
    assert tok.encode_batch([text, "x"], allowed_special="all") == [[64, 50256, 65], [87]]
    assert tok.decode([64, 50256, 65]) == text
    with pytest.raises(TokenizerError, match="<|fim_prefix|>"):
        tok.encode(text, allowed_special={"<|fim_prefix|>"})
    with pytest.raises(TokenizerError, match="allowed_special"):
        tok.encode(text, allowed_special="some")


def test_encode_batch_threads_keep_order(gpt2_tokenizer, monkeypatch):
    """encode_batch splits the texts into runs over threads: the result is one `encode` per text, in order,
    whatever the thread count (the CPU count is faked so that the threaded path runs on any machine)."""
    import gpt2.tokenizer.tokenizer

    monkeypatch.setattr(gpt2.tokenizer.tokenizer, "_usable_cpus", lambda: 4)
    texts = [f"line {i} <|endoftext|> ünï" * (i % 7) for i in range(101)]
    for allowed in ("none", "all"):
        expected = [gpt2_tokenizer.encode(t, allowed_special=allowed) for t in texts]
        for threads in (1, 3, 8):
            assert gpt2_tokenizer.encode_batch(texts, num_threads=threads, allowed_special=allowed) == expected
    assert gpt2_tokenizer.encode_batch([]) == []
    assert gpt2_tokenizer.encode_batch(iter(["a", "b"])) == [[64], [65]]


def test_decode_edges(gpt2_tokenizer):
    tok = gpt2_tokenizer
    torch = pytest.importorskip("torch")
    assert tok.decode(torch.tensor([15496, 995])) == "Hello world"
    ids = tok.encode("😀")
    assert tok.decode(ids[:1]) == "\ufffd" and tok.decode_bytes(ids) == "😀".encode()
    assert tok.decode([]) == ""
    for bad in ([50257], [-1], [10**12]):
        with pytest.raises(TokenizerError, match="not in the vocabulary"):
            tok.decode(bad)


@pytest.mark.parametrize("name", corpus_files())
def test_corpora_match_tiktoken_transformers_and_openai(name, gpt2_tokenizer, r50k, hf_gpt2, openai_encoder):
    """Every reference file: ids equal tiktoken's r50k_base (whole file) and, on samples, transformers on the
    files we saved (100,000 characters) and openai/gpt-2's encoder.py (20,000); decode gives the text back."""
    docs = corpus_texts(shared_data(name))
    ids = gpt2_tokenizer.encode_batch(docs)
    assert ids == r50k.encode_ordinary_batch(docs)
    assert [gpt2_tokenizer.decode(x) for x in ids] == docs
    sample = "".join(docs)[:100_000]
    assert hf_gpt2(sample)["input_ids"] == r50k.encode(sample, allowed_special="all")
    sample = sample[:20_000]
    assert openai_encoder.encode(sample) == r50k.encode_ordinary(sample)


@hypothesis_settings
@given(text=texts)
def test_arbitrary_text_matches_references(text, gpt2_tokenizer, r50k, hf_gpt2, openai_encoder):
    tok = gpt2_tokenizer
    ids = tok.encode(text)
    assert ids == r50k.encode(text, disallowed_special=())
    assert ids == openai_encoder.encode(text)
    assert tok.decode(ids) == text
    ids_special = tok.encode(text, allowed_special="all")
    assert ids_special == r50k.encode(text, allowed_special="all")
    assert hf_gpt2(text)["input_ids"] == ids_special
    assert hf_gpt2.decode(ids_special) == text


def test_saved_files_load_in_transformers(gpt2_dir, gpt2_tokenizer, tmp_path):
    assert sorted(p.name for p in gpt2_dir.iterdir()) == sorted(HF_FILES)
    ids = gpt2_tokenizer.encode(SAMPLE, allowed_special="all")
    # In transformers >= 5 GPT2Tokenizer is the tokenizers-backed class (there is no Python BPE any more);
    # openai/gpt-2's encoder.py above is the slow reference.
    for cls in (transformers.GPT2Tokenizer, transformers.GPT2TokenizerFast, transformers.AutoTokenizer):
        hf = cls.from_pretrained(gpt2_dir)
        assert hf(SAMPLE)["input_ids"] == ids
        assert hf.eos_token_id == 50256 and len(hf) == 50257
        assert hf.convert_ids_to_tokens(ids[:3]) == [gpt2_tokenizer.id_to_token(i) for i in ids[:3]]
    # Without tokenizer.json, transformers builds the BPE from vocab.json + merges.txt.
    for name in HF_FILES:
        if name != "tokenizer.json":
            shutil.copyfile(gpt2_dir / name, tmp_path / name)
    assert transformers.GPT2Tokenizer.from_pretrained(tmp_path)(SAMPLE)["input_ids"] == ids


def test_exported_merges_are_gpt2s(openai_dir, gpt2_tokenizer):
    """tiktoken's own loader for OpenAI's encoder.json + vocab.bpe rebuilds ranks from the merge order and
    asserts they equal encoder.json: our merges are GPT-2's 50,000, in GPT-2's order."""
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        str(openai_dir / "vocab.bpe"), str(openai_dir / "encoder.json")
    )
    assert ranks == gpt2_tokenizer.mergeable_ranks()
    lines = (openai_dir / "vocab.bpe").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 50001 and lines[:4] == ["#version: 0.2", "Ġ t", "Ġ a", "h e"]


def test_every_format_loads_identically(
    gpt2_dir, openai_dir, gpt2_vocab_file, gpt2_tokenizer, tmp_path, monkeypatch
):
    vocab_only = tmp_path / "vocab"
    vocab_only.mkdir()
    for f in ("vocab.json", "merges.txt"):
        shutil.copyfile(gpt2_dir / f, vocab_only / f)
    tiktoken_dir = tmp_path / "tiktoken"
    tiktoken_dir.mkdir()
    shutil.copyfile(gpt2_vocab_file, tiktoken_dir / "gpt2.tiktoken")
    monkeypatch.setenv("GPT2_VOCAB_FILE", str(gpt2_vocab_file))
    expected = gpt2_tokenizer.encode(SAMPLE), gpt2_tokenizer.encode(SAMPLE, allowed_special="all")
    ranks = gpt2_tokenizer.mergeable_ranks()
    # tokenizer.json, vocab.json + merges.txt, encoder.json + vocab.bpe, a .tiktoken file, $GPT2_VOCAB_FILE
    for source in (gpt2_dir, vocab_only, openai_dir, tiktoken_dir, "gpt2"):
        tok = Tokenizer.from_pretrained(source)
        assert (tok.vocab_size, tok.eot_token_id) == (50257, 50256), source
        assert (tok.encode(SAMPLE), tok.encode(SAMPLE, allowed_special="all")) == expected, source
        assert tok.mergeable_ranks() == ranks, source
    for source in (tiktoken_dir / "gpt2.tiktoken", "gpt2-xl", "r50k_base"):
        assert Tokenizer.from_pretrained(source).encode(SAMPLE) == expected[0], source


def test_gpt2_vocab_offline_errors(gpt2_tokenizer, tmp_path, monkeypatch):
    def offline(name):
        raise ConnectionError("Failed to resolve 'openaipublic.blob.core.windows.net'")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    monkeypatch.delenv("GPT2_VOCAB_FILE", raising=False)
    with pytest.raises(TokenizerError, match="GPT2_VOCAB_FILE") as e:
        Tokenizer.from_pretrained("gpt2")
    assert "0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4" in str(e.value) and "ConnectionError" in str(e.value)
    wrong = tmp_path / "wrong.tiktoken"
    wrong.write_text("IQ== 0\n")
    monkeypatch.setenv("GPT2_VOCAB_FILE", str(wrong))
    with pytest.raises(TokenizerError, match="is not GPT-2's vocabulary"):
        Tokenizer.from_pretrained("gpt2")
    monkeypatch.setenv("GPT2_VOCAB_FILE", str(tmp_path / "missing.tiktoken"))
    with pytest.raises(TokenizerError, match="missing.tiktoken"):
        Tokenizer.from_pretrained("gpt2")


# ---------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def trained() -> tuple[Tokenizer, str]:
    text = real_text()
    return Tokenizer.train([text], vocab_size=1000), text


def test_training_matches_hf_tokenizers(trained, tmp_path):
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import models, pre_tokenizers, trainers

    tok, text = trained
    assert (tok.vocab_size, tok.eot_token_id) == (1000, 999)
    ref = HFTokenizer(models.BPE())
    ref.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=999,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    ref.train_from_iterator([text], trainer)
    assert ref.get_vocab() == {tok.id_to_token(i): i for i in range(999)}
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    sample = text[:200_000] + "Unseen wörds, ÜNICODE 😀 and <|endoftext|> too.\n"
    assert tok.encode(sample) == ref.encode(sample).ids

    directory = tok.save_pretrained(tmp_path)
    hf = transformers.GPT2TokenizerFast.from_pretrained(directory)
    assert hf(sample)["input_ids"] == tok.encode(sample, allowed_special="all")
    assert hf.eos_token_id == 999
    for source in (directory, directory / "tokenizer.json"):
        reloaded = Tokenizer.from_pretrained(source)
        assert reloaded.encode(text) == ids and reloaded.mergeable_ranks() == tok.mergeable_ranks()


@settings(max_examples=100, deadline=None)
@given(text=texts)
def test_trained_arbitrary_text(trained, text):
    tok, _ = trained
    assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode(text, allowed_special="all")) == text


def test_train_rejects_tiny_vocab():
    with pytest.raises(TokenizerError, match="vocab_size"):
        Tokenizer.train(["abc"], vocab_size=100)


def test_train_stops_when_text_runs_out():
    tok = Tokenizer.train(["ab ab ab ab"], vocab_size=5000)
    assert tok.vocab_size < 5000 and tok.eot_token_id == tok.vocab_size - 1
    assert tok.encode("ab ab") == [tok.encode("ab")[0], tok.encode(" ab")[0]]


# ---------------------------------------------------------------------------- bad files


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory) -> Path:
    """A small real vocabulary (trained on generated text) in the HF layout, to corrupt."""
    text = " ".join(f"word{i % 97} token{i % 13}" for i in range(3000))
    return Tokenizer.train([text], vocab_size=400).save_pretrained(tmp_path_factory.mktemp("small"))


def _copy(small_dir: Path, tmp_path: Path, files: list[str]) -> Path:
    for f in files:
        shutil.copyfile(small_dir / f, tmp_path / f)
    return tmp_path


def _swap_merges(text: str) -> str:
    lines = text.splitlines()
    lines[5], lines[6] = lines[6], lines[5]
    return "\n".join(lines) + "\n"


BAD_FILES = {
    "vocab.json truncated": ("vocab.json", lambda t: t[: len(t) // 2], "vocab.json: not valid JSON"),
    "vocab.json garbage": ("vocab.json", lambda t: "\x00garbage", "vocab.json: not valid JSON"),
    "vocab.json a list": ("vocab.json", lambda t: "[1, 2]", "vocab.json: expected an object"),
    "vocab.json string ids": ("vocab.json", lambda t: t.replace(": 5,", ': "5",', 1), "vocab.json: expected"),
    "vocab.json not byte-level": (
        "vocab.json",
        lambda t: t.replace('"!"', '"\\u4e2d"', 1),
        "vocab.json: token",
    ),
    "vocab.json missing a byte": (
        "vocab.json",
        lambda t: t.replace('"!": 0, ', "", 1),
        "vocab.json: ids are not",
    ),
    "merges.txt bad line": (
        "merges.txt",
        lambda t: t.replace("\n", "\na b c\n", 2),
        "merges.txt:2: expected two",
    ),
    "merges.txt unknown token": ("merges.txt", lambda t: t + "zz qq\n", "merges.txt: merge zz qq"),
    "merges.txt out of order": (
        "merges.txt",
        _swap_merges,
        "merges.txt: merge .* expected merges in the order",
    ),
    "merges.txt missing a merge": ("merges.txt", lambda t: t.rsplit("\n", 2)[0] + "\n", "merges.txt: token"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_vocab_merges_files(case, small_dir, tmp_path):
    name, corrupt, message = BAD_FILES[case]
    directory = _copy(small_dir, tmp_path, ["vocab.json", "merges.txt"])
    (directory / name).write_text(corrupt((directory / name).read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(TokenizerError, match=message):
        Tokenizer.from_pretrained(directory)


def test_bad_files_other_formats(small_dir, tmp_path):
    def fails(path, message):
        with pytest.raises(TokenizerError, match=message):
            Tokenizer.from_pretrained(path)

    fails(tmp_path / "nowhere", "nowhere: no such file or directory")
    fails(tmp_path, "expected tokenizer files")
    (tmp_path / "vocab.json").write_text("{}")
    fails(tmp_path, "merges.txt: missing")
    (tmp_path / "vocab.json").unlink()
    (tmp_path / "vocab.bpe").write_text("#version: 0.2\n")
    fails(tmp_path, "encoder.json: missing")
    (tmp_path / "vocab.bpe").unlink()

    tokenizer_json = tmp_path / "tokenizer.json"
    tokenizer_json.write_text('{"model": {"type": "BPE", "vocab": {}, "merg')
    fails(tmp_path, "tokenizer.json: not valid JSON")
    tokenizer_json.write_text('{"model": {"type": "WordPiece"}}')
    fails(tmp_path, "tokenizer.json: field 'model' must be a BPE")
    data = json.loads((small_dir / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer_json.write_text(json.dumps({**data, "pre_tokenizer": {"type": "Whitespace"}}))
    fails(tmp_path, "tokenizer.json: field 'pre_tokenizer' must be ByteLevel")
    data["model"]["merges"][3] = "only-one"
    tokenizer_json.write_text(json.dumps(data))
    fails(tmp_path, r"tokenizer.json: model.merges\[3\]")
    tokenizer_json.unlink()

    bad = tmp_path / "bad.tiktoken"
    bad.write_text("IQ== 0\nnot-base64!! 1\n")
    fails(bad, "bad.tiktoken:2: expected 'base64-token rank'")
    bad.write_text("IQ== 0\nIg== 1\n")
    fails(bad, "bad.tiktoken: 254 single-byte tokens are missing")
    (tmp_path / "second.tiktoken").write_text("IQ== 0\n")
    fails(tmp_path, "found 2 \\*.tiktoken files")


# ---------------------------------------------------------------------------- CLI


def test_cli_tokenize(gpt2_tokenizer, capsys, monkeypatch):
    assert main(["tokenize", "Hello world"]) == 0
    assert capsys.readouterr().out == "15496 995\n"
    assert main(["tokenize", "--decode", "15496, 995"]) == 0
    assert capsys.readouterr().out == "Hello world"
    assert main(["tokenize", "--count", "Hello world"]) == 0
    assert capsys.readouterr().out == "2\n"
    assert main(["tokenize", "--show", "Hello\n"]) == 0
    assert capsys.readouterr().out == "15496  'Hello'\n  198  '\\n'\n"
    assert main(["tokenize", "--show", "😀"]) == 0
    assert capsys.readouterr().out == "47249  b'\\xf0\\x9f\\x98'\n  222  b'\\x80'\n"
    assert main(["tokenize", "--allow-special", "a<|endoftext|>"]) == 0
    assert capsys.readouterr().out == "64 50256\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello world\n"))
    assert main(["tokenize"]) == 0
    assert capsys.readouterr().out == "15496 995 198\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO("[15496, 995, 198]"))
    assert main(["tokenize", "-d"]) == 0
    assert capsys.readouterr().out == "Hello world\n"
    assert main(["tokenize", "--decode", "15496 x"]) == 2
    assert "'x' is not a token id" in capsys.readouterr().err
    assert main(["tokenize", "--tokenizer", "/no/such/dir", "hi"]) == 2
    assert "/no/such/dir: no such file or directory" in capsys.readouterr().err


def test_cli_help(capsys):
    for argv in (["tokenize", "--help"], ["tokenizer", "train", "--help"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
    assert "examples" in capsys.readouterr().out


def test_cli_tokenizer_train_and_export(gpt2_tokenizer, tmp_path, capsys):
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "a.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 50, encoding="utf-8")
    (corpus / "sub" / "b.txt").write_text("pack my box with five dozen liquor jugs\n" * 50, encoding="utf-8")
    (tmp_path / "c.jsonl").write_text(json.dumps({"text": "sphinx of black quartz, judge my vow"}) + "\n")
    out = tmp_path / "tok"
    assert (
        main(
            [
                "tokenizer",
                "train",
                "--vocab-size",
                "300",
                "--out",
                str(out),
                str(corpus),
                str(tmp_path / "*.jsonl"),
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "3 file(s)" in captured.err and f"wrote {out} (vocab_size 300" in captured.out
    tok = Tokenizer.from_pretrained(out)
    assert tok.vocab_size == 300 and tok.decode(tok.encode("quick fox ✓")) == "quick fox ✓"
    assert main(["tokenize", "--tokenizer", str(out), "--count", "the quick brown fox"]) == 0
    assert int(capsys.readouterr().out) < 19  # fewer tokens than bytes: merges learned

    assert main(["tokenizer", "export", "gpt2", "--out", str(tmp_path / "gpt2")]) == 0
    assert sorted(p.name for p in (tmp_path / "gpt2").iterdir()) == sorted(HF_FILES)
    capsys.readouterr()
    assert (
        main(["tokenizer", "train", "--vocab-size", "300", "--out", str(out), str(tmp_path / "none*")]) == 2
    )
    assert "pattern matches no files" in capsys.readouterr().err
