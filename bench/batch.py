"""Internal batch sizes: seconds per analysis for each batch, and what the automatic choice picks.

For Integrated Gradients (``internal_batch_size``) and Occlusion (``perturbations_per_eval``),
times the analyzer on held-out images with every batch size in a sweep and with the automatic
batch (the param at 0): on a CUDA device that is chosen from the free memory and a measured cost
per input (``analyzers/batching.py``), elsewhere it is the CPU default these rows justify. Each
row's ratio is to the fastest row of its model and method. Prints a markdown table.

    python -m bench.batch [--models vit-dot,capsnet] [--images 4] [--repeat 3] [--device cuda]
"""

from __future__ import annotations

import argparse
import logging
import sys

import torch

from bench.ig import _best_seconds, _device_line, _model

IG_SWEEP = (8, 16, 32, 64, 128, 256, 512, 1024)
OCCLUSION_SWEEP = (4, 8, 16, 32, 64, 169)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zooscope bench batch", description=__doc__.splitlines()[0])
    p.add_argument("--models", default="vit-dot,capsnet", help="comma-separated zoo names")
    p.add_argument("--images", type=int, default=4, help="held-out images per analysis")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per figure (the fastest is reported)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the best device)")
    return p


class _Choices(logging.Handler):
    """Keeps the automatic batch sizes that analyzers.batching logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.batches: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.batches.append(record.getMessage())


def _cases():
    """(method, param, sweep, CPU default, params for a batch size) for each analyzer with an internal batch."""
    from analyzers import IGParams, OcclusionParams
    from analyzers.attribution_params import IG_CPU_BATCH, OCCLUSION_CPU_BATCH

    return [
        ("integrated_gradients", "internal_batch_size", IG_SWEEP, IG_CPU_BATCH,
         lambda b: IGParams(n_steps=64, baseline="uniform", baseline_draws=4, internal_batch_size=b)),
        ("occlusion", "perturbations_per_eval", OCCLUSION_SWEEP, OCCLUSION_CPU_BATCH,
         lambda b: OcclusionParams(window=4, stride=2, perturbations_per_eval=b)),
    ]


def bench_model(name: str, images: int, repeat: int, device: torch.device) -> list[dict]:
    """Rows for one model: seconds per analysis for each batch size and for the automatic one."""
    from analyzers import attribute
    from analyzers.batching import AUTO
    from model_zoo import load_split

    model, spec, state = _model(name, device)
    x = load_split().heldout_tensor(images)[0].to(device)
    log = logging.getLogger("analyzers.batching")
    rows = []
    for method, field, sweep, cpu, make in _cases():
        choices = _Choices()
        log.addHandler(choices)
        level = log.level
        log.setLevel(logging.DEBUG)
        try:
            auto = _best_seconds(lambda: attribute(model, spec, x, method, make(AUTO)), device, repeat)
        finally:
            log.removeHandler(choices)
            log.setLevel(level)
        chosen = choices.batches[-1] if choices.batches else f"off CUDA: the CPU default, {cpu}"
        found = [(str(b), _best_seconds(lambda b=b: attribute(model, spec, x, method, make(b)), device, repeat), "")
                 for b in sweep]
        found.append(("auto", auto, chosen))
        best = min(s for _, s, _ in found)
        rows.extend({"model": name, "weights": state, "method": method, "field": field, "batch": b, "s": s,
                     "ratio": s / best, "note": note} for b, s, note in found)
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    head = "| model | weights | method | batch param | value | seconds | ratio to fastest | note |\n" \
           "|---|---|---|---|---:|---:|---:|---|"
    lines = [f"| {r['model']} | {r['weights']} | {r['method']} | {r['field']} | {r['batch']} | {r['s']:.3f} | "
             f"{r['ratio']:.2f} | {r['note']} |" for r in rows]
    return "\n".join([head, *lines])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; returns the exit code."""
    from model_zoo import best_device

    args = _parser().parse_args(argv)
    device = best_device(args.device)
    print(_device_line(device))
    print(f"{args.images} held-out images per analysis; IG 64 steps x 4 uniform-noise baselines; "
          f"occlusion 4x4 windows, stride 2; best of {args.repeat} runs\n", flush=True)
    rows = []
    for name in [n for n in args.models.split(",") if n]:
        rows.extend(bench_model(name, args.images, args.repeat, device))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
