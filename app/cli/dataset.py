"""``zooscope dataset``: a whole-dataset analysis on the local pool or Ray, and its summary.

    zooscope dataset --model vit-dot --analyzer integrated_gradients --dataset heldout --limit 200 \\
        --engine local|ray [--workers 2] [--param n_steps=16 ...] [--json]

The JSON summary (accuracy with its Wilson interval, mean rel_error, per class the sum of the mean
|IG| map, per method the mean deletion/insertion AUC, every number to 6 decimals) is byte-identical
whichever engine ran it.
"""

from __future__ import annotations

import argparse
import json
import sys

ANALYZERS = ("integrated_gradients",)


def add_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--model", required=True, help="a zoo model name (or a user model's name or path)")
    s.add_argument("--analyzer", default="integrated_gradients", choices=ANALYZERS)
    s.add_argument("--dataset", default="heldout",
                   help="heldout, a named dataset, a folder/.zip of images, or a .csv/.jsonl of texts (text, label)")
    s.add_argument("--limit", type=int, default=200, help="analyse the first N examples (0: all)")
    s.add_argument("--engine", choices=("local", "ray"), default=None,
                   help="local process pool (default) or Ray (default when ZOOSCOPE_RAY_ADDRESS is set)")
    s.add_argument("--workers", type=int, default=2, help="worker processes or Ray actors")
    s.add_argument("--chunk", type=int, default=8, help="examples per task")
    s.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset params: n_steps, method, baseline, target, faithfulness, curve_steps, unit")
    s.add_argument("--json", action="store_true")


def dataset_command(args: argparse.Namespace) -> int:
    import os

    from analyzers import params_from_mapping
    from analyzers.dataset import DatasetParams, summary_json
    from app.runtime.dataset import DatasetJob, load_dataset
    from app.runtime.engines import RAY_ADDRESS_ENV

    spec = _spec(args.model)
    text = spec.input.modality == "text"
    if "classifier" not in spec.capabilities or spec.input.modality not in ("image", "text"):
        raise ValueError(f"{spec.name} is a {spec.task} model; whole-dataset analysis needs an image classifier "
                         "(vit-*, capsnet) or a text classifier (minilm-sentiment)")
    if args.limit < 0:
        raise ValueError("--limit must be 0 (all) or more")
    pairs = dict(p.split("=", 1) if "=" in p else (p, "") for p in args.param)
    params = params_from_mapping(DatasetParams, pairs)
    engine = args.engine or ("ray" if os.environ.get(RAY_ADDRESS_ENV) else "local")
    data = load_dataset(args.dataset, tuple(spec.input.labels), args.limit or None, text=text)
    job = DatasetJob(args.model, data, params, tuple(spec.input.labels), engine=engine, workers=args.workers,
                     chunk=args.chunk).run()
    progress = job.progress()
    if progress.state != "done":
        raise RuntimeError(progress.error or f"the job ended {progress.state}")
    out = {"model": spec.name, "analyzer": args.analyzer, "dataset": data.name, **summary_json(job.summary())}
    if args.json:
        print(json.dumps(out, indent=2, sort_keys=False))
    else:
        lo, hi = out["accuracy_ci95"]
        print(f"{spec.name} on {data.name}: {out['examples']} examples, accuracy {out['accuracy']:.4f} "
              f"(95% CI {lo:.4f}-{hi:.4f}), mean rel_error {out['mean_rel_error']}")
        for lab, rows in out.get("class_top_words", {}).items():
            print(f"  {lab:<10} top words: " + ", ".join(f"{w} ({m:+.3f})" for w, m, _ in rows[:8]))
        for m in out.get("methods_ranked", ()):
            print(f"  {m:<22} deletion AUC {out['mean_deletion_auc'][m]:+.4f}  "
                  f"insertion AUC {out['mean_insertion_auc'][m]:+.4f}")
    print(f"{job.engine_description}: {progress.done} examples in {progress.elapsed_s:.1f} s "
          f"({progress.done / max(progress.elapsed_s, 1e-9):.2f} examples/s)", file=sys.stderr)
    return 0


def _spec(name: str):
    import model_zoo

    resolve = getattr(model_zoo, "resolve_model", None)
    return model_zoo.get_spec(resolve(name) if resolve else name)
