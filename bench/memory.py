"""Memory: what uploads leave behind in a running server, and what one analysis peaks at.

- ``uploads``: ``zooscope serve`` on a free 127.0.0.1 port (``ZOOSCOPE_HOME`` in a temporary
  folder); ``--sessions`` Chromium sessions each open the Attribution page (vit-dot, Integrated
  Gradients), switch to Upload and upload their share of ``--uploads`` PNGs of 4096 x 4096
  pixels (a held-out digit enlarged: tens of kilobytes each, every one different, so nothing
  is answered from a cache). The server's RSS (its process tree) is read once every session
  is open and before the first upload, after every upload, and after the last, with every
  session still open. Target: the growth stays under 300 MB.
- ``decode``: the same PNGs decoded in this process and every result kept, as sessions keep
  them; this process's RSS before and after.
- ``analyses``: each analysis in a fresh Python process that loads the model, runs a small
  warm-up analysis, resets its peak RSS (``/proc/self/clear_refs``) and runs the analysis:
  the peak RSS above the RSS just before it. GradientSHAP with ``n_samples=1024`` on capsnet,
  and the largest Integrated Gradients the server allows (16,384 model evaluations: 1024 steps
  x 16 uniform-noise baselines) with the internal batch automatic and at its largest (1024),
  under each ``ZOOSCOPE_ANALYSIS_MAX_MB`` of ``--budgets`` (0: no budget).

Prints markdown tables; never writes ``bench/RESULTS.md``.

    python -m bench.memory [--only uploads,decode,analyses] [--uploads 16] [--sessions 2] [--budgets 0,1024]
                           [--cases shap,ig-auto,ig-1024]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import _harness as h

SCENARIOS = ("uploads", "decode", "analyses")
SIDE = 4096  # the largest upload accepted (16.7 Mpixels)
UPLOAD_GROWTH_TARGET_MB = 300.0
MB = 2**20
BUDGET_ENV = "ZOOSCOPE_ANALYSIS_MAX_MB"  # analyzers.batching.BUDGET_ENV (not imported: a "before" tree lacks it)


# --------------------------------------------------------------------------- inputs


def big_pngs(folder: Path, count: int) -> list[Path]:
    """``count`` distinct held-out digits as 4096 x 4096 PNGs, dark ink on light paper."""
    from PIL import Image

    from model_zoo import load_split

    x = load_split().x_heldout
    paths = []
    for index in h.heldout_indices(count, 300):
        path = folder / f"digit-{index}-{SIDE}.png"
        Image.fromarray(255 - x[index]).resize((SIDE, SIDE), Image.Resampling.NEAREST).save(path, format="PNG")
        paths.append(path)
    return paths


def rss_self() -> int:
    """This process's resident memory in bytes."""
    return h.rss_bytes(os.getpid())


# --------------------------------------------------------------------------- uploads through a browser


@dataclass
class UploadRun:
    """Server RSS around the uploads (bytes) and the seconds each upload took until its heatmap was drawn."""

    before: int
    after: int
    per_upload: list[int]
    seconds: list[float]
    log_errors: list[str]


async def uploads_through_browser(images: list[Path], sessions: int) -> UploadRun:
    """Upload ``images`` through ``sessions`` open browser sessions of one server; its RSS before and after."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw, h.running(h.zooscope_command) as server:
        browser = await h.launch_chromium(pw)
        await server.wait_warm()
        pages = []
        try:
            for _ in range(sessions):
                context, page, tracker = await h.new_page(browser)
                pages.append((context, page, tracker))
                await h.open_rendered(page, tracker, h.attribution_url(server.url, "vit-dot"))
                await h.choose_upload_source(page, tracker)
            await asyncio.sleep(1.0)
            run = UploadRun(server.rss(), 0, [], [], [])
            for n, image in enumerate(images):
                _, page, tracker = pages[n % sessions]
                run.seconds.append(await h.upload(page, tracker, image))
                await h.settle(page, tracker)
                await h.fail_on_errors(page)
                run.per_upload.append(server.rss())
            await asyncio.sleep(1.0)
            run.after = server.rss()
            run.log_errors = [line for line in server.tail(1_000_000).splitlines() if "error" in line.lower()]
            return run
        finally:
            for context, _, _ in pages:
                await context.close()
            await browser.close()


def upload_table(run: UploadRun, images: list[Path], sessions: int) -> str:
    growth = (run.after - run.before) / MB
    sizes = [p.stat().st_size / 1024 for p in images]
    steps = ", ".join(f"{(r - run.before) / MB:+.0f}" for r in run.per_upload)
    verdict = "pass" if growth < UPLOAD_GROWTH_TARGET_MB else "FAIL"
    return (f"{len(images)} uploads of {SIDE}x{SIDE} PNGs ({min(sizes):.0f}-{max(sizes):.0f} KB) through "
            f"{sessions} open Chromium sessions of one `zooscope serve`, each followed by IG on vit-dot:\n\n"
            "| server RSS before | after | growth | per upload | target | verdict |\n|---:|---:|---:|---:|---|---|\n"
            f"| {run.before / MB:,.0f} MB | {run.after / MB:,.0f} MB | {growth:+,.0f} MB | "
            f"{growth / len(images):+.1f} MB | < {UPLOAD_GROWTH_TARGET_MB:.0f} MB | {verdict} |\n\n"
            f"RSS after each upload, MB over before: {steps}. Upload to heatmap drawn: median "
            f"{h.median(run.seconds):.2f} s. Server log lines with \"error\": {len(run.log_errors)}"
            + "".join(f"\n    {line[:200]}" for line in run.log_errors[:5]) + "\n")


# --------------------------------------------------------------------------- decoding in-process


def decode_table(images: list[Path]) -> str:
    """Decode every image in this process, keep the results; the RSS growth."""
    import gc

    from app.runtime.images import decode_image

    blobs = [p.read_bytes() for p in images]
    decode_image(blobs[0])  # imports and first-use allocations out of the figure
    gc.collect()
    before = rss_self()
    start = time.perf_counter()
    kept = [decode_image(b) for b in blobs]
    seconds = (time.perf_counter() - start) / len(blobs)
    gc.collect()
    after = rss_self()
    held = sum(a.nbytes for d in kept for a in (d.display, d.pixels))
    return ("| uploads decoded and kept | RSS growth | arrays kept | seconds per decode |\n|---:|---:|---:|---:|\n"
            f"| {len(kept)} | {(after - before) / MB:+,.1f} MB | {held / MB:,.2f} MB | {seconds:.2f} |\n")


# --------------------------------------------------------------------------- one analysis per process


@dataclass(frozen=True)
class Case:
    """An analysis to measure: a short key (``--cases``), a label for the table, the method and its params."""

    key: str
    label: str
    model: str
    method: str
    params: dict


CASES = (
    Case("shap", "GradientSHAP, n_samples=1024", "capsnet", "gradient_shap", {"n_samples": 1024}),
    Case("ig-auto", "IG, 1024 steps x 16 uniform baselines, batch automatic", "capsnet", "integrated_gradients",
         {"n_steps": 1024, "baseline": "uniform", "baseline_draws": 16}),
    Case("ig-1024", "IG, 1024 steps x 16 uniform baselines, batch 1024", "capsnet", "integrated_gradients",
         {"n_steps": 1024, "baseline": "uniform", "baseline_draws": 16, "internal_batch_size": 1024}),
)

CHILD = """
import json, os, resource, sys, time
import torch
from analyzers import attribute, get_analyzer, params_from_mapping
from model_zoo import get_spec, load, load_split

model_name, method, raw = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
spec, model = get_spec(model_name), load(model_name, "cpu")
x = load_split().heldout_tensor(1)[0]
params_class = get_analyzer(method).params
attribute(model, spec, x, method, params_class())  # warm-up: imports, the cost probe, first-use allocations


def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024


try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) starts again from the RSS now
    reset = True
except OSError:
    reset = False
before = status("VmRSS")
start = time.perf_counter()
try:
    attribute(model, spec, x, method, params_from_mapping(params_class, {k: str(v) for k, v in raw.items()}))
    error = ""
except Exception as e:
    error = f"{type(e).__name__}: {e}"
seconds = time.perf_counter() - start
peak = status("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"before": before, "peak": peak, "seconds": seconds, "reset": reset, "error": error}))
"""


def measure(case: Case, budget: str) -> dict:
    """Run ``case`` in a fresh process with ``ZOOSCOPE_ANALYSIS_MAX_MB=budget``; its RSS before and peak."""
    env = {**os.environ, BUDGET_ENV: budget, "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run([sys.executable, "-c", CHILD, case.model, case.method, json.dumps(case.params)],
                         cwd=h.ROOT, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise h.BenchError(f"{case.label} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def analysis_table(budgets: list[str], keys: set[str]) -> str:
    header = "| analysis (capsnet, 1 digit) | ZOOSCOPE_ANALYSIS_MAX_MB | RSS before | peak RSS | peak above before |"
    lines = [header + " seconds |", "|---|---:|---:|---:|---:|---:|"]
    for case in (c for c in CASES if c.key in keys):
        for budget in budgets:
            m = measure(case, budget)
            shown = "none" if float(budget) == 0 else budget
            if m["error"]:
                lines.append(f"| {case.label} | {shown} | refused: {m['error'][:160]} | | | |")
                continue
            lines.append(f"| {case.label} | {shown} | {m['before'] / MB:,.0f} MB | {m['peak'] / MB:,.0f} MB | "
                         f"{(m['peak'] - m['before']) / MB:+,.0f} MB | {m['seconds']:.1f} |")
            print(lines[-1], flush=True)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}")
    p.add_argument("--uploads", type=int, default=16, help="4096x4096 PNGs uploaded in all")
    p.add_argument("--sessions", type=int, default=2, help="browser sessions the uploads are spread over")
    p.add_argument("--budgets", default="0,1024", help=f"comma-separated {BUDGET_ENV} values (0: no budget)")
    p.add_argument("--cases", default=",".join(c.key for c in CASES), help="comma-separated analyses to measure")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios and print their tables; 1 when the upload growth misses its target."""
    args = _parser().parse_args(argv)
    only = set(args.only.split(","))
    print(f"{h.machine_line()}; commit {h.git_revision()}", flush=True)
    failed = False
    with h.temp_folder() as folder:
        images = big_pngs(folder, args.uploads) if only & {"uploads", "decode"} else []
        if "decode" in only:
            print("\n### Decoding in-process\n\n" + decode_table(images), flush=True)
        if "uploads" in only:
            run = asyncio.run(uploads_through_browser(images, args.sessions))
            failed = (run.after - run.before) / MB >= UPLOAD_GROWTH_TARGET_MB
            print("\n### Uploads through a browser\n\n" + upload_table(run, images, args.sessions), flush=True)
        if "analyses" in only:
            print("\n### Peak memory of one analysis\n", flush=True)
            print(analysis_table(args.budgets.split(","), set(args.cases.split(","))), flush=True)
    print(h.load_line())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
