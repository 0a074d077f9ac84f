"""GPT-2's byte-level BPE tokenizer, exact, with tiktoken as the encoding engine.

    tok = Tokenizer.from_pretrained("gpt2")          # or a directory of HF / OpenAI / tiktoken files
    ids = tok.encode("Hello world")                  # [15496, 995]
    tok.decode(ids)                                  # "Hello world"
    tok.save_pretrained("out/tok")                   # files transformers' GPT2Tokenizer loads
    tok = Tokenizer.train(texts, vocab_size=8192)    # a new vocabulary (Hugging Face `tokenizers` trains it)

Every vocabulary becomes a `tiktoken.Encoding` (token bytes -> rank == id, GPT-2's pre-tokenizer regex,
`<|endoftext|>` as the special token), so all of them encode through the same fast code path.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import tiktoken

from gpt2.errors import TokenizerError
from gpt2.tokenizer import vocab_files
from gpt2.tokenizer.vocab_files import ENDOFTEXT, GPT2_PATTERN

# Names meaning GPT-2's own vocabulary (all GPT-2 sizes share it); tiktoken calls it r50k_base.
GPT2_NAMES = frozenset(
    [
        f"{prefix}gpt2{size}"
        for prefix in ("", "openai-community/")
        for size in ("", "-medium", "-large", "-xl")
    ]
    + ["r50k_base"]
)
# sha256 of r50k_base.tiktoken, the hash tiktoken pins; GPT2_VOCAB_FILE must match it.
R50K_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
R50K_URL = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"

AllowedSpecial = Literal["none", "all"] | Collection[str]


class Tokenizer:
    """A byte-level BPE vocabulary: text <-> token ids, as GPT-2 does it."""

    def __init__(self, encoding: tiktoken.Encoding, name: str | None = None):
        if ENDOFTEXT not in encoding.special_tokens_set:
            raise TokenizerError(f"encoding {encoding.name!r} has no {ENDOFTEXT} special token")
        self.encoding = encoding
        self.name = name or encoding.name
        self._eot = encoding.encode_single_token(ENDOFTEXT)

    # ------------------------------------------------------------------------------------- construction

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike) -> Tokenizer:
        """GPT-2's vocabulary by name ("gpt2", "gpt2-xl", "r50k_base", ...), or tokenizer files from a path:
        a directory with tokenizer.json, vocab.json + merges.txt, encoder.json + vocab.bpe or a *.tiktoken
        file, or a path to a .tiktoken / tokenizer.json file. Names win over paths: write ./gpt2 for a
        directory called gpt2 (a Path is always a path)."""
        if isinstance(name_or_path, str) and name_or_path in GPT2_NAMES:
            return cls(_gpt2_encoding(), name="gpt2")
        path = Path(name_or_path)
        if not path.exists():
            raise TokenizerError(
                f"{path}: no such file or directory, and not a tokenizer name; expected one of "
                f"{', '.join(sorted(GPT2_NAMES))} or a directory with {vocab_files.FORMATS}"
            )
        ranks, specials = vocab_files.read_vocab(path)
        return cls.from_ranks(ranks, specials, name=str(path))

    @classmethod
    def from_ranks(cls, ranks: dict[bytes, int], special_tokens: dict[str, int], name: str) -> Tokenizer:
        """Wrap mergeable ranks (token bytes -> id, lower merges first) and special tokens (text -> id)."""
        vocab_files.check_ranks(ranks, special_tokens, name)
        encoding = tiktoken.Encoding(
            name=name,
            pat_str=GPT2_PATTERN,
            mergeable_ranks=ranks,
            special_tokens=special_tokens,
            explicit_n_vocab=len(ranks) + len(special_tokens),
        )
        return cls(encoding, name=name)

    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        vocab_size: int,
        *,
        min_frequency: int = 2,
        show_progress: bool = False,
        name: str = "trained",
    ) -> Tokenizer:
        """Train a new byte-level BPE (GPT-2's regex, all 256 bytes, `<|endoftext|>` as the last id) with
        Hugging Face `tokenizers`. The result has at most `vocab_size` tokens: fewer when the text runs out
        of pairs seen `min_frequency` times."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import models, pre_tokenizers, trainers

        if vocab_size < 257:
            raise TokenizerError(f"vocab_size={vocab_size}: expected at least 257 (256 bytes + {ENDOFTEXT})")
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size - 1,  # the special token comes after, as GPT-2's 50256
            min_frequency=min_frequency,
            show_progress=show_progress,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=[],
        )
        hf.train_from_iterator([texts] if isinstance(texts, str) else texts, trainer)
        model = hf.get_vocab()
        merges = _hf_merges(hf)
        # Ids must be ranks in merge order: bytes first (in the trainer's order), then one new id per merge.
        # The trainer numbers them so already; renumbering keeps that true should it ever not.
        byte_tokens = sorted((i, t) for t, i in model.items() if len(t) == 1)
        ranks = {vocab_files.unicode_to_token(t, Path(name)): r for r, (_, t) in enumerate(byte_tokens)}
        for a, b in merges:
            token = vocab_files.unicode_to_token(a + b, Path(name))
            ranks.setdefault(token, len(ranks))
        return cls.from_ranks(ranks, {ENDOFTEXT: len(ranks)}, name=name)

    def save_pretrained(self, directory: str | os.PathLike, *, model_max_length: int = 1024) -> Path:
        """Write Hugging Face files (vocab.json, merges.txt, tokenizer.json, tokenizer_config.json,
        special_tokens_map.json) that transformers' GPT2Tokenizer loads and encodes identically."""
        directory = Path(directory)
        vocab_files.write_hf(directory, self.mergeable_ranks(), self.special_tokens, model_max_length)
        return directory

    # ------------------------------------------------------------------------------------- encoding

    def encode(self, text: str, *, allowed_special: AllowedSpecial = "none") -> list[int]:
        """Text -> ids. By default `<|endoftext|>` in the text is ordinary text (several tokens), so text
        from outside cannot inject a document boundary; pass allowed_special="all" (or a set of special
        tokens) to encode it as its special id, as transformers does. Lone surrogates become U+FFFD."""
        if allowed_special == "none":
            return self.encoding.encode_ordinary(text)
        return self.encoding.encode(
            text, allowed_special=self._allowed(allowed_special), disallowed_special=()
        )

    def encode_batch(
        self, texts: Sequence[str], *, num_threads: int = 8, allowed_special: AllowedSpecial = "none"
    ) -> list[list[int]]:
        """`encode` over many texts, in up to `num_threads` threads (no more than the CPUs this process has)."""
        texts = list(texts)
        if allowed_special == "none":
            encode = self.encoding.encode_ordinary
        else:
            encode = functools.partial(
                self.encoding.encode, allowed_special=self._allowed(allowed_special), disallowed_special=()
            )
        threads = min(num_threads, _usable_cpus(), len(texts))
        if threads <= 1:
            return [encode(text) for text in texts]
        # A few runs of texts per thread, not one task per text as tiktoken's encode_batch does: on short texts
        # the pool's per-task handoff costs more than the encoding (benchmarks/bench_tokenizer.py measures
        # both). Tiktoken releases the GIL while it encodes.
        size = -(-len(texts) // (4 * threads))
        runs = [texts[i : i + size] for i in range(0, len(texts), size)]
        with ThreadPoolExecutor(threads) as pool:
            encoded = pool.map(lambda run: [encode(text) for text in run], runs)
            return [ids for run_ids in encoded for ids in run_ids]

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> text; bytes that are not valid UTF-8 (a cut through a character) become U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)  # tensors, arrays
        try:
            return self.encoding.decode_bytes(ids)
        except (KeyError, OverflowError, TypeError, ValueError):
            bad = next((i for i in ids if not (isinstance(i, int) and 0 <= i < self.vocab_size)), ids)
            raise TokenizerError(
                f"token id {bad!r} is not in the vocabulary (0..{self.vocab_size - 1})"
            ) from None

    def token_bytes(self, token_id: int) -> bytes:
        return self.decode_bytes([token_id])

    def id_to_token(self, token_id: int) -> str:
        """The token as vocab.json spells it ("Ġthe"), like transformers' convert_ids_to_tokens."""
        if self.encoding.is_special_token(token_id):
            return self.token_bytes(token_id).decode()
        return vocab_files.token_to_unicode(self.token_bytes(token_id))

    def id_to_token_str(self, token_id: int) -> str:
        """The token as readable text (" the"); a partial UTF-8 character shows as U+FFFD."""
        return self.token_bytes(token_id).decode("utf-8", errors="replace")

    def _allowed(self, allowed: AllowedSpecial) -> Literal["all"] | set[str]:
        if allowed == "all":
            return "all"
        if isinstance(allowed, str):
            raise TokenizerError(
                f"allowed_special={allowed!r}: expected 'none', 'all' or a set of special tokens"
            )
        unknown = set(allowed) - self.encoding.special_tokens_set
        if unknown:
            raise TokenizerError(
                f"allowed_special: {sorted(unknown)} are not special tokens of {self.name}; "
                f"it has {sorted(self.encoding.special_tokens_set)}"
            )
        return set(allowed)

    # ------------------------------------------------------------------------------------- vocabulary

    @property
    def vocab_size(self) -> int:
        """Number of ids, special tokens included (50257 for GPT-2)."""
        return self.encoding.n_vocab

    @property
    def eot_token_id(self) -> int:
        """The id of `<|endoftext|>`, which GPT-2 puts between documents (50256)."""
        return self._eot

    eos_token_id = eot_token_id

    @property
    def special_tokens(self) -> dict[str, int]:
        return {s: self.encoding.encode_single_token(s) for s in self.encoding.special_tokens_set}

    def mergeable_ranks(self) -> dict[bytes, int]:
        """Token bytes -> rank (== id) for every non-special token."""
        special_ids = set(self.special_tokens.values())
        return {
            self.encoding.decode_single_token_bytes(i): i
            for i in range(self.vocab_size)
            if i not in special_ids
        }

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"Tokenizer(name={self.name!r}, vocab_size={self.vocab_size})"


# What to do when GPT-2's vocabulary cannot be loaded: part of every such error message.
HOW_TO_SUPPLY_GPT2 = (
    "set GPT2_VOCAB_FILE to a copy of r50k_base.tiktoken (the same file as openai-whisper's "
    f"whisper/assets/gpt2.tiktoken, sha256 {R50K_SHA256}), or copy it to "
    f"$TIKTOKEN_CACHE_DIR/{hashlib.sha1(R50K_URL.encode()).hexdigest()}"
)


def _gpt2_encoding() -> tiktoken.Encoding:
    """GPT-2's vocabulary: from $GPT2_VOCAB_FILE if set, else tiktoken's r50k_base (cache or download)."""
    path = os.environ.get("GPT2_VOCAB_FILE")
    if path:
        return _gpt2_encoding_from_file(path)
    try:
        return tiktoken.get_encoding("r50k_base")
    except Exception as e:  # tiktoken raises whatever its download raised (requests, OSError, ValueError)
        raise TokenizerError(
            f"cannot load GPT-2's vocabulary ({type(e).__name__}: {str(e)[:200]}); {HOW_TO_SUPPLY_GPT2}"
        ) from None


@functools.lru_cache(maxsize=2)
def _gpt2_encoding_from_file(path: str) -> tiktoken.Encoding:
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as e:
        raise TokenizerError(
            f"GPT2_VOCAB_FILE={path}: cannot read ({e.strerror}); {HOW_TO_SUPPLY_GPT2}"
        ) from None
    if digest != R50K_SHA256:
        raise TokenizerError(
            f"GPT2_VOCAB_FILE={path}: sha256 {digest} is not GPT-2's vocabulary; {HOW_TO_SUPPLY_GPT2}"
        )
    ranks, specials = vocab_files.read_tiktoken(Path(path))
    return Tokenizer.from_ranks(ranks, specials, name="r50k_base").encoding


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _hf_merges(hf) -> list[tuple[str, str]]:
    """A Hugging Face BPE tokenizer's merges, in order (older files write "a b", newer [a, b])."""
    merges = json.loads(hf.to_str())["model"]["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
