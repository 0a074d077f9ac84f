"""`gpt2 study`: human studies of credibility and detection (create, invite, serve, export, report,
simulate, withdraw), thin over gpt2.study. The library is imported inside each subcommand so that
`gpt2 --help` does not load FastAPI, SQLite or matplotlib."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
examples:
  gpt2 study create --machine 124M/k40=out/small-k40.test.jsonl --machine 355M/k40=out/medium-k40.test.jsonl \\
      --real real=out/webtext.test.jsonl --items-per-rater 20 --gltr-model gpt2 --out study.json
  gpt2 study invite study.json --n 20 --base-url https://study.example.org   (prints one link per rater)
  gpt2 study invite study.json --admin                                        (a link to the progress view)
  gpt2 study serve study.json --host 0.0.0.0 --port 8000
  gpt2 study export study.json --out answers.csv
  gpt2 study report study.json --out report/ [--detector detectors/tfidf]
  gpt2 study simulate study.json --n 20 --out report-simulated/   (simulated raters, full HTTP path)
  gpt2 study withdraw study.json --rater 7                        (deletes rater 7's token and answers)

The database defaults to the study file with .sqlite (simulate: .simulated.sqlite). Invitation links carry
the token after '#', which browsers never send to servers; tokens are stored hashed and printed once.
See docs/human-study.md."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("study", help="human studies: credibility ratings and human detection",
                              description="Run a human study as GPT-2's 1.5B release did: credibility (1-10) "
                              "and person-or-machine judgements, with an optional GLTR-colours arm.",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="study_command", metavar="STEP", required=True)
    _create_parser(sub)
    q = _with_study(sub, "invite", "new raters' invitation links (or an admin link)")
    q.add_argument("--n", type=int, default=1, help="raters to invite (default: 1)")
    q.add_argument("--base-url", default="http://127.0.0.1:8000", help="where raters reach the server")
    q.add_argument("--admin", action="store_true", help="print an admin link to the progress view instead")
    q.set_defaults(func=run_invite)
    q = _with_study(sub, "serve", "serve the rating page and the admin view")
    q.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    q.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    q.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    q.set_defaults(func=run_serve)
    q = _with_study(sub, "export", "write the answers as JSONL or CSV (with sources: for analysis)")
    q.add_argument("--out", "-o", required=True, help="FILE.jsonl or FILE.csv")
    q.set_defaults(func=run_export)
    q = _with_study(sub, "report", "statistics, Markdown, JSON and plots")
    _report_options(q)
    q.set_defaults(func=run_report)
    q = _with_study(sub, "simulate", "simulated raters through the HTTP path, then the report")
    q.add_argument("--n", type=int, default=20, help="simulated raters (default: 20)")
    q.add_argument("--careless", type=float, default=0.1, help="share answering at random (default: 0.1)")
    _report_options(q)
    q.set_defaults(func=run_simulate)
    q = _with_study(sub, "withdraw", "delete one rater's token, assignment and answers")
    q.add_argument("--rater", type=int, required=True, help="the rater's number (as invite and export show)")
    q.set_defaults(func=run_withdraw)


def _with_study(sub, name: str, help: str) -> argparse.ArgumentParser:
    q = sub.add_parser(name, help=help, description=help)
    q.add_argument("study", metavar="STUDY", help="the study file (gpt2 study create)")
    q.add_argument("--db", default=None, help="the database (default: STUDY with .sqlite)")
    return q


def _create_parser(sub) -> None:
    q = sub.add_parser("create", help="a study file from model outputs and real texts",
                       description="A balanced, blinded study file from output-dataset files and real texts.")
    q.add_argument("--machine", action="append", default=[], metavar="LABEL=FILE[,FILE]",
                   help="a machine source: output-dataset jsonl (gpt2 outputs); repeatable")
    q.add_argument("--real", action="append", default=[], metavar="LABEL=PATH[,PATH]",
                   help="a human source: jsonl with a text field, .txt files or directories; repeatable")
    q.add_argument("--out", "-o", required=True, help="the study file to write (JSON)")
    q.add_argument("--items-per-rater", type=int, default=20, help="study items per rater (default: 20)")
    q.add_argument("--per-source", type=int, default=100, help="items taken from each source (default: 100)")
    q.add_argument("--max-words", type=int, default=200, help="texts cut to this many words (default: 200)")
    q.add_argument("--min-words", type=int, default=40, help="shorter texts are skipped (default: 40)")
    q.add_argument("--no-origin", action="store_true", help="do not ask 'person or machine?'")
    q.add_argument("--no-confidence", action="store_true", help="ask 'person or machine?' without confidence")
    q.add_argument("--comment", action="store_true", help="add an optional free-text question")
    q.add_argument("--no-checks", action="store_true", help="no attention-check items")
    q.add_argument("--gltr-model", default=None, metavar="DIR_OR_NAME",
                   help="add the GLTR arm: half the raters see this model's GLTR colours")
    q.add_argument("--device", default="auto", help="device for --gltr-model (default: auto)")
    q.add_argument("--title", default="Reading study", help="the title raters see")
    q.add_argument("--seed", type=int, default=0, help="seed of selection, order and arms (default: 0)")
    q.set_defaults(func=run_create)


def _report_options(q: argparse.ArgumentParser) -> None:
    q.add_argument("--out", "-o", required=True, metavar="DIR", help="report directory")
    q.add_argument("--detector", default=None, metavar="DIR",
                   help="a saved detector (gpt2 detect train) to score the same items")
    q.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples (default: 2000)")
    q.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and permutations (default: 0)")


def _open(args: argparse.Namespace, suffix: str = ".sqlite"):
    from gpt2.study import Store, load_study

    study = load_study(args.study)
    db = args.db or str(Path(args.study).with_suffix(suffix))
    return study, Store(db, study.sha256)


def run_create(args: argparse.Namespace) -> int:
    from gpt2.study import write_study
    from gpt2.study.create import build_study, parse_source

    sources = [parse_source(s, machine=True) for s in args.machine] + [parse_source(s, machine=False)
                                                                         for s in args.real]
    colour = None
    if args.gltr_model:
        from gpt2.inference import load_for_inference  # torch and a model: only for the GLTR arm
        from gpt2.study.colours import colourer

        colour = colourer(*load_for_inference(args.gltr_model, device=args.device))
    data = build_study(sources, items_per_rater=args.items_per_rater, per_source=args.per_source,
                       max_words=args.max_words, min_words=args.min_words, origin=not args.no_origin,
                       confidence=not args.no_confidence, comment=args.comment, gltr_arm=colour is not None,
                       checks=not args.no_checks, seed=args.seed, title=args.title, colour=colour)
    study = write_study(data, args.out)
    counts = ", ".join(f"{s['label']} {s['items']}" for s in study.sources)
    checks = sum(1 for i in study.items.values() if i.check)
    print(f"{args.out}: {len(study.items)} items ({counts}; {checks} attention checks), "
          f"{study.items_per_rater} per rater, GLTR arm {'on' if study.gltr_arm else 'off'}")
    return 0


def run_invite(args: argparse.Namespace) -> int:
    from gpt2.errors import GPT2Error
    from gpt2.study import admin_link, invite

    study, store = _open(args)
    if args.admin:
        print(f"admin: {admin_link(store, args.base_url)}")
        return 0
    if args.n < 1:
        raise GPT2Error(f"--n must be at least 1, got {args.n}")
    for inv in invite(study, store, args.n, args.base_url):
        print(f"rater {inv.rater} ({inv.arm}): {inv.link}")
    print(f"{args.n} invitations; the tokens are shown only here (stored hashed in {store.path})",
          file=sys.stderr)
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gpt2.study import create_app

    study, store = _open(args)
    uvicorn.run(create_app(study, store), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from gpt2.study.export import write_answers

    study, store = _open(args)
    n = write_answers(study, store.answers(), args.out)
    print(f"{args.out}: {n} answers")
    return 0


def run_report(args: argparse.Namespace, suffix: str = ".sqlite") -> int:
    from gpt2.study.report import build_report, write_report

    study, store = _open(args, suffix)
    detector = None
    if args.detector:
        from gpt2.detection import load_detector  # torch and the detector's model: only when asked

        detector = load_detector(args.detector)
    report = build_report(study, store.answers(), detector=detector, n_boot=args.bootstrap, seed=args.seed)
    paths = write_report(report, args.out)
    print(("SIMULATED raters. " if report["simulated"] else "") + f"{report['answers']} answers from "
          f"{report['raters']['kept']} raters ({len(report['raters']['excluded'])} excluded) -> "
          + " ".join(str(p) for p in paths.values()))
    return 0


def run_simulate(args: argparse.Namespace) -> int:
    from gpt2.study.simulate import NoiseModel, simulate

    study, store = _open(args, ".simulated.sqlite")
    simulate(study, store, args.n, NoiseModel(careless=args.careless), seed=args.seed)
    print(f"{args.n} simulated raters answered through the HTTP API ({store.path})")
    return run_report(args, ".simulated.sqlite")


def run_withdraw(args: argparse.Namespace) -> int:
    _, store = _open(args)
    deleted = store.withdraw(args.rater)
    print(f"rater {args.rater}: token, assignment and {deleted} answers deleted from {store.path}")
    return 0
