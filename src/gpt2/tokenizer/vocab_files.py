"""GPT-2 style byte-level BPE vocabulary files, read into and written from tiktoken's form.

tiktoken's form is `ranks` (token bytes -> rank, where the rank is also the token id and a lower rank merges
first) plus `special_tokens` (text -> id). The formats read: a `.tiktoken` file, Hugging Face `tokenizer.json`
or `vocab.json` + `merges.txt`, and OpenAI's `encoder.json` + `vocab.bpe`. Those store tokens as strings
over GPT-2's `bytes_to_unicode` alphabet (a space byte is "Ġ"), and a merge list whose order must agree with
the ids: tiktoken merges by the rank of the merged token, Hugging Face by the merge's line.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Iterable
from pathlib import Path

from gpt2.errors import TokenizerError
from gpt2.files import atomic_write_text

ENDOFTEXT = "<|endoftext|>"
# GPT-2's pre-tokenizer regex as tiktoken writes it; it splits text exactly like the original
# r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""" but without backtracking.
GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
MERGES_HEADER = "#version: 0.2"
FORMATS = "tokenizer.json, vocab.json + merges.txt, encoder.json + vocab.bpe, or one *.tiktoken file"

Ranks = dict[bytes, int]
Specials = dict[str, int]


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table (openai/gpt-2 `encoder.py`)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


@functools.cache
def _tables() -> tuple[dict[int, str], dict[int, int]]:
    """str.translate tables: latin-1 char -> byte-level char, and back (other chars -> U+FFFF, invalid)."""
    to_unicode = bytes_to_unicode()
    to_bytes = dict.fromkeys(range(512), 0xFFFF) | {ord(c): b for b, c in to_unicode.items()}
    return to_unicode, to_bytes


def token_to_unicode(token: bytes) -> str:
    """Token bytes as the byte-level string that vocab.json and merges.txt use ("Ġthe" for b" the")."""
    return token.decode("latin-1").translate(_tables()[0])


def unicode_to_token(text: str, file: Path) -> bytes:
    try:
        return text.translate(_tables()[1]).encode("latin-1")
    except UnicodeEncodeError as e:
        raise TokenizerError(
            f"{file}: token {text!r} has character {text[e.start]!r} outside GPT-2's byte-level alphabet; "
            "expected a byte-level BPE vocabulary like GPT-2's"
        ) from None


# ---------------------------------------------------------------------------------------------- reading


def read_vocab(path: Path) -> tuple[Ranks, Specials]:
    """Read a directory holding one of FORMATS, or a `.tiktoken` / `tokenizer.json` file."""
    path = Path(path)
    if path.is_file():
        return read_tokenizer_json(path) if path.suffix == ".json" else read_tiktoken(path)
    if not path.is_dir():
        raise TokenizerError(f"{path}: no such file or directory; expected a directory with {FORMATS}")
    if (path / "tokenizer.json").is_file():
        return read_tokenizer_json(path / "tokenizer.json")
    for vocab_name, merges_name in (("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")):
        vocab_file, merges_file = path / vocab_name, path / merges_name
        if vocab_file.is_file() or merges_file.is_file():
            missing = merges_file if vocab_file.is_file() else vocab_file
            if not missing.is_file():
                raise TokenizerError(f"{missing}: missing; {vocab_name} and {merges_name} come as a pair")
            vocab = _read_json(vocab_file, "an object mapping byte-level token strings to ids")
            merges = _read_merges(merges_file)
            return from_hf(vocab, merges, vocab_file, merges_file, _added_tokens(path))
    tiktoken_files = sorted(path.glob("*.tiktoken"))
    if len(tiktoken_files) == 1:
        return read_tiktoken(tiktoken_files[0])
    found = f"{len(tiktoken_files)} *.tiktoken files" if tiktoken_files else "none of them"
    raise TokenizerError(f"{path}: expected tokenizer files ({FORMATS}); found {found}")


def read_tiktoken(path: Path) -> tuple[Ranks, Specials]:
    """A `.tiktoken` file: `base64(token) rank` per line; `<|endoftext|>` gets the next id."""
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as e:
        raise TokenizerError(f"{path}: cannot read ({e.strerror}); expected a .tiktoken file") from None
    ranks: Ranks = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except (ValueError, binascii.Error):
            raise TokenizerError(
                f"{path}:{lineno}: expected 'base64-token rank' as in a .tiktoken file, got {line[:60]!r}"
            ) from None
    check_ranks(ranks, {}, path)
    return ranks, {ENDOFTEXT: len(ranks)}


def read_tokenizer_json(path: Path) -> tuple[Ranks, Specials]:
    """A Hugging Face `tokenizer.json` holding a GPT-2 style byte-level BPE model."""
    data = _read_json(path, "a Hugging Face tokenizer.json object")
    model = data.get("model")
    if not isinstance(model, dict) or model.get("type") != "BPE":
        raise TokenizerError(f"{path}: field 'model' must be a BPE model, got {_kind(model)}")
    if (
        data.get("normalizer") is not None
        or model.get("continuing_subword_prefix")
        or model.get("end_of_word_suffix")
    ):
        raise TokenizerError(
            f"{path}: has a normalizer or subword prefix/suffix; only GPT-2 style byte-level BPE is supported"
        )
    pre = data.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if isinstance(pre, dict) else []
    if not any(isinstance(s, dict) and s.get("type") == "ByteLevel" for s in steps):
        raise TokenizerError(
            f"{path}: field 'pre_tokenizer' must be ByteLevel (GPT-2 style), got {pre!r:.80}"
        )
    if any(isinstance(s, dict) and s.get("add_prefix_space") for s in steps):
        raise TokenizerError(f"{path}: pre_tokenizer has add_prefix_space=true; GPT-2 uses false")
    merges = []
    for i, m in enumerate(model.get("merges", [])):
        pair = m.split(" ") if isinstance(m, str) else m
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) and p for p in pair)):
            raise TokenizerError(f"{path}: model.merges[{i}] = {m!r}; expected 'a b' or [a, b]")
        merges.append((i + 1, pair[0], pair[1]))
    added = {t.get("content") for t in data.get("added_tokens", []) if isinstance(t, dict)}
    return from_hf(model.get("vocab"), merges, path, path, added)


def from_hf(
    vocab: object,
    merges: list[tuple[int, str, str]],
    vocab_file: Path,
    merges_file: Path,
    added: Iterable[str] = (),
) -> tuple[Ranks, Specials]:
    """Convert a byte-level vocab (string -> id) and its merges (line, a, b); check ids follow the merges."""
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise TokenizerError(
            f"{vocab_file}: expected an object mapping byte-level token strings to integer ids"
        )
    special_names = set(added) | {ENDOFTEXT}
    ranks: Ranks = {}
    specials: Specials = {}
    for text, i in vocab.items():
        if text in special_names:
            specials[text] = i
        else:
            ranks[unicode_to_token(text, vocab_file)] = i
    if ENDOFTEXT not in specials:
        specials[ENDOFTEXT] = max([*ranks.values(), *specials.values()], default=-1) + 1
    check_ranks(ranks, specials, vocab_file)
    pairs = [(n, unicode_to_token(a, merges_file), unicode_to_token(b, merges_file)) for n, a, b in merges]
    check_merges(ranks, pairs, merges_file)
    return ranks, specials


def _read_json(path: Path, expected: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TokenizerError(f"{path}: cannot read ({e.strerror}); expected {expected}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerError(f"{path}: not valid JSON ({e}); expected {expected}") from None
    if not isinstance(data, dict):
        raise TokenizerError(f"{path}: expected {expected}, got {_kind(data)}")
    return data


def _read_merges(path: Path) -> list[tuple[int, str, str]]:
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise TokenizerError(f"{path}: cannot read ({e}); expected a merges file") from None
    merges = []
    for lineno, line in enumerate(lines, 1):
        line = line.rstrip("\r")  # byte-level tokens never hold a raw CR, so this only undoes CRLF endings
        if (lineno == 1 and line.startswith("#version")) or not line:
            continue
        parts = line.split(" ")
        if len(parts) != 2 or not all(parts):
            raise TokenizerError(
                f"{path}:{lineno}: expected two tokens separated by one space, got {line!r:.80}"
            )
        merges.append((lineno, parts[0], parts[1]))
    return merges


def _added_tokens(directory: Path) -> set[str]:
    """Added (special) token names declared beside a vocab.json: added_tokens.json, tokenizer_config.json."""
    names: set[str] = set()
    if (directory / "added_tokens.json").is_file():
        names |= set(_read_json(directory / "added_tokens.json", "an object mapping tokens to ids"))
    if (directory / "tokenizer_config.json").is_file():
        config = _read_json(directory / "tokenizer_config.json", "a tokenizer config object")
        decoder = config.get("added_tokens_decoder") or {}
        names |= {t["content"] for t in decoder.values() if isinstance(t, dict) and "content" in t}
    return names


def _kind(value: object) -> str:
    return f"a JSON {type(value).__name__}" if value is not None else "nothing"


# ---------------------------------------------------------------------------------------------- checking


def check_ranks(ranks: Ranks, specials: Specials, file: Path | str) -> None:
    """Ids must be 0..n-1, each used once, and every byte must be a token (so any text can be encoded)."""
    ids = sorted([*ranks.values(), *specials.values()])
    if not ids:
        raise TokenizerError(f"{file}: the vocabulary is empty")
    if ids != list(range(len(ids))):
        dup = next((a for a, b in zip(ids, ids[1:], strict=False) if a == b), None)
        what = f"id {dup} is used twice" if dup is not None else f"ids are not 0..{len(ids) - 1} without gaps"
        raise TokenizerError(f"{file}: {what}; expected each id 0..n-1 exactly once")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise TokenizerError(
            f"{file}: {len(missing)} single-byte tokens are missing (first: byte {missing[0]}); "
            "a byte-level BPE vocabulary has all 256"
        )


def check_merges(ranks: Ranks, merges: list[tuple[int, bytes, bytes]], file: Path) -> None:
    """The merges must list, in id order, the merge that builds each token: the one tiktoken's BPE finds."""
    previous = -1
    for lineno, a, b in merges:
        rank = ranks.get(a + b)
        if a not in ranks or b not in ranks or rank is None or rank < previous:
            where = f"{file}: merge {token_to_unicode(a)} {token_to_unicode(b)} (line/entry {lineno})"
            if rank is None or a not in ranks or b not in ranks:
                raise TokenizerError(f"{where}: its parts and result must all be in the vocabulary")
            raise TokenizerError(
                f"{where} builds id {rank} after a merge that built id {previous}; expected merges "
                "in the order of the ids they build (GPT-2 style), which exact encoding needs"
            )
        previous = rank
    listed = {(a, b) for _, a, b in merges}
    for a, b in derive_merges(ranks):
        if (a, b) not in listed:
            raise TokenizerError(
                f"{file}: token {token_to_unicode(a + b)!r} (id {ranks[a + b]}) is built by BPE as "
                f"{token_to_unicode(a)} + {token_to_unicode(b)}, but the merges do not list that pair; "
                "the ids are not consistent with the merge order"
            )


def _bpe(ranks: Ranks, token: bytes, max_rank: int) -> list[bytes]:
    """tiktoken's BPE on one token, using only tokens ranked below `max_rank`: merge the lowest-ranked
    adjacent pair (leftmost on ties) until none is left."""
    parts = [token[i : i + 1] for i in range(len(token))]
    pair_ranks = [ranks.get(a + b, max_rank) for a, b in zip(parts, parts[1:], strict=False)]
    while pair_ranks and (best := min(pair_ranks)) < max_rank:
        i = pair_ranks.index(best)
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
        del pair_ranks[i]
        if i > 0:
            pair_ranks[i - 1] = ranks.get(parts[i - 1] + parts[i], max_rank)
        if i < len(pair_ranks):
            pair_ranks[i] = ranks.get(parts[i] + parts[i + 1], max_rank)
    return parts


def derive_merges(ranks: Ranks) -> list[tuple[bytes, bytes]]:
    """Recover the merge list from ranks: token t of rank r is made by the pair that BPE reaches using only
    ranks below r (tiktoken's own conversion; on GPT-2's ranks it gives back GPT-2's merges.txt)."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) == 1:
            continue
        parts = _bpe(ranks, token, rank)
        if len(parts) != 2:  # unreachable by BPE (not GPT-2 style): any split into lower ranks will do
            splits = _splits(ranks, token, rank)
            if not splits:
                continue
            parts = min(splits, key=lambda ab: max(ranks[ab[0]], ranks[ab[1]]))
        merges.append((parts[0], parts[1]))
    return merges


def _splits(ranks: Ranks, token: bytes, rank: int) -> list[tuple[bytes, bytes]]:
    """The splits of `token` into two tokens ranked below `rank`."""
    splits = [(token[:i], token[i:]) for i in range(1, len(token))]
    return [(a, b) for a, b in splits if ranks.get(a, rank) < rank and ranks.get(b, rank) < rank]


# ---------------------------------------------------------------------------------------------- writing


def write_hf(directory: Path, ranks: Ranks, specials: Specials, model_max_length: int) -> None:
    """Write vocab.json, merges.txt, tokenizer.json, tokenizer_config.json and special_tokens_map.json."""
    from tokenizers import AddedToken, decoders, models, pre_tokenizers, processors
    from tokenizers import Tokenizer as HFTokenizer

    vocab = {token_to_unicode(t): i for t, i in sorted(ranks.items(), key=lambda kv: kv[1])}
    vocab.update(sorted(specials.items(), key=lambda kv: kv[1]))
    merges = [(token_to_unicode(a), token_to_unicode(b)) for a, b in derive_merges(ranks)]

    hf = HFTokenizer(
        models.BPE(vocab=vocab, merges=merges, continuing_subword_prefix="", end_of_word_suffix="")
    )
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.decoder = decoders.ByteLevel()
    hf.post_processor = processors.ByteLevel(trim_offsets=False)
    hf.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])

    eot = {"bos_token": ENDOFTEXT, "eos_token": ENDOFTEXT, "unk_token": ENDOFTEXT}
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "model_max_length": model_max_length,
        "add_prefix_space": False,
        "add_bos_token": False,
        "clean_up_tokenization_spaces": False,  # decode must give back the exact text
        "errors": "replace",
        **eot,
        "added_tokens_decoder": {
            str(i): {
                "content": s,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for s, i in sorted(specials.items(), key=lambda kv: kv[1])
        },
    }
    directory = Path(directory)
    atomic_write_text(directory / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    atomic_write_text(
        directory / "merges.txt", "\n".join([MERGES_HEADER, *(f"{a} {b}" for a, b in merges)]) + "\n"
    )
    atomic_write_text(directory / "tokenizer.json", hf.to_str())
    atomic_write_text(
        directory / "tokenizer_config.json", json.dumps(config, indent=2, ensure_ascii=False) + "\n"
    )
    atomic_write_text(directory / "special_tokens_map.json", json.dumps(eot, indent=2) + "\n")
