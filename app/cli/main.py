"""The zooscope command line: everything the web app does can also be scripted.

    zooscope serve [--port P] [--host H]     start the web app
    zooscope train NAME|all [--data-dir D]   train zoo models and write their checkpoints
    zooscope models [--json]                 list the zoo
    zooscope evaluate NAME [--json]          re-measure a shipped checkpoint on the held-out split
    zooscope analyze --model M --analyzer A --input PATH|sample:N [--param k=v ...] [--json]
    zooscope bench ig|app|batch              run a benchmark
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys


def _models(args: argparse.Namespace) -> int:
    from model_zoo import REGISTRY, build

    rows = []
    for spec in REGISTRY.values():
        n_params = spec.card.get("parameters") or sum(p.numel() for p in build(spec).parameters())
        rows.append({"name": spec.name, "family": spec.family, "task": spec.task, "parameters": n_params,
                     "checkpoint_sha256": spec.sha256, "metrics": spec.metrics,
                     "capabilities": sorted(spec.capabilities), "description": spec.description})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            metrics = ", ".join(f"{k}={v}" for k, v in r["metrics"].items()) or "pretrained"
            print(f"{r['name']:<15} {r['family']:<16} {r['parameters']:>10,d}  {metrics}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from model_zoo import REGISTRY, get_spec
    from model_zoo.training import train

    names = [n for n, s in REGISTRY.items() if s.recipe] if args.name == "all" else [args.name]
    for name in names:
        result = train(get_spec(name), data_dir=args.data_dir, epochs=args.epochs, progress=not args.quiet)
        print(json.dumps({"name": result.name, "sha256": result.sha256, "metrics": result.metrics,
                          "epochs": result.epochs, "seconds": result.seconds}), flush=True)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from model_zoo import get_spec, load, load_split
    from model_zoo.training import evaluate

    spec = get_spec(args.name)
    if spec.recipe is None:
        print(f"{spec.name} is pretrained; it has no held-out split to measure", file=sys.stderr)
        return 2
    split = load_split(args.data_dir)
    metrics = evaluate(spec, load(spec.name, args.device), split)
    row = {"name": spec.name, "split": split.name, "metrics": metrics, "recorded": spec.metrics}
    print(json.dumps(row, indent=2) if args.json else f"{spec.name}: {metrics} (recorded {spec.metrics})")
    return 0


def _delegate(module: str, function: str = "main"):
    """A subcommand implemented in another module, imported only when it runs."""
    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), function)(args)
    return run


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zooscope", description="Look inside neural networks.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="start the web app")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--host", default="127.0.0.1")
    s.set_defaults(func=_delegate("app.cli.server", "serve_command"))

    s = sub.add_parser("train", help="train zoo models and write their checkpoints")
    s.add_argument("name", help="a model name, or 'all'")
    s.add_argument("--data-dir", default=None, help="folder with the real MNIST IDX files")
    s.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_train)

    s = sub.add_parser("models", help="list the zoo")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_models)

    s = sub.add_parser("evaluate", help="re-measure a shipped checkpoint on the held-out split")
    s.add_argument("name")
    s.add_argument("--json", action="store_true")
    s.add_argument("--data-dir", default=None)
    s.add_argument("--device", default=None)
    s.set_defaults(func=_evaluate)

    s = sub.add_parser("analyze", help="run one analysis and print its summary")
    s.add_argument("--model", required=True)
    s.add_argument("--analyzer", required=True)
    s.add_argument("--input", required=True, help="an image file, or sample:N for held-out image N")
    s.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--json", action="store_true")
    s.add_argument("--out", default=None, help="write the result arrays to this .npz file")
    s.set_defaults(func=_delegate("app.cli.analyze", "analyze_command"))

    s = sub.add_parser("bench", help="run a benchmark")
    s.add_argument("suite", choices=["ig", "app", "batch"])
    s.add_argument("rest", nargs=argparse.REMAINDER)
    s.set_defaults(func=lambda a: importlib.import_module(f"bench.{a.suite}").main(a.rest))
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``zooscope`` console script."""
    args = parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (KeyError, ValueError, RuntimeError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"zooscope: {msg}", file=sys.stderr)
        return 2
