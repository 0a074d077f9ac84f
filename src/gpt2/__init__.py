"""gpt2: the GPT-2 system in one package.

    from gpt2 import generate_text, load_for_inference
    model, tokenizer = load_for_inference("runs/demo/run/checkpoint")  # auto device and dtype
    print(generate_text(model, tokenizer, "def main():", max_new_tokens=40, top_k=40, seed=0)[0].text)

Heavier pieces (training, evaluation, detection, serving) are imported from their modules.
"""

from gpt2.config import GPTConfig
from gpt2.inference import load_for_inference
from gpt2.model import GPT, KVCache
from gpt2.sampling import GenerationConfig, Sample, SamplingOptions, generate, generate_text, stream
from gpt2.tokenizer import Tokenizer

__all__ = ["GPT", "GPTConfig", "GenerationConfig", "KVCache", "Sample", "SamplingOptions", "Tokenizer", "generate",
           "generate_text", "load_for_inference", "stream"]
__version__ = "0.1.0"
