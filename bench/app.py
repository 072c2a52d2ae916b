"""Performance as users feel it: the app through a real browser, each figure against its floor.

Starts ``zooscope serve`` on free 127.0.0.1 ports (ZOOSCOPE_HOME in a temporary folder),
drives Debian's chromium through Playwright and prints a table of medians over ``--repeat``
runs, each with a floor measured in the same run and the ratio to it:

- cold start (server start -> Attribution page with vit-dot's prediction and heatmap drawn);
  floor: the same for a one-widget Streamlit script served with the same flags;
- upload -> rendered attribution (IG, default params) for vit-dot and capsnet; floor: the
  same IG on the same image, in-process;
- parameter change: another head on the Attention page (the attention is computed once, so
  this is rerun + redraw), another target class on the Attribution page (IG recomputed) and
  back to a cached one -> updated chart, three of each per page opened; floor: an empty rerun
  (a widget change on the one-widget script);
- opening a share link -> rendered view, in a new tab of a browser that has opened zooscope
  before and on a first visit (fresh browser); floors: ``Store.load`` of it, and the empty
  script opened in a fresh browser;
- latent page first render for vae-16d with UMAP (a fresh server, once its warm-up is done;
  the page's first visit in that process); floor: the same with PCA;
- server RSS with every model loaded (floor: the one-widget script's server), and its
  growth after ``--analyses`` IG views.

"Rendered" = the run that followed the action sent the element, the page handled that
message, the element is no longer stale, the chart has its canvas/svg and two animation
frames were painted (see ``bench._harness.wait_rendered``).

    python -m bench.app [--repeat 5] [--only cold,upload,param,share,latent,memory] [--analyses 100]
    zooscope bench app --repeat 1 --analyses 10
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import _harness as h

SCENARIOS = ("cold", "upload", "param", "share", "latent", "memory")
UPLOAD_MODELS = ("vit-dot", "capsnet")
TARGETS_PER_ROUND = 3  # target changes (and returns to the cached one) timed per page opened
TARGETS = {  # seconds, or MB / % for memory rows
    "cold": 5.0, "upload:vit-dot": 1.5, "upload:capsnet": 3.0, "param": 0.3, "share": 1.0, "latent": 2.0,
    "rss": 1536.0, "growth": 10.0,
}
MB = 2**20


@dataclass
class Row:
    """One line of the table: a figure's samples, its floor's samples, the target and a note."""

    figure: str
    values: list[float] = field(default_factory=list)
    floor: str = "—"
    floor_values: list[float] = field(default_factory=list)
    target: float | None = None
    unit: str = "s"
    note: str = ""
    splits: list[tuple[float, float, float]] = field(default_factory=list)

    def add(self, seconds: float, tracker: h.RunTracker | None = None) -> None:
        """One timed sample, with where its time went when a tracker saw it."""
        self.values.append(seconds)
        if tracker is not None and tracker.last is not None:
            self.splits.append(tracker.split(tracker.last[2] - seconds))

    def say(self, text: str, *, first: bool = False) -> None:
        """Add ``text`` to the note (before what it says already when ``first``)."""
        text = " ".join(text.split()).replace("|", "\\|")  # one table cell: no newlines, no pipes
        parts = [text, self.note] if first else [self.note, text]
        self.note = "; ".join(p for p in parts if p)

    @property
    def split(self) -> str:
        """Median seconds before the run started / in the server / in the browser."""
        if not self.splits:
            return "—"
        return " / ".join(f"{h.median([s[i] for s in self.splits]):.2f}" for i in range(3))

    @property
    def value(self) -> float:
        return h.median(self.values)

    @property
    def floor_value(self) -> float:
        return h.median(self.floor_values)

    @property
    def ratio(self) -> float:
        return self.value / self.floor_value if self.values and self.floor_values and self.floor_value else float("nan")

    @property
    def verdict(self) -> str:
        if not self.values or self.target is None:
            return "n/a"
        return "pass" if self.value <= self.target else "FAIL"


@dataclass
class Floors:
    """Floors taken from the one-widget Streamlit script: cold start, page open, empty rerun, RSS."""

    cold: list[float] = field(default_factory=list)
    page_open: list[float] = field(default_factory=list)
    rerun: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)


# --------------------------------------------------------------------------- formatting


def _fmt(x: float, unit: str) -> str:
    if x != x:  # NaN
        return "n/a"
    if unit == "s":
        return f"{x:.3f} s" if x < 10 else f"{x:.1f} s"
    if unit == "MB":
        return f"{x:,.0f} MB"
    return f"{x:.1f} %"


def _target(row: Row) -> str:
    if row.target is None:
        return "—"
    return f"≤ {_fmt(row.target, row.unit)}" if row.unit != "MB" else f"≤ {row.target / 1024:.1f} GB"


def table(rows: Sequence[Row]) -> str:
    """The rows as a markdown table (medians, floors, ratios, targets)."""
    lines = ["| figure | median | runs | floor | floor median | ratio | target | verdict | split (s) | note |",
             "|---|---:|---:|---|---:|---:|---|---|---|---|"]
    for r in rows:
        ratio = f"{r.ratio:.1f}×" if r.ratio == r.ratio else "—"
        floor = _fmt(r.floor_value, r.unit) if r.floor_values else "—"
        lines.append(f"| {r.figure} | {_fmt(r.value, r.unit)} | {len(r.values)} | {r.floor} | {floor} | {ratio} | "
                     f"{_target(r)} | {r.verdict} | {r.split} | {r.note} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- guarded steps


async def _guard(row: Row, step: Callable[[], Any]) -> None:
    """Run one measurement; a failure becomes the row's note instead of ending the suite."""
    try:
        await step()
    except Exception as e:  # noqa: BLE001 - every failure is reported in the table
        row.say(f"error: {type(e).__name__}: {' '.join(str(e).split())[:200]}")
        print(f"[{row.figure}] {traceback.format_exc(limit=3)}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- floors


async def empty_app_floors(browser: Any, repeat: int) -> Floors:
    """Cold start, fresh-context page open, empty rerun and RSS of the one-widget script."""
    floors = Floors()
    with h.temp_folder() as folder:
        script = h.write_empty_app(folder)
        for i in range(repeat):
            server = h.Server(lambda port: h.streamlit_command(script, port)).start()
            try:
                await _empty_app_round(browser, server, floors, i)
            finally:
                server.stop()
    return floors


async def _empty_app_round(browser: Any, server: h.Server, floors: Floors, i: int) -> None:
    await server.wait_healthy()
    context, page, tracker = await h.new_page(browser)
    try:
        since = await h.goto(page, tracker, server.url)
        floors.cold.append(await h.wait_run_end(page, tracker, since) - server.started_at)
        floors.rerun.append(await h.select_option(page, tracker, "choice", str(1 + i % 9), h.RUN_END))
        floors.rss_mb.append(server.rss() / MB)
    finally:
        await context.close()
    context, page, tracker = await h.new_page(browser)
    try:
        floors.page_open.append(await h.open_rendered(page, tracker, server.url, h.RUN_END))
    finally:
        await context.close()


def ig_floor(model: str, images: Sequence[Path]) -> list[float]:
    """Seconds of IG (default params) on each image alone, in this process, after one warm-up."""
    import numpy as np
    import torch

    from analyzers import IGParams, run_analyzer
    from app.runtime.images import decode_image
    from model_zoo import get_spec, load

    spec, net = get_spec(model), load(model)
    tensors = [torch.from_numpy(np.array(decode_image(p.read_bytes()).pixels, dtype=np.float32)).view(1, 1, 28, 28)
               for p in images]
    run_analyzer("integrated_gradients", net, spec, tensors[0], IGParams())
    times = []
    for x in tensors:
        start = time.perf_counter()
        run_analyzer("integrated_gradients", net, spec, x, IGParams())
        times.append(time.perf_counter() - start)
    return times


def store_floor(home: Path, links: Sequence[str]) -> list[float]:
    """Seconds to read each shared analysis with a fresh ``Store`` (connect + select + unpack)."""
    from app.runtime.store import Store

    times = []
    for link in links:
        start = time.perf_counter()
        saved = Store(home / "analyses.sqlite3").load(link.rsplit("id=", 1)[-1])
        times.append(time.perf_counter() - start)
        if saved is None:
            raise h.BenchError(f"the store has no analysis for {link}")
    return times


# --------------------------------------------------------------------------- cold start


async def cold_start(browser: Any, repeat: int, floors: Floors, home: Path | None) -> list[Row]:
    """Server start -> Attribution page with vit-dot's prediction and heatmap drawn."""
    row = Row("cold start: `zooscope serve` → Attribution (vit-dot) drawn", floor="empty Streamlit script",
              floor_values=floors.cold, target=TARGETS["cold"])
    health: list[float] = []
    for i in range(repeat):
        await _guard(row, lambda: _cold_round(browser, row, health, i, home))
    if health:
        row.say(f"server answers /_stcore/health after {h.median(health):.2f} s", first=True)
    return [row]


async def _cold_round(browser: Any, row: Row, health: list[float], i: int, home: Path | None) -> None:
    context, page, tracker = await h.new_page(browser)
    server = h.Server(h.zooscope_command, home).start()
    try:
        health.append(await server.wait_healthy())
        since = await h.goto(page, tracker, h.attribution_url(server.url, sample=h.heldout_indices(1, i)[0]))
        row.add(await h.wait_rendered(page, tracker, since) - server.started_at, tracker)
    finally:
        await context.close()
        server.stop()


# --------------------------------------------------------------------------- warm server figures


async def upload_rows(browser: Any, server: h.Server, repeat: int, warmup: int, folder: Path) -> list[Row]:
    """Upload a held-out digit on the Attribution page -> rendered IG heatmap, per model."""
    rows = []
    for k, model in enumerate(UPLOAD_MODELS):
        row = Row(f"upload → attribution heatmap, IG 64 steps, {model}", floor="same IG in-process",
                  target=TARGETS[f"upload:{model}"])
        rows.append(row)
        if not h.model_available(model):
            row.note = f"n/a ({model} has no checkpoint yet)"
            continue
        images = [h.heldout_png(folder, i) for i in h.heldout_indices(warmup + repeat, 100 * (k + 1))]
        run_ends: list[float] = []
        for n, image in enumerate(images):
            await _guard(row, lambda: _upload_round(browser, server, model, image, row, run_ends, timed=n >= warmup))
        await _guard(row, lambda: _ig_floor_into(row, model, images[warmup:]))
        if run_ends:
            row.say(f"whole run (with deletion/insertion curves) {h.median(run_ends):.2f} s", first=True)
    return rows


async def _ig_floor_into(row: Row, model: str, images: Sequence[Path]) -> None:
    row.floor_values = await asyncio.to_thread(ig_floor, model, images)


async def _upload_round(browser: Any, server: h.Server, model: str, image: Path, row: Row, run_ends: list[float],
                        *, timed: bool) -> None:
    context, page, tracker = await h.new_page(browser)
    try:
        await h.open_rendered(page, tracker, h.attribution_url(server.url, model))
        await h.settle(page, tracker)
        await h.choose_upload_source(page, tracker)
        since, start = tracker.count, time.perf_counter()
        took = await h.upload(page, tracker, image)
        split = tracker.last
        whole = await h.wait_run_end(page, tracker, since) - start
        await h.fail_on_errors(page)
        if timed:
            tracker.last = split
            row.add(took, tracker)
            run_ends.append(whole)
    finally:
        await context.close()


async def param_rows(browser: Any, server: h.Server, repeat: int, warmup: int, floors: Floors) -> list[Row]:
    """Another target class on the Attribution page -> updated heatmap; then back (cached)."""
    fresh = Row("parameter change: target class (IG recomputed), vit-dot", floor="empty rerun",
                floor_values=floors.rerun, target=TARGETS["param"])
    cached = Row("parameter change: back to a cached target, vit-dot", floor="empty rerun",
                 floor_values=floors.rerun, target=TARGETS["param"], note="no compute: rerun + redraw only")
    head = Row("parameter change: another head on the Attention page, vit-dot", floor="empty rerun",
               floor_values=floors.rerun, target=TARGETS["param"], note="attention computed once; rerun + redraw")
    for n, sample in enumerate(h.heldout_indices(warmup + repeat, 300)):
        await _guard(head, lambda: _head_round(browser, server, sample, head, timed=n >= warmup))
        await _guard(fresh, lambda: _param_round(browser, server, sample, fresh, cached, timed=n >= warmup))
    return [head, fresh, cached]


async def _head_round(browser: Any, server: h.Server, sample: int, row: Row, *, timed: bool) -> None:
    """Attention page: another head -> the chosen head's map drawn again (no recomputation)."""
    context, page, tracker = await h.new_page(browser)
    try:
        await h.open_rendered(page, tracker, f"{server.url}/attention?model=vit-dot&sample={sample}")
        await h.settle(page, tracker)
        for head in ("1", "0"):
            took = await h.select_option(page, tracker, "Head", head)
            await h.settle(page, tracker)
            if timed:
                row.add(took, tracker)
        await h.fail_on_errors(page)
    finally:
        await context.close()


async def _param_round(browser: Any, server: h.Server, sample: int, fresh: Row, cached: Row, *, timed: bool) -> None:
    context, page, tracker = await h.new_page(browser)
    try:
        await h.open_rendered(page, tracker, h.attribution_url(server.url, sample=sample))
        await h.settle(page, tracker)
        for step in range(TARGETS_PER_ROUND):  # classes the page has not computed yet, then back each time
            label = str((sample + 3 * step) % 9 + 1)
            took = await h.select_option(page, tracker, "Explained class", f"{label} ({label})")
            if timed:
                fresh.add(took, tracker)
            await h.settle(page, tracker)
            back = await h.select_option(page, tracker, "Explained class", "predicted class")
            if timed:
                cached.add(back, tracker)
            await h.settle(page, tracker)
        await h.fail_on_errors(page)
    finally:
        await context.close()


async def share_rows(browser: Any, server: h.Server, repeat: int, warmup: int, floors: Floors) -> list[Row]:
    """Open a share link -> the saved heatmap drawn: in a new tab of a browser that has opened
    zooscope before (a colleague with the app in their browser; HTTP cache warm, new session), and
    on a first visit (a fresh browser context: every script and style is fetched and compiled)."""
    warm = Row("open a share link (new tab, browser that has opened zooscope before) → heatmap drawn",
               floor="Store.load in-process", target=TARGETS["share"],
               note="new Streamlit session; the browser's HTTP cache holds the app's scripts")
    first = Row("open a share link (first visit: fresh browser, empty cache) → heatmap drawn",
                floor="empty script, fresh browser", floor_values=floors.page_open, target=TARGETS["share"],
                note="Streamlit's own scripts are fetched and compiled first")
    links: list[str] = []
    for n, sample in enumerate(h.heldout_indices(warmup + repeat, 500)):
        await _guard(warm, lambda: _share_round(browser, server, sample, warm, first, links, timed=n >= warmup))
    await _guard(warm, lambda: _store_floor_into(warm, server.home, links))
    return [warm, first]


async def _store_floor_into(row: Row, home: Path, links: Sequence[str]) -> None:
    row.floor_values = store_floor(home, links)


async def _share_round(browser: Any, server: h.Server, sample: int, warm: Row, first: Row, links: list[str], *,
                       timed: bool) -> None:
    context, page, tracker = await h.new_page(browser)
    try:
        await h.open_rendered(page, tracker, h.attribution_url(server.url, sample=sample))
        await h.settle(page, tracker)
        link, _ = await h.share(page, tracker)
        tab, tab_tracker = await h.new_tab(context)
        took = await h.open_rendered(tab, tab_tracker, link)
        await h.fail_on_errors(tab)
        if timed:
            warm.add(took, tab_tracker)
            links.append(link)
    finally:
        await context.close()
    context, page, tracker = await h.new_page(browser)
    try:
        took = await h.open_rendered(page, tracker, link)
        await h.fail_on_errors(page)
        if timed:
            first.add(took, tracker)
    finally:
        await context.close()


# --------------------------------------------------------------------------- latent page


def latent_query(method: str) -> dict[str, str] | None:
    """URL parameters that open the latent page on vae-16d with projection ``method``.

    Found by asking the page's own view class (``app.features.latent.LatentView``) which
    key it reads the projection from; None when there is no such class or no key works.
    """
    view_cls = _latent_view_class()
    if view_cls is None:
        return None
    for key in ("proj.method", "projection", "param.method", "method"):
        query = {"model": "vae-16d", key: method}
        try:
            view, problems = view_cls.from_query({k: [v] for k, v in query.items()})
        except Exception:  # noqa: BLE001 - a key the class cannot take is just not the one
            continue
        if not problems and method in repr(view):
            return query
    return None


def _latent_view_class() -> Any | None:
    """The view class of the latent page (``app.features.latent.LatentView``), or None without that page."""
    try:
        from app.features.latent import LatentView
    except ImportError:
        return None
    return LatentView


async def latent_rows(browser: Any, repeat: int, home: Path | None) -> list[Row]:
    """Latent page first render in a fresh server: UMAP, against PCA."""
    from urllib.parse import urlencode

    from app import navigation

    row = Row("latent page first render, vae-16d, UMAP", floor="same with PCA", target=TARGETS["latent"])
    if navigation.page_info("latent") is None:
        row.note = "n/a (page missing)"
        return [row]
    queries = {m: latent_query(m) for m in ("umap", "pca")}
    if None in queries.values():
        row.note = "n/a (no latent view class that reads a projection method)"
        return [row]
    for _ in range(repeat):
        for method in ("umap", "pca"):
            url_query = urlencode(queries[method])
            await _guard(row, lambda: _latent_round(browser, url_query, row, method == "pca", home))
    where = f"ZOOSCOPE_HOME {home}" if home else "an empty ZOOSCOPE_HOME"
    row.say(f"fresh server each run ({where}), opened once its start-up warm-up is done, in a fresh browser; the "
            f"page's first visit in that process; `?{urlencode(queries['umap'])}`", first=True)
    return [row]


async def _latent_round(browser: Any, query: str, row: Row, floor: bool, home: Path | None) -> None:
    async with h.running(h.zooscope_command, home) as server:
        await server.wait_warm()
        context, page, tracker = await h.new_page(browser)
        try:
            took = await h.open_rendered(page, tracker, f"{server.url}/latent?{query}")
            await h.fail_on_errors(page)
            if floor:
                row.floor_values.append(took)
            else:
                row.add(took, tracker)
        finally:
            await context.close()


# --------------------------------------------------------------------------- memory


async def memory_rows(browser: Any, analyses: int, floors: Floors, home: Path | None) -> list[Row]:
    """Server RSS with every model loaded, then after ``analyses`` IG views."""
    loaded = Row("server RSS, every model loaded", floor="empty Streamlit script RSS", floor_values=floors.rss_mb,
                 target=TARGETS["rss"], unit="MB")
    growth = Row(f"RSS growth after {analyses} IG analyses", target=TARGETS["growth"], unit="%")
    await _guard(loaded, lambda: _memory_run(browser, analyses, loaded, growth, home))
    return [loaded, growth]


async def _memory_run(browser: Any, analyses: int, loaded: Row, growth: Row, home: Path | None) -> None:
    async with h.running(h.zooscope_command, home) as server:
        context, page, tracker = await h.new_page(browser)
        try:
            names, missing = await _load_every_model(page, tracker, server)
            await asyncio.sleep(1.0)
            before = server.rss() / MB
            loaded.values.append(before)
            loaded.say(f"loaded: {', '.join(names)}")
            if missing:
                loaded.say(f"not loaded: {', '.join(missing)}")
            peak = await _run_analyses(page, tracker, server, analyses)
            await asyncio.sleep(1.0)
            after = server.rss() / MB
            growth.values.append(100.0 * (after - before) / before)
            growth.say(f"{before:,.0f} → {after:,.0f} MB (peak {peak:,.0f} MB); each view = IG + curves")
        finally:
            await context.close()


async def _load_every_model(page: Any, tracker: h.RunTracker, server: h.Server) -> tuple[list[str], list[str]]:
    """Open a view of every zoo model whose checkpoint exists; the names loaded and those not."""
    from app import navigation
    from app.links import catalogue
    from model_zoo import REGISTRY

    loaded, missing = [], []
    for name in REGISTRY:
        if not h.model_available(name):
            missing.append(f"{name} (no checkpoint)")
        elif name in catalogue.attribution_models():
            await h.open_rendered(page, tracker, h.attribution_url(server.url, name, "saliency"), h.RUN_END)
            loaded.append(name)
        elif navigation.page_info("attention") is not None:
            await h.open_rendered(page, tracker, f"{server.url}/attention?model={name}", h.RUN_END)
            loaded.append(name)
        else:
            missing.append(f"{name} (no page opens it yet)")
    await h.fail_on_errors(page)
    return loaded, missing


async def _run_analyses(page: Any, tracker: h.RunTracker, server: h.Server, analyses: int) -> float:
    """``analyses`` IG views of distinct held-out digits (vit-dot, and capsnet when present); the peak RSS."""
    models = [m for m in UPLOAD_MODELS if h.model_available(m)]
    peak = server.rss()
    for n, sample in enumerate(h.heldout_indices(analyses, 700)):
        url = h.attribution_url(server.url, models[n % len(models)], sample=sample)
        since = await h.goto(page, tracker, url)
        await h.wait_run_end(page, tracker, since)
        peak = max(peak, server.rss())
    return peak / MB


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zooscope bench app", description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="timed runs per figure (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs before the timed ones (warm server figures)")
    p.add_argument("--analyses", type=int, default=100, help="IG views for the memory-growth figure")
    p.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {','.join(SCENARIOS)}")
    p.add_argument("--home", type=Path, default=None,
                   help="ZOOSCOPE_HOME for the app servers (default: a fresh temporary folder per server)")
    p.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md as it is")
    return p


async def run_suite(args: argparse.Namespace) -> list[Row]:
    """Every chosen scenario, in order; one browser for all."""
    from playwright.async_api import async_playwright

    only = {s.strip() for s in args.only.split(",") if s.strip()}
    rows: list[Row] = []
    async with async_playwright() as p:
        browser = await h.launch_chromium(p)
        try:
            floors = await empty_app_floors(browser, args.repeat)
            if "cold" in only:
                rows += await cold_start(browser, args.repeat, floors, args.home)
            if only & {"upload", "param", "share"}:
                rows += await _warm_rows(browser, args, only, floors)
            if "latent" in only:
                rows += await latent_rows(browser, args.repeat, args.home)
            if "memory" in only:
                rows += await memory_rows(browser, args.analyses, floors, args.home)
        finally:
            await browser.close()
    return rows


async def _warm_rows(browser: Any, args: argparse.Namespace, only: set[str], floors: Floors) -> list[Row]:
    """The figures taken on one already running server."""
    rows: list[Row] = []
    with h.temp_folder() as folder:
        async with h.running(h.zooscope_command, args.home) as server:
            if "upload" in only:
                rows += await upload_rows(browser, server, args.repeat, args.warmup, folder)
            if "param" in only:
                rows += await param_rows(browser, server, args.repeat, args.warmup, floors)
            if "share" in only:
                rows += await share_rows(browser, server, args.repeat, args.warmup, floors)
    return rows


def report(rows: Sequence[Row], args: argparse.Namespace, argv: Sequence[str], seconds: float) -> str:
    """The markdown body: how it was measured, the table and the chromium used."""
    return (f"Medians of {args.repeat} run(s) after {args.warmup} warm-up run(s); suite took {seconds:.0f} s; "
            f"{h.which_chromium()}. \"Rendered\" = the run that followed the action sent the chart, the page "
            "handled it, it is no longer stale and two frames were painted. Split: median seconds from the action "
            "until the script run started (page bootstrap, upload, server start) / in the server until the chart was "
            "sent / in the browser until it was drawn.\n\n" + table(rows) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Run the suite, print the table and write it to bench/RESULTS.md; 1 when a step failed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    h.require_chromium()
    print(h.device_line(), flush=True)
    start = time.perf_counter()
    rows = asyncio.run(run_suite(args))
    body = report(rows, args, argv, time.perf_counter() - start)
    print(body)
    if not args.no_write:
        h.write_section("app", h.section("app", "App benchmark (`bench/app.py`)", body,
                                         ["python", "-m", "bench.app", *argv]))
    return 1 if any("error:" in r.note for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
