"""Many people at once: N concurrent browser sessions upload, attribute and share against one local server.

Starts ``zooscope serve`` on a free 127.0.0.1 port (ZOOSCOPE_HOME in a temporary folder) and
Debian's chromium; opens one page to load the model, then runs ``--sessions`` browser contexts
concurrently. Each session opens the Attribution page (vit-dot, Integrated Gradients, default
params), switches the input to Upload, uploads its own held-out digit as a PNG through the
file chooser, waits for the rendered heatmap, clicks Share and opens the link in a fresh
browser context. Reports p50/p95 times, errors (goal: 0 at 20 sessions) and the server's RSS
before, at peak and after. Bounded: at most ``MAX_SESSIONS`` sessions, each stopped after
``--session-timeout`` seconds, the whole run after ``--timeout``.

    python -m bench.load [--sessions 20] [--model vit-dot] [--ramp 0] [--timeout 900]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import _harness as h

MAX_SESSIONS = 64
MB = 2**20
PHASES = ("first_view", "attribution", "share", "reopen")
PHASE_LABELS = {
    "first_view": "open Attribution page → heatmap drawn",
    "attribution": "upload → attribution heatmap drawn (IG)",
    "share": "click Share → link shown",
    "reopen": "open the link in a fresh browser → heatmap drawn",
}


@dataclass
class SessionResult:
    """One simulated person: seconds per phase, and the error that stopped them (if any)."""

    n: int
    times: dict[str, float] = field(default_factory=dict)
    error: str = ""


@dataclass
class Memory:
    """The server's RSS in MB: idle, with the model loaded, peak during the run, after it."""

    idle: float = 0.0
    before: float = 0.0
    peak: float = 0.0
    after: float = 0.0


# --------------------------------------------------------------------------- one session


async def person(browser: Any, base: str, model: str, image: Path, sample: int, result: SessionResult) -> None:
    """Open the page, upload ``image``, wait for the heatmap, share and reopen the link."""
    context, page, tracker = await h.new_page(browser)
    try:
        result.times["first_view"] = await h.open_rendered(page, tracker, h.attribution_url(base, model, sample=sample))
        await h.settle(page, tracker)
        await h.choose_upload_source(page, tracker)
        since = tracker.count
        result.times["attribution"] = await h.upload(page, tracker, image)
        await h.settle(page, tracker, since)
        await h.fail_on_errors(page)
        link, result.times["share"] = await h.share(page, tracker)
        if "?id=" not in link:
            raise h.BenchError(f"Share showed {link[:80]!r}, not a link")
    finally:
        await context.close()
    result.times["reopen"] = await reopen(browser, link)


async def reopen(browser: Any, link: str) -> float:
    """Seconds to open a share link in a fresh context until its heatmap is drawn."""
    context, page, tracker = await h.new_page(browser)
    try:
        took = await h.open_rendered(page, tracker, link)
        await h.fail_on_errors(page)
        return took
    finally:
        await context.close()


async def guarded(coro: Any, result: SessionResult, timeout: float) -> None:
    """Run one session; any failure or timeout is recorded as its error."""
    try:
        await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        result.error = f"timed out after {timeout:.0f} s (done: {', '.join(result.times) or 'nothing'})"
    except Exception as e:  # noqa: BLE001 - every failure is counted and reported
        result.error = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


# --------------------------------------------------------------------------- the run


async def sample_peak(server: h.Server, memory: Memory, stop: asyncio.Event) -> None:
    """Track the server's peak RSS every 0.25 s until ``stop`` is set."""
    while not stop.is_set():
        memory.peak = max(memory.peak, server.rss() / MB)
        await asyncio.sleep(0.25)


async def crowd(browser: Any, server: h.Server, args: argparse.Namespace, folder: Path) -> list[SessionResult]:
    """All sessions at once (or spread over ``--ramp`` seconds), bounded by ``--timeout``."""
    indices = h.heldout_indices(2 * args.sessions, 900)
    results = [SessionResult(n) for n in range(args.sessions)]
    tasks = []
    for n, result in enumerate(results):
        image = h.heldout_png(folder, indices[2 * n])
        coro = _delayed(n * args.ramp / max(1, args.sessions),
                        person(browser, server.url, args.model, image, indices[2 * n + 1], result))
        tasks.append(asyncio.create_task(guarded(coro, result, args.session_timeout)))
    done, pending = await asyncio.wait(tasks, timeout=args.timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for result in results:
        if not result.error and len(result.times) < len(PHASES):
            result.error = f"stopped by --timeout {args.timeout:.0f} s"
    return results


async def _delayed(seconds: float, coro: Any) -> None:
    await asyncio.sleep(seconds)
    await coro


async def run(args: argparse.Namespace) -> tuple[list[SessionResult], Memory, float]:
    """Start the server and browser, warm the model, run the crowd; results, memory and wall seconds."""
    from playwright.async_api import async_playwright

    memory = Memory()
    with h.temp_folder() as folder:
        async with async_playwright() as p, h.running(h.zooscope_command) as server:
            browser = await h.launch_chromium(p)
            try:
                memory.idle = server.rss() / MB
                await reopen(browser, h.attribution_url(server.url, args.model))  # loads the model
                memory.before = memory.peak = server.rss() / MB
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample_peak(server, memory, stop))
                start = time.perf_counter()
                results = await crowd(browser, server, args, folder)
                wall = time.perf_counter() - start
                stop.set()
                await sampler
                await asyncio.sleep(2.0)  # sessions close when their sockets do
                memory.after = server.rss() / MB
            finally:
                await browser.close()
    return results, memory, wall


# --------------------------------------------------------------------------- report


def summary(results: Sequence[SessionResult], memory: Memory, wall: float, args: argparse.Namespace) -> str:
    """The markdown body: phases table, errors and memory."""
    lines = [f"{args.sessions} concurrent sessions (ramp {args.ramp:g} s), model {args.model}, IG default params; "
             f"wall time {wall:.1f} s; {h.which_chromium()}.", "",
             "| phase | p50 | p95 | max | sessions |", "|---|---:|---:|---:|---:|"]
    for phase in PHASES:
        values = [r.times[phase] for r in results if phase in r.times]
        cells = [f"{h.percentile(values, q):.2f} s" if values else "n/a" for q in (50, 95, 100)]
        lines.append(f"| {PHASE_LABELS[phase]} | {' | '.join(cells)} | {len(values)} |")
    errors = [r for r in results if r.error]
    lines += ["", f"- errors: {len(errors)} of {len(results)} sessions (goal: 0 at 20)"]
    lines += [f"  - session {r.n}: {r.error}" for r in errors[:20]]
    growth = 100.0 * (memory.after - memory.before) / memory.before if memory.before else float("nan")
    lines.append(f"- server RSS: idle {memory.idle:,.0f} MB; {args.model} loaded {memory.before:,.0f} MB; "
                 f"peak {memory.peak:,.0f} MB; after {memory.after:,.0f} MB ({growth:+.1f} % vs loaded)")
    return "\n".join(lines) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=20, help=f"concurrent browser sessions (1-{MAX_SESSIONS})")
    p.add_argument("--model", default="vit-dot", help="the zoo model the sessions attribute")
    p.add_argument("--ramp", type=float, default=0.0, help="spread the session starts over this many seconds")
    p.add_argument("--session-timeout", type=float, default=600.0, help="seconds before one session is stopped")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds before the whole run is stopped")
    p.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md as it is")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the load test, print the summary and write it to bench/RESULTS.md; 1 when a session failed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if not 1 <= args.sessions <= MAX_SESSIONS:
        print(f"--sessions must be 1 to {MAX_SESSIONS}", file=sys.stderr)
        return 2
    h.require_chromium()
    print(h.device_line(), flush=True)
    results, memory, wall = asyncio.run(run(args))
    body = summary(results, memory, wall, args)
    print(body)
    if not args.no_write:
        command = ["python", "-m", "bench.load", *argv]
        h.write_section("load", h.section("load", "Load (`bench/load.py`)", body, command))
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
