"""A small RoBERTa with random weights and a byte-level BPE vocabulary trained on given texts: the stand-in
for roberta-base where its pretrained weights cannot be downloaded (this workplace), for
`gpt2 detect train --detector encoder-classifier --backbone DIR` and `gpt2 detect benchmark --backbone DIR`.

    .venv/bin/python benchmarks/tiny_encoder.py --texts ../shared/data/gpt2-output/webtext.subset.jsonl \\
        --out runs/tiny-roberta

The vocabulary is learned from the --texts (human ones, so no label leaks into it); the architecture is
roberta-base's shape scaled down (--layers, --width; heads of 64, MLP 4x, 512 positions).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import transformers
from tokenizers import ByteLevelBPETokenizer
from tokenizers.processors import RobertaProcessing

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # roberta-base's ids 0..4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=Path, nargs="+", required=True, help="jsonl files with a text field")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    texts = [json.loads(line)["text"] for path in args.texts for line in path.open(encoding="utf-8") if line.strip()]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=args.vocab_size, min_frequency=2, special_tokens=SPECIALS,
                            show_progress=False)
    bpe.post_processor = RobertaProcessing(("</s>", 2), ("<s>", 0))
    args.out.mkdir(parents=True, exist_ok=True)
    bpe.save(str(args.out / "tokenizer.json"))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(args.out / "tokenizer.json"), bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", mask_token="<mask>", model_max_length=512)
    config = transformers.RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=args.width, num_hidden_layers=args.layers,
        num_attention_heads=args.width // 64, intermediate_size=4 * args.width, max_position_embeddings=514,
        type_vocab_size=1, num_labels=2)
    torch.manual_seed(args.seed)
    model = transformers.RobertaForSequenceClassification(config)
    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(args.out)
    model.save_pretrained(args.out)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.out}: RoBERTa {args.layers} x {args.width}, {n / 1e6:.1f}M parameters, vocabulary {len(tokenizer)} "
          f"from {len(texts)} texts")


if __name__ == "__main__":
    main()
