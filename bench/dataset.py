"""Whole-dataset throughput: examples per second on the local pool and on Ray, with 1 and 2 workers, in one run.

Every configuration analyses the same held-out examples in the same chunks (IG, deletion/insertion
curves for the three gradient methods). Start-up (spawning workers, loading the model, starting
Ray) is timed apart from the work. An in-process run of the same chunks on one thread gives the
pure compute time, so the per-task overhead of each engine is what is left. From the 1- and
2-worker rates an Amdahl serial fraction ``s = 2 / speedup(2) - 1`` is estimated, and the model
``rate(N) = rate(1) / (s + (1 - s) / N)`` predicts N workers (N cores or machines, one worker each).

    zooscope bench dataset [--model vit-dot] [--limit 64] [--chunk 8] [--n-steps 16] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import wait

import numpy as np


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zooscope bench dataset", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vit-dot")
    p.add_argument("--limit", type=int, default=64, help="held-out examples per configuration")
    p.add_argument("--chunk", type=int, default=8, help="examples per task")
    p.add_argument("--n-steps", type=int, default=16, help="IG steps")
    p.add_argument("--engines", default="local,ray")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--write", action="store_true", help="replace the dataset section of bench/RESULTS.md")
    return p


def _in_process(model: str, data, params, chunk: int) -> float:
    """Seconds for all chunks in this process, one torch thread: the compute without any engine."""
    import torch

    import model_zoo
    from analyzers.dataset import analyse_chunk

    torch.set_num_threads(1)
    spec, m = model_zoo.get_spec(model), model_zoo.load(model, "cpu")
    analyse_chunk(m, spec, data.images[:1], data.labels[:1], [0], params)  # warm-up
    start = time.perf_counter()
    for s in range(0, len(data), chunk):
        analyse_chunk(m, spec, data.images[s:s + chunk], data.labels[s:s + chunk], np.arange(s, s + chunk), params)
    return time.perf_counter() - start


def _engine_run(kind: str, workers: int, model: str, data, params, chunk: int) -> tuple[float, float]:
    """(start-up seconds, work seconds) of one engine on all chunks."""
    from app.runtime.engines import make_engine

    start = time.perf_counter()
    engine = make_engine(kind, model, workers)
    try:
        ready = time.perf_counter()
        futures = [engine.submit(data.images[s:s + chunk], data.labels[s:s + chunk],
                                 np.arange(s, min(s + chunk, len(data))), params) for s in range(0, len(data), chunk)]
        wait(futures)
        for f in futures:
            f.result()
        return ready - start, time.perf_counter() - ready
    finally:
        engine.close()


def main(argv: list[str] | None = None) -> int:
    from analyzers.dataset import DatasetParams
    from app.runtime.dataset import heldout_dataset
    from bench._harness import load_line, machine_line, section, write_section

    args = _parser().parse_args(argv)
    data = heldout_dataset(args.limit)
    params = DatasetParams(n_steps=args.n_steps)
    tasks = -(-len(data) // args.chunk)
    lines = [machine_line(), f"{len(data)} held-out examples of {args.model}, {tasks} tasks of {args.chunk}; "
             f"IG {args.n_steps} steps + deletion/insertion ({params.curve_steps} points, 3 methods); "
             f"{load_line()} at the start", ""]
    print("\n".join(lines), flush=True)
    serial = _in_process(args.model, data, params, args.chunk)
    rows = [("in process (1 thread)", "-", 0.0, serial)]
    print(f"in process: {len(data) / serial:.2f} examples/s", flush=True)
    for kind in [k for k in args.engines.split(",") if k]:
        for w in [int(n) for n in args.workers.split(",") if n]:
            up, work = _engine_run(kind, w, args.model, data, params, args.chunk)
            rows.append((kind, str(w), up, work))
            print(f"{kind} x{w}: start-up {up:.1f} s, {len(data) / work:.2f} examples/s", flush=True)
    table = ["| engine | workers | start-up s | work s | examples/s | vs 1 worker | overhead per task ms |",
             "|---|---|---|---|---|---|---|"]
    one = {k: work for k, w, _, work in rows if w == "1"}
    for kind, w, up, work in rows:
        ratio = f"{one[kind] / work:.2f}x" if kind in one else "-"
        overhead = f"{(work - serial) / tasks * 1000:.0f}" if w == "1" else "-"
        table.append(f"| {kind} | {w} | {up:.1f} | {work:.2f} | {len(data) / work:.2f} | {ratio} | {overhead} |")
    model = []
    for kind in one:
        two = next((work for k, w, _, work in rows if k == kind and w == "2"), None)
        if two:
            s = min(1.0, max(0.0, 2 * two / one[kind] - 1))
            rate = len(data) / one[kind]
            preds = ", ".join(f"N={n}: {rate / (s + (1 - s) / n):.1f}" for n in (4, 8, 16, 64))
            model.append(f"- {kind}: speed-up at 2 workers {one[kind] / two:.2f}x -> serial fraction s = {s:.2f}; "
                         f"predicted examples/s {preds} (ceiling {rate / s if s else float('inf'):.1f})")
    body = "\n".join(table + [""] + model + ["", f"{load_line()} at the end"])
    print("\n" + body)
    if args.write:
        write_section("dataset", section("dataset", "Whole-dataset throughput (zooscope bench dataset)",
                                         "\n".join(lines) + "\n" + body, ["zooscope", "bench", "dataset", *(argv or [])]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
