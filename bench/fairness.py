"""Fair service: how long another visitor's ordinary analysis takes while the heaviest allowed one runs.

    python -m bench.fairness [--repeat 5] [--tabs 3]

In one process, through the server's own compute path (``app.runtime.compute.run``, every guard
on), with one thread per visitor: the victim asks for Integrated Gradients (64 steps) on capsnet
for a fresh digit each time, first alone, then while an attacker runs the heaviest analysis the
budget allows on the same model (1,024 steps x 16 uniform baselines = 16,384 evaluations, stopped
at the 60 s time limit), then while ``--tabs`` attackers (other visitors) each ask for one. The
figure is the victim's median time with the attackers over its median alone, as a ratio
(target: at most 3x). Runs on the code it finds: the rooms of ``app/`` or, for a before/after,
the flat ``app/`` of older commits.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import threading
import time

import numpy as np

try:  # before the house was in rooms: one lock per model, no visitors
    from app import compute  # type: ignore[no-redef]
    from app.compute import AnalysisError  # type: ignore[no-redef]
    jobs = None  # type: ignore[assignment]
except ImportError:  # the house in rooms
    from app.runtime import compute, jobs
    from app.runtime.guards import AnalysisError
from analyzers import IGParams

MODEL = "capsnet"
TARGET = 3.0
HEAVY = IGParams(n_steps=1024, baseline="uniform", baseline_draws=16, seed=1)


def _visitor(owner: str):
    return jobs.acting_for(owner) if jobs is not None else contextlib.nullcontext()


def _digit(i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    pixels = np.zeros((28, 28), dtype=np.float32)
    pixels[4:24, 10 + i % 5:14 + i % 5] = rng.uniform(0.6, 1.0, size=(20, 4))  # a different "1" each time
    return pixels


def victim_seconds(i: int) -> float:
    start = time.perf_counter()
    with _visitor("victim"):
        compute.run("integrated_gradients", MODEL, IGParams(seed=i), _digit(i))
    return time.perf_counter() - start


def attack(owner: str, started: threading.Event, done: list) -> None:
    with _visitor(owner):
        started.set()
        try:
            compute.run("integrated_gradients", MODEL, HEAVY, _digit(10_000 + len(done)))
            done.append("finished")
        except AnalysisError as e:
            done.append(type(e).__name__)


def under_attack(tabs: int, repeat: int, first: int) -> tuple[list[float], list[str]]:
    done: list[str] = []
    threads = []
    for k in range(tabs):
        started = threading.Event()
        thread = threading.Thread(target=attack, args=(f"attacker-{k}", started, done), daemon=True)
        thread.start()
        threads.append(thread)
        started.wait()
    time.sleep(2.0)  # the heavy analysis is well under way
    times = [victim_seconds(first + i) for i in range(repeat)]
    for thread in threads:
        thread.join()
    return times, done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--tabs", type=int, default=3)
    p.add_argument("--limit", type=float, default=60.0, help="the server's time limit per analysis, in seconds")
    args = p.parse_args(argv)
    os.environ["ZOOSCOPE_ANALYSIS_TIMEOUT_S"] = str(args.limit)
    victim_seconds(0)  # the model loaded, captum's first call paid
    alone = [victim_seconds(1 + i) for i in range(args.repeat)]
    one, one_done = under_attack(1, args.repeat, 100)
    many, many_done = under_attack(args.tabs, args.repeat, 200)
    base = statistics.median(alone)
    print(f"victim: IG 64 steps on {MODEL}, fresh digit; attacker: IG 1,024 steps x 16 uniform baselines; "
          f"medians of {args.repeat}; {'rooms' if jobs is not None else 'flat app/ (before)'}")
    print("| figure | median | slowest | median / alone | target | verdict |")
    print("|---|---:|---:|---:|---|---|")
    print(f"| victim alone | {base:.3f} s | {max(alone):.3f} s | 1.0× | — | — |")
    for label, times in (("victim while 1 heavy analysis runs", one),
                         (f"victim while {args.tabs} visitors' heavy analyses run", many)):
        ratio = statistics.median(times) / base
        print(f"| {label} | {statistics.median(times):.3f} s | {max(times):.3f} s | {ratio:.1f}× | "
              f"≤ {TARGET:.0f}× | {'pass' if ratio <= TARGET and max(times) <= TARGET * max(alone) else 'FAIL'} |")
    print(f"attackers: {one_done + many_done}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
