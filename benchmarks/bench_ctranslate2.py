"""CPU decoding against CTranslate2, the engine people pick for fast CPU generation, and transformers.

    .venv/bin/pip install ctranslate2        # a benchmark dependency only, never the package's
    .venv/bin/python benchmarks/bench_ctranslate2.py [--repeats 3] [--new-tokens 64] [--batch 32]

One random 124M-shaped GPT-2 (speed does not depend on the weights' values) is run by: ours in fp32 as the CLI
loads it (oneDNN-packed where this CPU has the layout), ours with `--dtype int8` (and, where bf16 is native, int8
with int8 activations, the path AVX2 machines take), CTranslate2 float32 and int8
(the same weights converted with its TransformersConverter, from the checkpoint transformers reads), and
transformers' GPT2LMHeadModel in fp32. Two cases: batch 1 greedy, and --batch prompts sampled with top-k 40;
each prompt has --prompt-tokens random ids and every engine produces exactly --new-tokens tokens (prefill
included in the time). All engines use the same thread count, run in one process, interleaved (median of
--repeats after a warm-up), and the ratios are ours over CTranslate2's best.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import tempfile
from pathlib import Path

# Sleeping, not spinning, OpenMP waiters (as in the other benchmarks): spinning ones steal the other engine's
# cores between its calls. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from _machine import machine_details, time_alternately  # noqa: E402
from _pair import hf_twin  # noqa: E402

from gpt2.config import GPTConfig  # noqa: E402
from gpt2.hardware import int8_activations  # noqa: E402
from gpt2.model import GPT  # noqa: E402
from gpt2.packing import pack_if_possible  # noqa: E402
from gpt2.quantize import quantize_int8  # noqa: E402
from gpt2.sampling import generate  # noqa: E402
from gpt2.tokenizer import Tokenizer  # noqa: E402

TOP_K = 40


def ct2_generators(checkpoint: Path, threads: int) -> dict:
    """CTranslate2 generators of the checkpoint, float32 and int8 (weights int8, activations quantized)."""
    import ctranslate2
    from ctranslate2.converters import TransformersConverter

    generators = {}
    for compute in ("float32", "int8"):
        out = checkpoint.parent / f"ct2-{compute}"
        TransformersConverter(str(checkpoint)).convert(str(out), quantization=compute, force=True)
        generators[compute] = ctranslate2.Generator(str(out), device="cpu", compute_type=compute,
                                                    intra_threads=threads, inter_threads=1)
    return generators


def run_ours(model, prompts, new_tokens, top_k):
    samples = generate(model, prompts, max_new_tokens=new_tokens, top_k=top_k, seed=1, eos_token_id=None,
                       temperature=0 if top_k is None else 1.0)
    assert all(len(s.tokens) == new_tokens for s in samples)
    return [s.tokens for s in samples]


def run_ct2(generator, prompts_as_tokens, new_tokens, top_k):
    results = generator.generate_batch(prompts_as_tokens, max_length=new_tokens, min_length=new_tokens,
                                       sampling_topk=top_k or 1, include_prompt_in_result=False, beam_size=1)
    assert all(len(r.sequences_ids[0]) == new_tokens for r in results), [len(r.sequences_ids[0]) for r in results]
    return [r.sequences_ids[0] for r in results]


def run_hf(model, prompts, new_tokens, top_k):
    ids = torch.tensor(prompts)
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=top_k is not None, top_k=top_k,
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
    return out[:, ids.size(1):].tolist()


def time_case(engines, ct2, hf, prompts, vocab, new_tokens, top_k, repeats) -> dict[str, float]:
    """tokens/s of every engine on one case, run in turn."""
    as_tokens = [[vocab[i] for i in p] for p in prompts]
    fns = {name: (lambda m=m: run_ours(m, prompts, new_tokens, top_k)) for name, m in engines.items()}
    fns |= {f"CTranslate2 {c}": (lambda gen=gen: run_ct2(gen, as_tokens, new_tokens, top_k))
            for c, gen in ct2.items()}
    fns["transformers fp32"] = lambda: run_hf(hf, prompts, new_tokens, top_k)
    times, _ = time_alternately(list(fns.values()), repeats)
    return {name: len(prompts) * new_tokens / t for name, t in zip(fns, times, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="124M")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    import ctranslate2

    threads = torch.get_num_threads()
    print(machine_details(["torch", "transformers", "ctranslate2"]))
    torch.manual_seed(0)
    ours = GPT(GPTConfig.from_preset(args.preset)).eval()
    int8_default = f"ours int8 ({int8_activations()} activations, as the CLI loads it)"
    engines = {"ours fp32 (as the CLI loads it)": pack_if_possible(copy.deepcopy(ours)),
               int8_default: quantize_int8(copy.deepcopy(ours))}
    if int8_activations() == "bf16":  # where bf16 is native, time the other int8 path too (on AVX2 its bf16
        # GEMMs for wide inputs are emulated, an order of magnitude slower: not worth the minutes)
        engines["ours int8 (int8 activations)"] = quantize_int8(copy.deepcopy(ours), activations="int8")
    hf = hf_twin(ours).eval()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "hf"
        hf.save_pretrained(checkpoint)
        Tokenizer.from_pretrained("gpt2").save_pretrained(checkpoint)  # the converter reads the vocabulary
        ct2 = ct2_generators(checkpoint, threads)
    vocab = _token_strings()
    g = torch.Generator().manual_seed(1)
    results = {}
    for case, batch, top_k in (("b1 greedy", 1, None), (f"b{args.batch} top-k {TOP_K}", args.batch, TOP_K)):
        prompts = torch.randint(0, 50256, (batch, args.prompt_tokens), generator=g).tolist()
        results[case] = time_case(engines, ct2, hf, prompts, vocab, args.new_tokens, top_k, args.repeats)
    print(f"\nmodel {args.preset} (random weights), prompt {args.prompt_tokens} tokens, {args.new_tokens} new tokens, "
          f"{threads} threads, median of {args.repeats}; tokens/s (ctranslate2 {ctranslate2.__version__})\n")
    cases = list(results)
    print("| engine | " + " | ".join(f"{c} tok/s" for c in cases) + " |")
    print("| --- |" + " ---: |" * len(cases))
    for name in results[cases[0]]:
        print(f"| {name} | " + " | ".join(f"{results[c][name]:.1f}" for c in cases) + " |")
    for c in cases:
        best_ct2 = max(v for k, v in results[c].items() if k.startswith("CTranslate2"))
        best_ours = max(v for k, v in results[c].items() if k.startswith("ours"))
        int8 = next(v for k, v in results[c].items() if k.startswith("ours int8") and "as the CLI" in k)
        int8_vs_fp32 = int8 / results[c]["ours fp32 (as the CLI loads it)"]
        print(f"{c}: ours best / CTranslate2 best = {best_ours / best_ct2:.2f}x; ours int8 / ours fp32 = "
              f"{int8_vs_fp32:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


def _token_strings() -> dict[int, str]:
    """GPT-2's ids -> the byte-level token strings CTranslate2 takes (transformers' vocab.json spelling)."""
    with tempfile.TemporaryDirectory() as tmp:
        Tokenizer.from_pretrained("gpt2").save_pretrained(tmp)
        return {i: t for t, i in json.loads((Path(tmp) / "vocab.json").read_text(encoding="utf-8")).items()}


if __name__ == "__main__":
    main()
