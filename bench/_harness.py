"""Shared pieces of the browser benchmarks: a local server, headless chromium, "rendered" waits, RSS.

- :class:`Server` starts ``zooscope serve`` (or ``streamlit run`` of any script with the same
  flags) on a free 127.0.0.1 port with ``ZOOSCOPE_HOME`` in a temporary folder, waits until
  ``/_stcore/health`` answers and stops it by its PID.
- :func:`launch_chromium` starts Debian's ``/usr/bin/chromium`` through Playwright (never a
  downloaded browser).
- :class:`RunTracker` reads the Streamlit websocket of a page: it decodes every ForwardMsg,
  so it knows when a script run starts, which elements it sends and when it finishes.
  :func:`wait_rendered` combines that with the page's DOM: "rendered" means the run that
  followed an action sent the element we wait for (or finished), the page has processed
  that message, the element is no longer stale, a chart has its canvas/svg, and two
  animation frames have been painted since.
- :func:`rss_bytes` sums VmRSS over a process and its descendants.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOST = "127.0.0.1"
START_TIMEOUT_S = 120.0
WARM_DONE = "zooscope: warm-up done"  # what the server logs when its start-up warm-up has finished
RENDER_TIMEOUT_S = 180.0
VIEWPORT = {"width": 1400, "height": 1800}

# Counts the websocket messages the page itself has handled, so a DOM check never runs ahead
# of the message it is meant to see (Playwright hears frames at the network layer).
_FRAME_COUNTER_JS = """
(() => {
  const Native = window.WebSocket;
  window.__zsFrames = 0;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', () => { window.__zsFrames += 1; });
    }
  };
})();
"""

# True once the page has handled ``frames`` messages and, if a selector is given, its
# ``nth`` match is in a non-stale element container (with a drawn canvas/svg for charts).
_RENDERED_JS = """
([frames, selector, nth, needsGraphic]) => {
  if ((window.__zsFrames || 0) < frames) return false;
  const fresh = (e) => e.closest('[data-testid="stElementContainer"]')?.getAttribute('data-stale') !== 'true';
  if ([...document.querySelectorAll('[data-testid="stException"]')].some(fresh)) return 'a traceback';
  const error = [...document.querySelectorAll('[data-testid="stAlertContentError"]')].find(fresh);
  if (error) return 'an error: ' + error.innerText.slice(0, 200);
  if (!selector) return true;
  const el = document.querySelectorAll(selector)[nth];
  if (!el) return false;
  if (!fresh(el)) return false;
  if (!needsGraphic) return true;
  const g = el.querySelector('canvas, svg');
  return !!g && g.getBoundingClientRect().width > 0;
}
"""

# Resolves once the page's main thread has an idle period (or after 5 s at most).
_IDLE_JS = "() => new Promise(r => requestIdleCallback(() => r(true), {timeout: 5000}))"

_TWO_FRAMES_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"

CHART = '[data-testid="stMain"] [data-testid="stVegaLiteChart"]'


class BenchError(RuntimeError):
    """A benchmark step failed; the message says which and why."""


# --------------------------------------------------------------------------- numbers


def median(values: Sequence[float]) -> float:
    """The median, or NaN for no values."""
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, NaN for no values."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    """Resident memory (VmRSS) of ``pid`` and all its descendants, in bytes (0 if gone)."""
    total = 0
    for p in _process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, from /proc/<pid>/task/*/children."""
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        seen.append(p)
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in children.read_text().split())
    return seen


def zooscope_command(port: int) -> list[str]:
    """``zooscope serve`` on ``port`` with this Python."""
    return [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--host", HOST]


# Streamlit's own command line behind the transport zooscope's launcher sets up (responses sent
# without Nagle's delay, ``app.cli.server.serve_without_nagle_delay``), and nothing else of zooscope's.
STREAMLIT_LAUNCHER = ("import sys; from app.cli import server; server.serve_without_nagle_delay(); "
                      "from streamlit.web import cli; "
                      "sys.exit(cli.main(args=sys.argv[1:], prog_name='streamlit', standalone_mode=True))")


def streamlit_command(script: Path, port: int) -> list[str]:
    """``streamlit run script`` with exactly the flags and the server transport zooscope serves with,
    so that a floor differs from its figure only by zooscope's own work."""
    from app.cli.server import server_flags

    return [sys.executable, "-c", STREAMLIT_LAUNCHER, "run", str(script), *server_flags(HOST, port)]


EMPTY_APP = 'import streamlit as st\nst.selectbox("choice", list(range(10)), key="choice")\nst.write("ready")\n'


def write_empty_app(folder: Path) -> Path:
    """A throwaway one-widget Streamlit script: the floor of every page load and rerun."""
    path = folder / "empty_app.py"
    path.write_text(EMPTY_APP)
    return path


@dataclass
class Server:
    """A local server process: start it, wait for health, measure it, stop it by PID.

    Args:
        command: ``lambda port: [...]`` building the command line for a port.
        home: ZOOSCOPE_HOME for the server (a fresh temporary folder when None).
    """

    command: Any
    home: Path | None = None
    port: int = 0
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    healthy_at: float = 0.0
    _tmp: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log(self) -> Path:
        return self.home / "server.log"

    def start(self) -> Server:
        """Start the process (the clock starts here); does not wait."""
        if self.home is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="zooscope-bench-")
            self.home = Path(self._tmp.name)
        self.home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = {**os.environ, "ZOOSCOPE_HOME": str(self.home), "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as out:
            self.started_at = time.perf_counter()
            self.proc = subprocess.Popen(self.command(self.port), cwd=ROOT, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    async def wait_healthy(self, timeout: float = START_TIMEOUT_S) -> float:
        """Seconds from start until ``/_stcore/health`` answers "ok"."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            if await asyncio.to_thread(self._healthy):
                self.healthy_at = time.perf_counter()
                return self.healthy_at - self.started_at
            await asyncio.sleep(0.05)
        raise BenchError(f"server did not answer within {timeout:.0f} s:\n{self.tail()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=1) as r:
                return r.read().strip() == b"ok"
        except OSError:
            return False

    async def wait_warm(self, timeout: float = START_TIMEOUT_S) -> float:
        """Wait until the server's log says its start-up warm-up is done; seconds since start."""
        deadline = time.perf_counter() + timeout
        while WARM_DONE not in self.tail(200_000):
            if time.perf_counter() > deadline:
                raise BenchError(f"no {WARM_DONE!r} in the server log within {timeout:.0f} s")
            await asyncio.sleep(0.1)
        return time.perf_counter() - self.started_at

    def rss(self) -> int:
        """Resident memory of the server's process tree in bytes."""
        return rss_bytes(self.pid)

    def tail(self, chars: int = 3000) -> str:
        """The end of the server's log."""
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def stop(self) -> None:
        """SIGTERM the server's process group (it was started in its own session), then SIGKILL."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


@contextlib.asynccontextmanager
async def running(command: Any, home: Path | None = None):
    """A started, healthy :class:`Server`, stopped on exit."""
    server = Server(command, home).start()
    try:
        await server.wait_healthy()
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- browser


def require_chromium() -> None:
    """Fail clearly when Debian's chromium is missing (it is never downloaded)."""
    if not CHROMIUM.exists():
        raise BenchError(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)")


async def launch_chromium(playwright: Any) -> Any:
    """Debian's headless chromium through Playwright."""
    require_chromium()
    return await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@dataclass
class Frame:
    """One ForwardMsg the server sent: when it arrived, its position and what it was."""

    at: float
    index: int  # 1-based count of messages on this page's websockets
    kind: str  # "run_start", "element", "finished", "other"
    detail: str = ""
    doc_index: int = 0  # 1-based count within the current document's sockets; 0: an older document's


class RunTracker:
    """Decodes a page's Streamlit websocket messages into run starts, elements and run ends."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self._hash_kind: dict[str, str] = {}
        self._changed = asyncio.Event()
        self._sockets = 0  # websockets seen so far
        self._doc_socket = 1  # the first socket of the current document
        self._doc_count = 0  # messages received on the current document's sockets
        self._new_document = True
        self.last: tuple[float, float, float] | None = None  # run start, awaited message, rendered

    def attach(self, page: Any) -> RunTracker:
        page.on("websocket", self._on_socket)
        return self

    @property
    def count(self) -> int:
        return len(self.frames)

    def expect_new_document(self) -> None:
        """The page is about to load a new document: its counting starts again at the next socket."""
        self._new_document = True

    def _on_socket(self, ws: Any) -> None:
        self._sockets += 1
        ordinal = self._sockets
        if self._new_document:
            self._doc_socket, self._doc_count, self._new_document = ordinal, 0, False
        ws.on("framereceived", lambda payload: self._on_frame(ordinal, payload))

    def _on_frame(self, socket: int, payload: Any) -> None:
        kind, detail = ("other", "") if isinstance(payload, str) else self._classify(payload)
        doc_index = 0
        if socket >= self._doc_socket:
            self._doc_count += 1
            doc_index = self._doc_count
        self.frames.append(Frame(time.perf_counter(), len(self.frames) + 1, kind, detail, doc_index))
        self._changed.set()

    def _classify(self, payload: bytes) -> tuple[str, str]:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        try:
            msg = ForwardMsg.FromString(payload)
        except Exception:  # noqa: BLE001 - an undecodable frame is just "other"
            return "other", ""
        which = msg.WhichOneof("type")
        if which == "new_session":
            return "run_start", ""
        if which == "script_finished":
            return "finished", ForwardMsg.ScriptFinishedStatus.Name(msg.script_finished)
        if which == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element.WhichOneof("type") or ""
            if msg.hash:
                self._hash_kind[msg.hash] = element
            return "element", element
        if which == "ref_hash":  # an element the browser already holds, sent by reference
            return "element", self._hash_kind.get(msg.ref_hash, "")
        return "other", ""

    async def wait_for(self, since: int, kind: str, detail: str | None = None, nth: int = 0,
                       timeout: float = RENDER_TIMEOUT_S) -> Frame:
        """The ``nth`` frame of ``kind`` (and ``detail``) in the first run that starts after frame ``since``.

        For ``kind="finished"`` the run must have finished successfully; a run that ended early
        for a rerun is skipped and the next run is searched.
        """
        deadline = time.perf_counter() + timeout
        while True:
            found = self._search(since, kind, detail, nth)
            if found is not None:
                return found
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise BenchError(f"no {kind} {detail or ''} within {timeout:.0f} s (frames: {self._summary(since)})")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))

    def run_start_of(self, frame: Frame) -> Frame:
        """The run-start message of the run that ``frame`` belongs to."""
        return next(f for f in reversed(self.frames[:frame.index]) if f.kind == "run_start" and f.doc_index)

    def split(self, start: float) -> tuple[float, float, float]:
        """Where the last awaited render's time went, from ``start`` (the action): seconds until the
        run started (upload, page bootstrap, queueing), in the server until the awaited message,
        and in the browser from that message until it was drawn."""
        run, message, end = self.last
        return run - start, message - run, end - message

    def _search(self, since: int, kind: str, detail: str | None, nth: int) -> Frame | None:
        in_run, seen = False, 0
        for f in self.frames[since:]:
            if not f.doc_index:
                continue  # a message to a document the page has left
            if f.kind == "run_start":
                in_run, seen = True, 0
            elif not in_run:
                continue
            elif f.kind == "finished":
                if kind == "finished" and f.detail.startswith("FINISHED_") and "EARLY" not in f.detail:
                    return f
                if "EARLY" not in f.detail and kind != "finished":
                    in_run = False  # that run ended without the element: look at the next one
            elif f.kind == kind and (detail is None or f.detail == detail):
                if seen == nth:
                    return f
                seen += 1
        return None

    def _summary(self, since: int) -> str:
        kinds = [f"{f.kind}:{f.detail}" if f.detail else f.kind for f in self.frames[since:] if f.kind != "other"]
        return ", ".join(kinds[-20:]) or "none"


@dataclass(frozen=True)
class Target:
    """What "rendered" waits for: the ``nth`` element delta of type ``element`` in the run
    (``None``: the run's end), and the DOM node that shows it."""

    element: str | None = "vega_lite_chart"
    selector: str | None = CHART
    nth: int = 0

    @property
    def graphic(self) -> bool:
        return self.element == "vega_lite_chart"


ATTRIBUTION_CHART = Target("vega_lite_chart", CHART, 0)
RUN_END = Target(None, None, 0)


async def wait_rendered(page: Any, tracker: RunTracker, since: int, target: Target = ATTRIBUTION_CHART,
                        timeout: float = RENDER_TIMEOUT_S) -> float:
    """Wait until ``target`` is rendered by the run that followed frame ``since``; return the time.

    Raises:
        BenchError: the page shows a traceback, or nothing rendered within ``timeout``.
    """
    kind = "finished" if target.element is None else "element"
    frame = await tracker.wait_for(since, kind, target.element, target.nth, timeout)
    ok = await page.wait_for_function(_RENDERED_JS, arg=[frame.doc_index, target.selector, target.nth,
                                                         target.graphic], polling="raf", timeout=timeout * 1000)
    state = await ok.json_value()
    if state is not True:
        raise BenchError(f"the page shows {state}")
    await page.evaluate(_TWO_FRAMES_JS)
    end = time.perf_counter()
    tracker.last = (tracker.run_start_of(frame).at, frame.at, end)
    return end


async def wait_run_end(page: Any, tracker: RunTracker, since: int, timeout: float = RENDER_TIMEOUT_S) -> float:
    """Wait until the first run after frame ``since`` finished and the page shows it; return the time."""
    return await wait_rendered(page, tracker, since, RUN_END, timeout)


async def new_tab(context: Any) -> tuple[Any, RunTracker]:
    """Another tracked page in ``context``: its HTTP cache is shared, its Streamlit session is new."""
    page = await context.new_page()
    return page, RunTracker().attach(page)


async def new_page(browser: Any) -> tuple[Any, Any, RunTracker]:
    """A fresh browser context (no cookies, no cache, no session) with one tracked page."""
    context = await browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(RENDER_TIMEOUT_S * 1000)
    await context.add_init_script(_FRAME_COUNTER_JS)
    page = await context.new_page()
    return context, page, RunTracker().attach(page)


async def goto(page: Any, tracker: RunTracker, url: str) -> int:
    """Start loading ``url`` in ``page`` (a new document, a new Streamlit session); the frame count before."""
    since = tracker.count
    tracker.expect_new_document()
    await page.goto(url, wait_until="commit")
    return since


async def open_rendered(page: Any, tracker: RunTracker, url: str, target: Target = ATTRIBUTION_CHART) -> float:
    """Go to ``url`` and wait until ``target`` is rendered; return seconds from navigation start."""
    start = time.perf_counter()
    since = await goto(page, tracker, url)
    return await wait_rendered(page, tracker, since, target) - start


async def settle(page: Any, tracker: RunTracker, since: int | None = None,
                 timeout: float = RENDER_TIMEOUT_S) -> None:
    """Wait until no script run is going on and the page is idle: the run after frame ``since``
    (if given) and the latest run started have finished, no new run starts for 0.3 s, and the
    browser has finished drawing (its main thread reached an idle period), so that the next
    timed action does not also pay for what the previous one left to draw."""
    if since is not None:
        await wait_run_end(page, tracker, since, timeout)
    while True:
        starts = [f.index for f in tracker.frames if f.kind == "run_start"]
        await wait_run_end(page, tracker, starts[-1] - 1 if starts else 0, timeout)
        last = tracker.count
        await asyncio.sleep(0.3)
        if not any(f.kind == "run_start" for f in tracker.frames[last:]):
            await page.evaluate(_IDLE_JS)
            return


# --------------------------------------------------------------------------- the app's pages


async def upload(page: Any, tracker: RunTracker, path: Path, target: Target = ATTRIBUTION_CHART) -> float:
    """Pick ``path`` in the page's file chooser; seconds until ``target`` is rendered."""
    chooser = page.locator('[data-testid="stFileUploaderDropzoneInput"]').first
    since = tracker.count
    start = time.perf_counter()
    await chooser.set_input_files(str(path))
    return await wait_rendered(page, tracker, since, target) - start


async def choose_upload_source(page: Any, tracker: RunTracker) -> None:
    """Switch the input picker to "Upload" and wait for that run to end."""
    since = tracker.count
    await page.get_by_text("Upload", exact=True).first.click()
    await settle(page, tracker, since)


async def select_option(page: Any, tracker: RunTracker, label: str, option: str,
                        target: Target = ATTRIBUTION_CHART) -> float:
    """Choose ``option`` in the select box labelled ``label``; seconds until ``target`` is rendered."""
    combo = page.get_by_role("combobox", name=label, exact=True).first
    if not await combo.is_visible():
        await _open_expanders(page)
    box = page.locator('[data-testid="stSelectbox"]').filter(has=combo).first
    await box.get_by_role("button", name="Open").click()
    choice = page.get_by_role("option", name=option, exact=True).first
    await choice.wait_for()
    since = tracker.count
    start = time.perf_counter()
    await choice.click()
    return await wait_rendered(page, tracker, since, target) - start


async def _open_expanders(page: Any) -> None:
    """Open every collapsed expander (opening one does not rerun the script)."""
    closed = page.locator('[data-testid="stExpander"] details:not([open]) > summary')
    for _ in range(await closed.count()):
        await closed.nth(0).click()
    await page.wait_for_function("() => !document.querySelector('[data-testid=\"stExpanderDetails\"][inert]')")
    await asyncio.sleep(0.5)  # the opening animation


async def share(page: Any, tracker: RunTracker) -> tuple[str, float]:
    """Click Share; the link shown and seconds until it showed."""
    since = tracker.count
    start = time.perf_counter()
    await page.get_by_role("button", name="Share").click()
    code = page.locator('.st-key-share-link a', has_text="?id=").first
    await code.wait_for()
    took = time.perf_counter() - start
    await settle(page, tracker, since)
    return (await code.inner_text()).strip(), took


async def page_errors(page: Any) -> list[str]:
    """Tracebacks and error messages the page shows right now."""
    found = []
    if await page.locator('[data-testid="stException"]').count():
        found.append("traceback")
    alerts = page.locator('[data-testid="stAlertContentError"]')
    for i in range(await alerts.count()):
        found.append((await alerts.nth(i).inner_text()).strip()[:200])
    return found


async def fail_on_errors(page: Any) -> None:
    """Raise :class:`BenchError` when the page shows a traceback or an error message."""
    errors = await page_errors(page)
    if errors:
        raise BenchError("; ".join(errors))


def attribution_url(base: str, model: str = "vit-dot", method: str = "integrated_gradients",
                    sample: int = 0, **params: Any) -> str:
    """The Attribution page's URL for a view (see ``app.features.attribution.AttributionView``)."""
    from urllib.parse import urlencode

    query = {"model": model, "method": method, "sample": str(sample), **{k: str(v) for k, v in params.items()}}
    return f"{base}/attribution?{urlencode(query)}"


# --------------------------------------------------------------------------- inputs


def heldout_png(folder: Path, index: int, scale: int = 4, invert: bool = True) -> Path:
    """Held-out image ``index`` as a PNG a person might upload: enlarged, dark ink on light paper."""
    from PIL import Image

    from model_zoo import load_split

    pixels = load_split().x_heldout[index]
    image = Image.fromarray(255 - pixels if invert else pixels).resize((28 * scale, 28 * scale),
                                                                       Image.Resampling.NEAREST)
    path = folder / f"heldout-{index}.png"
    image.save(path, format="PNG")
    return path


def heldout_indices(count: int, start: int = 0) -> list[int]:
    """``count`` held-out indices, cycling through the digit classes (distinct images)."""
    from model_zoo import load_split

    y = load_split().y_heldout
    by_class = [[int(i) for i in (y == d).nonzero()[0]] for d in range(10)]
    return [by_class[(start + k) % 10][(start + k) // 10 % len(by_class[(start + k) % 10])] for k in range(count)]


def model_available(name: str) -> bool:
    """Whether zoo model ``name`` can be loaded (its checkpoint is present, or it is pretrained)."""
    from model_zoo import get_spec

    spec = get_spec(name)
    path = spec.checkpoint_path
    return path is None or path.exists()


# --------------------------------------------------------------------------- reporting


def machine_line() -> str:
    """CPU model, cores, memory and the device the models run on."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}; {device_line()}"


def device_line() -> str:
    """``model_zoo.best_device()`` in words (with the GPU's name on CUDA)."""
    import torch

    from model_zoo import best_device

    device = best_device()
    if device.type == "cuda":
        return f"device: cuda ({torch.cuda.get_device_name(device)}), torch {torch.__version__}"
    return f"device: {device.type} ({torch.get_num_threads()} threads), torch {torch.__version__}"


def load_line() -> str:
    """The machine's load average right now (how busy the measurement was)."""
    with contextlib.suppress(OSError):
        one, five, fifteen = os.getloadavg()
        return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} cores"
    return "load average unknown"


def git_revision() -> str:
    """The commit benchmarked, with "+dirty" when the working tree has changes."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def section(name: str, title: str, body: str, command: Sequence[str]) -> str:
    """A RESULTS.md section: title, date, machine, command, commit, then ``body``."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!-- bench:{name}:start -->\n## {title}\n\n"
            f"- date: {now}\n- machine: {machine_line()}\n- {load_line()} (at the end of the run)\n"
            f"- commit: {git_revision()}\n- command: `{' '.join(command)}`\n\n{body.rstrip()}\n"
            f"<!-- bench:{name}:end -->\n")


RESULTS_HEADER = ("# zooscope benchmark results\n\nWritten by `bench/app.py` and `bench/load.py`; each run "
                  "replaces its own section. The load-average line says how busy the machine was: on 2 cores, "
                  "anything well above 1 means other work competed with the measurement.\n")


def write_section(name: str, text: str, path: Path = RESULTS) -> None:
    """Replace section ``name`` of ``path`` with ``text`` (or append it)."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    old = path.read_text() if path.exists() else RESULTS_HEADER
    if start in old and end in old:
        before, rest = old.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        new = f"{before}{text}\n{after}"
    else:
        new = f"{old.rstrip()}\n\n{text}"
    path.write_text(new.rstrip() + "\n")


def which_chromium() -> str:
    """The chromium binary and its version, for the report."""
    if not CHROMIUM.exists():
        return "missing"
    try:
        out = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return out or str(shutil.which("chromium") or CHROMIUM)


@contextlib.contextmanager
def temp_folder(prefix: str = "zooscope-bench-") -> Iterator[Path]:
    """A temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as d:
        yield Path(d)
