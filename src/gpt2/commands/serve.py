"""`gpt2 serve`: the OpenAI-compatible API and the web page, with uvicorn."""

from __future__ import annotations

import argparse
import os
import sys

from gpt2.commands import _options, detect_watermark

EPILOG = """\
examples:
  gpt2 serve --model out/run1                       http://127.0.0.1:8000/ : the page; /docs : the API
  gpt2 serve --model gpt2 --api-key "$KEY" --port 9000
  gpt2 serve --model gpt2 --detector det/tfidf --detector-report reports/tfidf/results.json \\
             --detector-trained-on "WebText vs GPT-2 117M top-k 40 samples"
  gpt2 serve --model gpt2 --watermark --watermark-key-file key.txt    completions watermarked by default
  curl -s localhost:8000/v1/completions -H 'content-type: application/json' \\
       -d '{"prompt": "Once upon a time", "max_tokens": 40, "top_k": 40, "seed": 1}'

The API follows OpenAI's /v1/completions (stream: true for server-sent events); top_k is an extension.
An empty prompt samples unconditionally (from <|endoftext|>). POST /v1/detect {"text": ...} gives GLTR's
token ranks, of a text of any length (rolling windows of the context). The page is described in docs/web.md.
The API key can also come from $GPT2_API_KEY. It binds 127.0.0.1 unless --host says otherwise.
With a watermark key, completions are watermarked unless a request sends "watermark": false, and
/v1/detect adds the text's z-test (gpt2 detect watermark's); the watermark key is never sent or logged."""

def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP (OpenAI API + web page)",
        description="Serve a model: OpenAI-compatible /v1/completions with batching, GLTR's /v1/detect, "
        "and a web page to write with the model and check texts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--api-key", default=os.environ.get("GPT2_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on /v1 routes "
                   "(default: $GPT2_API_KEY, else none)")
    p.add_argument("--max-batch", type=int, default=8, help="sequences decoded together (default: 8)")
    p.add_argument("--max-queue", type=int, default=64,
                   help="requests that may wait; more get 429 with Retry-After (default: 64)")
    p.add_argument("--max-tokens-limit", type=int, default=512,
                   help="largest max_tokens a request may ask for (default: 512)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 can be faster on a busy machine)")
    p.add_argument("--detector", default=None, metavar="DIR",
                   help="a saved detector (gpt2.detection) whose score /v1/detect and the page show")
    p.add_argument("--detector-trained-on", default=None, metavar="TEXT",
                   help="what the page says the detector was trained on, e.g. 'WebText vs GPT-2 117M "
                   "samples' (default: what its detector.json says, e.g. the number of texts)")
    p.add_argument("--detector-report", default=None, metavar="JSON",
                   help="results.json of `gpt2 detect eval` for this detector: the page shows its measured "
                   "accuracy (default: DIR/results.json if present, else the validation accuracy saved "
                   "at training, else 'not measured')")
    p.add_argument("--detector-min-tokens", type=int, default=50,
                   help="the page shows the detector's score only for texts this long (default: 50)")
    p.add_argument("--model-name", default=None,
                   help="the name the page and /v1/models show (default: the last part of --model, "
                   "never a full path)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    _options.add_options(p)
    detect_watermark.add_watermark_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Lazy: torch, uvicorn and the app load when serving, not for every `gpt2 ...` command line.
    import torch
    import uvicorn

    from gpt2.errors import GPT2Error
    from gpt2.server import create_app
    from gpt2.server.about import describe_detector, short_model_name

    for name in ("max_batch", "max_queue", "max_tokens_limit", "detector_min_tokens"):
        if getattr(args, name) < 1:
            raise GPT2Error(f"--{name.replace('_', '-')} must be at least 1; got {getattr(args, name)}")
    watermark = detect_watermark.watermark_from_args(args)  # a bad key fails before the model loads
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = _options.load(args)
    detector = load_detector(args.detector) if args.detector else None
    about = describe_detector(args.detector, args.detector_trained_on, args.detector_report) if detector else None
    app = create_app(model, tokenizer, model_name=args.model_name or short_model_name(str(args.model)),
                     api_key=args.api_key or None, max_batch=args.max_batch, max_queue=args.max_queue,
                     max_tokens_limit=args.max_tokens_limit, detector=detector, detector_about=about,
                     detector_min_tokens=args.detector_min_tokens, watermark=watermark)
    if watermark is not None:
        settings = ", ".join(f"{k} {v}" for k, v in watermark.describe().items())
        print(f"gpt2 serve: watermarking completions ({settings}); a request may send \"watermark\": false",
              file=sys.stderr)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        print(f"gpt2 serve: warning: listening on {args.host} without --api-key; anyone who can reach it "
              "can use it", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def load_detector(path: str):
    """A detector saved by `gpt2.detection` (its `name` and `score(texts)` are what the server uses)."""
    from gpt2.detection import load_detector

    return load_detector(path)
