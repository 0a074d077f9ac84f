"""gpt2: the GPT-2 system in one package."""

from gpt2.config import GPTConfig
from gpt2.model import GPT, KVCache

__all__ = ["GPT", "GPTConfig", "KVCache"]
__version__ = "0.1.0"
