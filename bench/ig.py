"""Integrated Gradients speed against its floor: one batched forward+backward over the same inputs.

For every image model, times ``analyzers.integrated_gradients`` on 1 and 32 held-out images at
64 steps, and one forward+backward pass over the B x n_steps interpolated inputs in a single
batch: the work IG cannot avoid. The ratio IG / floor is what wrapping, chunking by
``internal_batch_size`` and the completeness check cost. Prints a markdown table.

    python -m bench.ig [--models vit-dot,capsnet] [--batches 1,32] [--steps 64] [--repeat 3] [--device cuda]
                       [--threads 1]

On a CPU shared with other busy processes, torch's default of one intra-op thread per core
makes every small operation wait for descheduled threads; ``--threads 1`` shows the ratio
without that contention.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import torch


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zooscope bench ig", description=__doc__.splitlines()[0])
    p.add_argument("--models", default="", help="comma-separated zoo names (default: every image model)")
    p.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--internal-batch-size", type=int, default=None, help="default: IGParams' default")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per figure (the fastest is reported)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the best device)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op CPU threads (default: torch's own)")
    return p


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_seconds(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    """Fastest wall-clock seconds of ``fn`` over ``repeat`` runs, after one warm-up run.

    The minimum, as timeit recommends: on a shared machine the other runs measure the neighbours.
    """
    fn()
    times = []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def _floor(model, spec, x: torch.Tensor, steps: int) -> Callable[[], None]:
    """One forward+backward over all B x steps interpolated inputs (black baseline) in one batch."""
    from analyzers.forward import score_fn

    f = score_fn(model, spec)
    alphas = torch.linspace(0, 1, steps, device=x.device)
    with torch.no_grad():
        target = f(x).argmax(1).repeat(steps)

    def run() -> None:
        path = (alphas[:, None, None, None, None] * x[None]).flatten(0, 1).requires_grad_(True)  # (steps*B, 1, 28, 28)
        score = f(path).gather(1, target[:, None]).sum()
        torch.autograd.grad(score, path)
    return run


def _model(name: str, device: torch.device):
    from model_zoo import build, get_spec, load

    spec = get_spec(name)
    if spec.checkpoint_path is not None and spec.checkpoint_path.exists():
        return load(name, device), spec, "trained"
    return build(spec).eval().requires_grad_(False).to(device), spec, "untrained"


def _image_models() -> list[str]:
    from model_zoo import REGISTRY

    return [n for n, s in REGISTRY.items() if s.input.modality == "image" and "gradients" in s.capabilities]


def bench_model(name: str, batches: list[int], steps: int, ibs: int | None, repeat: int,
                device: torch.device) -> list[dict]:
    """Timing rows for one model: IG seconds, floor seconds and their ratio per batch size."""
    from analyzers import IGParams, integrated_gradients
    from model_zoo import load_split

    model, spec, state = _model(name, device)
    params = IGParams(n_steps=steps) if ibs is None else IGParams(n_steps=steps, internal_batch_size=ibs)
    rows = []
    for b in batches:
        x = load_split().heldout_tensor(b)[0].to(device)
        ig = _best_seconds(lambda: integrated_gradients(model, spec, x, params), device, repeat)
        floor = _best_seconds(_floor(model, spec, x, steps), device, repeat)
        rows.append({"model": name, "weights": state, "batch": b, "evaluations": b * steps,
                     "ig_s": ig, "floor_s": floor, "ratio": ig / floor})
    return rows


def table(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    head = "| model | weights | images | evaluations | IG (s) | floor fwd+bwd (s) | ratio |\n|---|---|---:|---:|---:|---:|---:|"
    lines = [f"| {r['model']} | {r['weights']} | {r['batch']} | {r['evaluations']} | {r['ig_s']:.3f} | "
             f"{r['floor_s']:.3f} | {r['ratio']:.2f} |" for r in rows]
    return "\n".join([head, *lines])


def _device_line(device: torch.device) -> str:
    if device.type == "cuda":
        return f"device: cuda ({torch.cuda.get_device_name(device)}), torch {torch.__version__}"
    return f"device: cpu ({torch.get_num_threads()} threads), torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; returns the exit code."""
    from model_zoo import best_device

    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = best_device(args.device)
    names = [n for n in args.models.split(",") if n] or _image_models()
    batches = [int(b) for b in args.batches.split(",") if b]
    print(_device_line(device))
    print(f"IG: {args.steps} steps, gausslegendre, black baseline; best of {args.repeat} runs\n", flush=True)
    rows = []
    for name in names:
        rows.extend(bench_model(name, batches, args.steps, args.internal_batch_size, args.repeat, device))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
