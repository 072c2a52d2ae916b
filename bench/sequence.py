"""Decoding time against input length for soft and monotonic attention (the seed's claim, measured).

Raffel et al. 2017 claim hard monotonic attention decodes in linear time: each output step
resumes the scan where the last one stopped, so over a whole output the energies computed are
at most T + U. Soft attention computes T energies at every one of U steps: T x U. With the
output as long as the input (U = T), soft should grow quadratically in total and monotonic
linearly.

For each length T the input is held-out CMUdict words run together until T letters, and both
shipped G2P models decode exactly U = T steps greedily (``G2P.decode(force_len=T)``, no stop at
the end token), one word at a time, online. Prints a markdown table (best of ``--repeat`` wall
times, energies computed) and the exponent k of a least-squares fit time ~ T^k over the lengths
from ``--fit-from`` up (shorter ones are dominated by the per-step cost of the GRU, not by attention).

    zooscope bench sequence [--lengths 32,64,128,256,512,1024] [--repeat 3] [--threads 1] [--fit-from 128]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

MODELS = ("g2p-soft", "g2p-monotonic")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zooscope bench sequence", description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default="32,64,128,256,512,1024", help="comma-separated input lengths (letters)")
    p.add_argument("--repeat", type=int, default=3, help="runs per length; the best is kept")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steady on a shared CPU)")
    p.add_argument("--fit-from", type=int, default=128, help="fit the exponent over lengths from this one up")
    p.add_argument("--device", default="cpu")
    return p


def input_of_length(n: int) -> list[int]:
    """Held-out words run together until ``n`` letters, as character ids."""
    from model_zoo.g2p import encode_word, load_g2p_split

    letters: list[int] = []
    for word, _ in load_g2p_split().heldout:
        letters += encode_word(word.replace("'", ""))
        if len(letters) >= n:
            break
    return letters[:n]


def time_decode(model, chars: list[int], repeat: int) -> tuple[float, int]:
    """Best wall time (s) of decoding len(chars) steps, and the energies computed."""
    best, evals = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = model.decode(chars, force_len=len(chars))
        best = min(best, time.perf_counter() - t0)
        evals = out.energy_evaluations
    return best, evals


def fit_exponent(lengths: list[int], values: list[float]) -> float:
    """Slope of log(value) against log(length): value ~ length^k."""
    return float(np.polyfit(np.log(lengths), np.log(values), 1)[0])


def main(argv: list[str] | None = None) -> int:
    from model_zoo import load
    from model_zoo.checkpoint import CheckpointError

    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    lengths = [int(x) for x in args.lengths.split(",") if x]
    try:
        models = {name: load(name, args.device) for name in MODELS}
    except CheckpointError as e:
        print(f"zooscope bench sequence: {e}")
        return 1
    print(f"torch {torch.__version__}, {args.device}, {args.threads} thread(s); U = T output steps; "
          f"best of {args.repeat}\n")
    print("| T (letters = steps) | soft (s) | monotonic (s) | soft energies | monotonic energies |")
    print("|---:|---:|---:|---:|---:|")
    times: dict[str, list[float]] = {m: [] for m in MODELS}
    energies: dict[str, list[int]] = {m: [] for m in MODELS}
    for name in MODELS:  # warm-up
        models[name].decode(input_of_length(16), force_len=16)
    for n in lengths:
        chars = input_of_length(n)
        for name in MODELS:
            t, e = time_decode(models[name], chars, args.repeat)
            times[name].append(t)
            energies[name].append(e)
        print(f"| {n} | {times['g2p-soft'][-1]:.3f} | {times['g2p-monotonic'][-1]:.3f} | "
              f"{energies['g2p-soft'][-1]} | {energies['g2p-monotonic'][-1]} |", flush=True)
    idx = [i for i, n in enumerate(lengths) if n >= args.fit_from] or list(range(len(lengths)))
    fit_lengths = [lengths[i] for i in idx]
    print(f"\nfitted exponent k of time ~ T^k (T >= {fit_lengths[0]}):")
    for name in MODELS:
        k_time = fit_exponent(fit_lengths, [times[name][i] for i in idx])
        k_energy = fit_exponent(fit_lengths, [max(1, energies[name][i]) for i in idx])
        print(f"  {name:14s} time k = {k_time:.2f}   energies k = {k_energy:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
