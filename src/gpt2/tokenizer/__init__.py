"""GPT-2's byte-level BPE: the `Tokenizer` (tiktoken underneath; new vocabularies trained with HF tokenizers)
and the vocabulary file formats it reads and writes."""

from gpt2.tokenizer.tokenizer import Tokenizer

__all__ = ["Tokenizer"]
