"""`gpt2 detect`: train, evaluate and apply synthetic-text detectors."""

from __future__ import annotations

import argparse
import json
import sys

from gpt2.commands.detect_robustness import add_detect_robustness
from gpt2.commands.detect_watermark import add_detect_watermark
from gpt2.hardware import DTYPE_CHOICES

EPILOG = """\
detectors:
  tfidf           OpenAI's baseline: TF-IDF 1-2-grams + logistic regression, C chosen on valid
  gltr            GLTR rank buckets + mean log-prob + entropy under --model, logistic regression
  loglik, logrank, entropy, fast-detectgpt
                  zero-shot statistics under --model (calibrated on valid when given)
  binoculars      zero-shot: --model is the performer, --observer the observer (same tokenizer)
  classifier      --model fine-tuned with a classification head (mean or last-token pooling)
  encoder-classifier
                  --backbone (default: roberta-base; any encoder transformers loads) fine-tuned with
                  OpenAI's RoBERTa detector recipe (Adam 2e-5, batch 24, random windows of <= 128 tokens;
                  needs gpt2[detect])

examples:
  gpt2 detect train --detector tfidf --real webtext.train.jsonl --fake small-117M-k40.train.jsonl \\
      --valid-real webtext.valid.jsonl --valid-fake small-117M-k40.valid.jsonl --out det/tfidf
  gpt2 detect eval det/tfidf --real webtext.test.jsonl --fake small-117M-k40.test.jsonl --out reports/tfidf
  gpt2 detect score det/gltr "Some text to check"          probability + per-token GLTR ranks (JSON)
  gpt2 detect matrix --data-dir data --sources small-117M small-117M-k40 --detector tfidf --out reports/m
  gpt2 detect matrix --dataset openai --detector tfidf --limit-train 20000 --out reports/transfer
  gpt2 detect train --detector encoder-classifier --backbone roberta-base --real webtext.train.jsonl \
      --fake xl-1542M.train.jsonl --valid-real webtext.valid.jsonl --valid-fake xl-1542M.valid.jsonl --out det/rb
  gpt2 detect load-openai base --out det/openai-base    OpenAI's released RoBERTa detector, ready to use
  gpt2 serve --model gpt2 --detector det/openai-base    the page shows P(real) / P(fake) as you type
  gpt2 detect benchmark --data-dir ../shared/data/gpt2-output --model out/run1 --out reports/real
  gpt2 detect watermark -m out/run1 --watermark-key-file key.txt "Some text"   z-score, p-value (JSON)
  gpt2 detect robustness -m runs/demo/run/checkpoint --detectors tfidf gltr loglik --out reports/robust"""


def _add_detector_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", "-d", default="tfidf", help="detector name (default: tfidf)")
    p.add_argument("--model", "-m", default=None, metavar="DIR",
                   help="scoring / backbone checkpoint (all detectors but tfidf)")
    p.add_argument("--observer", default=None, metavar="DIR", help="binoculars: the observer checkpoint")
    p.add_argument("--reference", default=None, metavar="DIR",
                   help="fast-detectgpt: a separate sampling model (default: the scoring model)")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="tokens of each text to read (default: 256; classifier: 128)")
    p.add_argument("--convention", choices=("hf", "document"), default=None,
                   help="zero-shot detectors: hf (the default: the text as the authors' Hugging Face code reads "
                   "it, first token context only) or document (conditioned on <|endoftext|>, every token "
                   "scored; DetectGPT's OpenAI path); see docs/detection.md")
    p.add_argument("--xppl", choices=("all", "scored"), default=None,
                   help="binoculars: average the cross-perplexity where its authors' code does (all, the "
                   "default) or over the log-perplexity's positions (scored)")
    p.add_argument("--min-df", type=int, default=None, help="tfidf: minimum document frequency (default: 5)")
    p.add_argument("--backbone", default=None, metavar="NAME_OR_DIR",
                   help="encoder-classifier: the encoder to fine-tune (roberta-base, the default; roberta-large; "
                   "a directory)")
    p.add_argument("--pooling", choices=("mean", "last"), default=None,
                   help="classifier pooling (default: mean)")
    p.add_argument("--epochs", type=int, default=None, help="classifiers: most epochs (default: 5)")
    p.add_argument("--lr", type=float, default=None, help="classifiers: learning rate (default: 2e-5)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="classifiers: batch size (default: 16; encoder-classifier 24, as OpenAI's)")
    p.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                   help="scoring models' precision (default: auto = bf16 where the device multiplies it "
                   "natively, else fp32; the classifier trains in fp32 unless told otherwise)")
    p.add_argument("--device", default="auto", help="torch device (default: auto = cuda if available, else cpu)")


def _detector_options(args: argparse.Namespace) -> dict:
    name = args.detector
    opts: dict = {}
    if name == "tfidf":
        if args.min_df is not None:
            opts["min_df"] = args.min_df
        return opts
    from gpt2.detection import DetectorError

    if name == "encoder-classifier":
        opts.update(device=args.device, **({"backbone": args.backbone} if args.backbone else {}))
    elif args.backbone:
        raise DetectorError(f"--backbone is the encoder that --detector encoder-classifier fine-tunes; "
                            f"{name!r} reads the GPT-2 checkpoint --model")
    elif args.model is None:
        raise DetectorError(f"detector {name!r} needs a scoring checkpoint: pass --model DIR")
    else:
        opts.update(model=args.model, device=args.device)
    if args.dtype != "auto" and "model" in opts:
        opts["dtype"] = args.dtype
    if args.max_tokens is not None:
        opts["max_tokens"] = args.max_tokens
    if args.xppl is not None and name != "binoculars":
        raise DetectorError(f"--xppl applies to binoculars, not {name!r}")
    if args.convention is not None:
        from gpt2.detection import ZERO_SHOT

        if name not in ZERO_SHOT:
            raise DetectorError(f"--convention applies to the zero-shot detectors ({', '.join(ZERO_SHOT)}), "
                                f"not {name!r}")
        opts["convention"] = args.convention
    if name == "binoculars":
        opts["observer"] = args.observer
        if args.xppl is not None:
            opts["xppl"] = args.xppl
    if name == "fast-detectgpt" and args.reference:
        opts["reference"] = args.reference
    if name in ("classifier", "encoder-classifier"):
        for key, value in (("pooling", args.pooling if name == "classifier" else None),
                           ("max_epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size)):
            if value is not None:
                opts[key] = value
    return opts


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "detect", help="train and evaluate detectors of machine-written text",
        description="Detect GPT-2 output: train, evaluate (AUROC, TPR at 1% and 0.1% FPR, accuracy by "
                    "length), score one text with its GLTR ranks, and the transfer matrix.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for add in (_add_train, _add_eval, _add_score, _add_matrix, _add_benchmark, _add_load_openai,
                add_detect_watermark, add_detect_robustness):
        add(sub)


def _add_load_openai(sub: argparse._SubParsersAction) -> None:
    o = sub.add_parser("load-openai", help="OpenAI's released RoBERTa detector as a detector directory",
                       description="Download OpenAI's fine-tuned RoBERTa detector (detector-base.pt, 478 MB, or "
                       "detector-large.pt, 1.5 GB) once into the cache ($GPT2_DATA_DIR, else ~/.cache/gpt2), load "
                       "it into current transformers (its old key layout mapped) and save it as a detector "
                       "that `gpt2 detect eval|score` and `gpt2 serve --detector` use. Needs gpt2[detect].")
    o.add_argument("size", choices=("base", "large"), help="roberta-base or roberta-large detector")
    o.add_argument("--out", "-o", required=True, metavar="DIR", help="where to save the detector")
    o.add_argument("--checkpoint", default=None, metavar="FILE",
                   help="a detector-{base,large}.pt already on disk (default: download it)")
    o.add_argument("--config", default=None, metavar="NAME_OR_DIR",
                   help="the architecture (default: roberta-base / roberta-large from the hub)")
    o.add_argument("--tokenizer", default=None, metavar="NAME_OR_DIR",
                   help="the tokenizer (default: the --config's, else roberta-base / roberta-large)")
    o.add_argument("--no-progress", action="store_true")
    o.set_defaults(func=run_load_openai)


def run_load_openai(args: argparse.Namespace) -> int:
    from gpt2.detection import load_openai

    det = load_openai(args.size, args.out, checkpoint=args.checkpoint, config=args.config,
                      tokenizer=args.tokenizer, progress=not args.no_progress)
    print(json.dumps({"detector": det.name, "saved": str(args.out), "info": det.info}, indent=2))
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train (or calibrate) a detector and save it")
    _add_detector_options(t)
    t.add_argument("--real", default=None, metavar="JSONL", help="human texts (jsonl with a text field)")
    t.add_argument("--fake", default=None, metavar="JSONL", help="machine texts")
    t.add_argument("--valid-real", default=None, metavar="JSONL", help="human texts to choose settings on")
    t.add_argument("--valid-fake", default=None, metavar="JSONL", help="machine texts to choose settings on")
    t.add_argument("--limit", type=int, default=None, metavar="N", help="read at most N texts per file")
    t.add_argument("--out", "-o", required=True, metavar="DIR", help="where to save the detector")
    t.add_argument("--no-progress", action="store_true")
    t.set_defaults(func=run_train)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="evaluate a saved detector: JSON + Markdown + ROC plot")
    e.add_argument("detector_dir", metavar="DETECTOR_DIR")
    e.add_argument("--real", required=True, metavar="JSONL")
    e.add_argument("--fake", required=True, metavar="JSONL")
    e.add_argument("--limit", type=int, default=None, metavar="N", help="read at most N texts per file")
    e.add_argument("--out", "-o", required=True, metavar="DIR",
                   help="writes results.json, results.md, roc.png")
    e.add_argument("--device", default="auto", help="torch device (default: auto)")
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=run_eval)


def _add_score(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("score", help="P(machine) of one text and its per-token GLTR ranks, as JSON")
    s.add_argument("detector_dir", metavar="DETECTOR_DIR")
    s.add_argument("text", help="the text; '-' reads stdin")
    s.add_argument("--model", "-m", default=None, metavar="DIR",
                   help="checkpoint for the GLTR ranks (default: the detector's scoring model, if any)")
    s.add_argument("--top-k", type=int, default=5, help="alternatives listed per token (default: 5)")
    s.add_argument("--device", default="auto", help="torch device (default: auto)")
    s.set_defaults(func=run_score)


def _add_matrix(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("matrix", help="the transfer table: trained on each source, tested on each")
    _add_detector_options(m)
    m.add_argument("--data-dir", default=None, metavar="DIR", help="holds <source>.{train,valid,test}.jsonl")
    m.add_argument("--dataset", choices=("openai",), default=None,
                   help="openai: OpenAI's output-dataset files, downloaded once into the data directory")
    m.add_argument("--sources", nargs="+", default=None,
                   help="output datasets, e.g. small-117M small-117M-k40 (with --dataset openai, default: "
                   "all eight model x sampling sets)")
    m.add_argument("--real-name", default="webtext", help="the human files' prefix (default: webtext)")
    m.add_argument("--limit-train", type=int, default=None, metavar="N",
                   help="train on at most N texts per side")
    m.add_argument("--limit-test", type=int, default=None, metavar="N",
                   help="test on at most N texts per side")
    m.add_argument("--out", "-o", required=True, metavar="DIR", help="writes matrix.json and matrix.md")
    m.add_argument("--no-progress", action="store_true")
    m.set_defaults(func=run_matrix)


def _add_benchmark(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("benchmark", help="every detector on the shared gpt2-output subsets")
    b.add_argument("--data-dir", default=None, metavar="DIR", help="the gpt2-output subsets' directory")
    b.add_argument("--dataset", choices=("openai",), default=None,
                   help="openai: OpenAI's full webtext and small-117M-k40 files (train/valid/test), downloaded "
                   "once into the data directory; their own splits, as OpenAI's TF-IDF baseline")
    b.add_argument("--limit", type=int, default=None, metavar="N",
                   help="with --dataset: read at most N texts of each file (the train files hold 250,000)")
    b.add_argument("--model", "-m", default=None, metavar="DIR", help="scoring / backbone checkpoint")
    b.add_argument("--observer", default=None, metavar="DIR", help="binoculars' observer checkpoint")
    b.add_argument("--backbone", default=None, metavar="NAME_OR_DIR",
                   help="also run encoder-classifier: this encoder fine-tuned (needs gpt2[detect])")
    b.add_argument("--detectors", nargs="+", default=None, help="which (default: all)")
    b.add_argument("--max-tokens", type=int, default=256, help="tokens per text for scoring (default: 256)")
    b.add_argument("--protocol", choices=("subsets", "pooled"), default="subsets",
                   help="subsets: train on the train subset, test on half the valid subset; pooled: both "
                   "subsets mixed by a hash, then split (default: subsets)")
    b.add_argument("--classifier-epochs", type=int, default=3)
    b.add_argument("--classifier-lr", type=float, default=1e-4)
    b.add_argument("--out", "-o", required=True, metavar="DIR")
    b.add_argument("--no-progress", action="store_true")
    b.set_defaults(func=run_benchmark)


def _read(path, limit=None):
    from gpt2.detection.data import read_texts

    return read_texts(path, limit)


def run_train(args: argparse.Namespace) -> int:
    from gpt2.detection import DETECTORS, DetectorError, make_detector

    if args.detector not in DETECTORS:
        raise DetectorError(f"unknown detector {args.detector!r}; choose one of {', '.join(DETECTORS)}")
    if (args.valid_real is None) != (args.valid_fake is None):
        raise DetectorError("give both --valid-real and --valid-fake, or neither")
    zero_shot = not DETECTORS[args.detector].needs_training
    one_missing = (args.real is None) != (args.fake is None)
    if (args.real is None or args.fake is None) and not (zero_shot and not one_missing):
        raise DetectorError(f"{args.detector} needs --real and --fake training files"
                            if not zero_shot else "give both --real and --fake, or neither")
    det = make_detector(args.detector, **_detector_options(args))
    det.progress = not args.no_progress
    valid = None
    if args.valid_real:
        valid = (_read(args.valid_real, args.limit).texts, _read(args.valid_fake, args.limit).texts)
    if args.real is not None:
        det.fit(_read(args.real, args.limit).texts, _read(args.fake, args.limit).texts, valid)
    elif valid is not None:
        det.fit([], [], valid)
    path = det.save(args.out)
    print(json.dumps({"detector": det.name, "saved": str(path), "threshold": det.threshold, "info": det.info},
                     indent=2, default=str))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from gpt2.detection.report import evaluate, write_report

    det = _load(args.detector_dir, args.device)
    det.progress = not args.no_progress
    result = evaluate(det, _read(args.real, args.limit), _read(args.fake, args.limit))
    paths = write_report(result, args.out, title=f"{det.name} on {args.fake}")
    shown = {k: v for k, v in result.items() if k != "roc"}
    print(json.dumps(shown, indent=2))
    print(f"wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    return 0


def _load(directory, device):
    from gpt2.detection import load_detector, read_meta

    name = read_meta(directory)["detector"]
    return load_detector(directory, **({} if name == "tfidf" else {"device": device}))


def run_score(args: argparse.Namespace) -> int:
    from gpt2.detection import ZeroShotDetector
    from gpt2.detection.statistics import load_model
    from gpt2.scoring import token_ranks

    text = sys.stdin.read() if args.text == "-" else args.text
    det = _load(args.detector_dir, args.device)
    out = {"detector": det.name, "probability": float(det.score([text])[0]), "threshold": det.threshold}
    out["machine"] = out["probability"] > det.threshold
    if isinstance(det, ZeroShotDetector):
        out["statistic"] = float(det.statistics([text])[0])
    scoring = args.model or getattr(det, "model", None) or getattr(det, "model_path", None)
    if isinstance(scoring, str):
        model, tokenizer = load_model(scoring, args.device)
        out["scoring_model"] = scoring
        out["tokens"] = token_ranks(model, tokenizer, text, top_k=args.top_k,
                                    max_tokens=getattr(det, "max_tokens", None))
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def run_matrix(args: argparse.Namespace) -> int:
    from gpt2.detection import make_detector
    from gpt2.detection.report import markdown_matrix, transfer_matrix, write_matrix

    options = _detector_options(args)
    data_dir, sources = _output_dataset(args)
    result = transfer_matrix(data_dir, sources, lambda: make_detector(args.detector, **options),
                             real_name=args.real_name, limit_train=args.limit_train,
                             limit_test=args.limit_test,
                             progress=not args.no_progress)
    paths = write_matrix(result, args.out)
    print(markdown_matrix(result))
    print(f"wrote {', '.join(str(p) for p in paths.values())}", file=sys.stderr)
    return 0


def _output_dataset(args: argparse.Namespace) -> tuple[str, list[str]]:
    """(directory, sources) for `matrix`: --data-dir as given, or OpenAI's files fetched (--dataset openai)."""
    from gpt2.data.sources import OUTPUT_DATASET_NAMES, fetch
    from gpt2.detection import DetectorError

    if (args.data_dir is None) == (args.dataset is None):
        raise DetectorError("give --data-dir (a directory of <name>.<split>.jsonl files) or --dataset openai")
    sources = args.sources or ([n for n in OUTPUT_DATASET_NAMES if n != args.real_name] if args.dataset else None)
    if not sources:
        raise DetectorError("--sources: which output datasets (e.g. small-117M small-117M-k40)")
    if args.dataset is None:
        return args.data_dir, sources
    unknown = [n for n in [args.real_name, *sources] if n not in OUTPUT_DATASET_NAMES]
    if unknown:
        raise DetectorError(f"not in OpenAI's output dataset: {', '.join(unknown)} (it has "
                            f"{', '.join(OUTPUT_DATASET_NAMES)})")
    paths = [fetch(f"gpt2-output/{name}.{split}", progress=not args.no_progress)
             for name in (args.real_name, *sources) for split in ("train", "valid", "test")]
    return str(paths[0].parent), sources


def run_benchmark(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gpt2.detection import DetectorError
    from gpt2.detection.report import REAL_DATA_DETECTORS, real_data_benchmark

    if (args.data_dir is None) == (args.dataset is None):
        raise DetectorError("give --data-dir (the shared subsets) or --dataset openai (OpenAI's full files)")
    data_dir, protocol = args.data_dir, args.protocol
    if args.dataset == "openai":
        from gpt2.data.sources import fetch

        paths = [fetch(f"gpt2-output/{name}.{split}", progress=not args.no_progress)
                 for name in ("webtext", "small-117M-k40") for split in ("train", "valid", "test")]
        data_dir, protocol = paths[0].parent, "openai"
    default = (*REAL_DATA_DETECTORS, *(["encoder-classifier"] if args.backbone else []))
    real_data_benchmark(data_dir, args.out, detectors=args.detectors or default, backbone=args.backbone,
                        model=args.model, limit=args.limit,
                        observer=args.observer, max_tokens=args.max_tokens, protocol=protocol,
                        classifier_options={"max_epochs": args.classifier_epochs, "lr": args.classifier_lr},
                        progress=not args.no_progress)
    print(Path(args.out, "results.md").read_text(encoding="utf-8"))
    return 0
