"""The zooscope command line: everything the web app does can also be scripted.

    zooscope serve [--port P] [--host H] [--model PATH ...]  start the web app (with the user's model folders)
    zooscope train NAME|all [--data-dir D]   train zoo models and write their checkpoints
    zooscope models [--json] [--model PATH]  list the zoo, the user's folders and plugin models
    zooscope evaluate NAME [--json]          re-measure a shipped checkpoint on the held-out split
    zooscope analyze --model M --analyzer A --input PATH|sample:N [--param k=v ...] [--json]
    zooscope dataset --model M --dataset heldout|PATH --limit N --engine local|ray [--json]
    zooscope bench ig|app|batch|dataset|sequence|refine|user  run a benchmark
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys


def _models(args: argparse.Namespace) -> int:
    from model_zoo import all_models, build, model_problems, resolve_model

    for path in args.model or []:
        resolve_model(path)  # a refused folder: exit 2 with its one-line message
    rows = []
    for spec in all_models().values():  # the zoo, then the user's folders (--model, ZOOSCOPE_MODELS), then plugins
        try:
            n_params = (spec.card.get("parameters") or spec.extra.get("parameters")
                        or sum(p.numel() for p in build(spec).parameters()))
        except Exception as e:  # noqa: BLE001 - one model that cannot be built (weights missing) is said, not fatal
            print(f"zooscope: {spec.name}: cannot be built ({type(e).__name__})", file=sys.stderr)
            n_params = 0
        rows.append({"name": spec.name, "family": spec.family, "task": spec.task, "parameters": n_params,
                     "checkpoint_sha256": spec.sha256, "metrics": spec.metrics,
                     "capabilities": sorted(spec.capabilities), "description": spec.description,
                     "source": spec.source, "path": spec.extra.get("path", ""), "sha256": spec.sha256,
                     **({"plugin": spec.extra["plugin"]} if "plugin" in spec.extra else {})})
    for where, why in model_problems().items():  # ZOOSCOPE_MODELS folders and plugins that were refused
        print(f"zooscope: refused {why if why.startswith(where) else f'{where}: {why}'}", file=sys.stderr)
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
    if spec.family == "seq2seq":  # G2P: PER and WER on the held-out CMUdict words
        from model_zoo.g2p import load_g2p_split
        from model_zoo.g2p_training import evaluate_g2p
        split = load_g2p_split()
        metrics = evaluate_g2p(load(spec.name, args.device), split)
        row = {"name": spec.name, "split": split.name, "metrics": metrics, "recorded": spec.metrics}
        print(json.dumps(row, indent=2) if args.json else f"{spec.name}: {metrics} (recorded {spec.metrics})")
        return 0
    if spec.family == "text-classifier":  # minilm-sentiment: accuracy on its held-out sentences
        from model_zoo.sentiment_training import heldout_predictions
        text_split, predicted = heldout_predictions(load(spec.name, args.device))
        _, labels = text_split.part("heldout")
        metrics = {"accuracy": round(float((predicted == labels).mean()), 4)}
        row = {"name": spec.name, "split": text_split.name, "metrics": metrics, "recorded": spec.metrics}
        print(json.dumps(row, indent=2) if args.json else f"{spec.name}: {metrics} (recorded {spec.metrics})")
        return 0
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
    s.add_argument("--dataset", action="append", default=[], metavar="[NAME=]PATH",
                   help="a folder/.zip of labelled digit images for the Dataset page (repeatable; ZOOSCOPE_DATASETS)")
    s.add_argument("--model", action="append", default=[], metavar="PATH",
                   help="a Hugging Face model folder to serve beside the zoo (repeatable; see also ZOOSCOPE_MODELS)")
    s.set_defaults(func=_delegate("app.cli.server", "serve_command"))

    s = sub.add_parser("train", help="train zoo models and write their checkpoints")
    s.add_argument("name", help="a model name, or 'all'")
    s.add_argument("--data-dir", default=None, help="folder with the real MNIST IDX files")
    s.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_train)

    s = sub.add_parser("models", help="list the zoo, the user's model folders and plugin models")
    s.add_argument("--json", action="store_true")
    s.add_argument("--model", action="append", default=[], metavar="PATH", help="also list this model folder")
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

    s = sub.add_parser("dataset", help="analyse a whole dataset on the local pool or Ray; print the summary")
    importlib.import_module("app.cli.dataset").add_arguments(s)
    s.set_defaults(func=_delegate("app.cli.dataset", "dataset_command"))

    s = sub.add_parser("bench", help="run a benchmark")
    s.add_argument("suite", choices=["ig", "app", "batch", "dataset", "sequence", "refine", "user"])
    s.add_argument("rest", nargs=argparse.REMAINDER)
    s.set_defaults(func=lambda a: importlib.import_module(
        f"bench.{'user_models' if a.suite == 'user' else a.suite}").main(a.rest))
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
