"""Start the zooscope web app: ``streamlit run app/main.py`` with explicit, safe settings.

Every setting that matters is passed as a command-line flag, so the server behaves the
same whatever directory it is started from (``.streamlit/config.toml`` holds the same
values for a bare ``streamlit run``). Started through :func:`launch`, the server also serves
an ``index.html`` that connects page URLs (share links) straight to the app's root
(:func:`serve_direct_connect`), and answers without Nagle's delay (:func:`serve_without_nagle_delay`).
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

from streamlit import file_util
from streamlit.web import cli as streamlit_cli

from app import navigation, warmup

MAIN_SCRIPT = Path(__file__).resolve().parents[1] / "main.py"
MAX_UPLOAD_MB = 5  # matches app.runtime.images.MAX_UPLOAD_BYTES; Streamlit refuses bigger files first

# Threads that wait in torch's OpenMP pool sleep instead of spinning. A server shares its cores
# with Streamlit's own threads, other sessions' analyses and often the browser; with spinning
# threads an IG that takes 28 ms alone took 190-300 ms while one other process kept a core busy
# (2-core machine), and 48 ms with this setting. Read by libgomp when torch loads, so it is set
# before anything imports torch; a value already in the environment wins.
SERVER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}

UNSAFE_TORCH_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"

_log = logging.getLogger(__name__)

# Streamlit's page first asks "<page>/_stcore/health" when it is opened at a page's URL (a share
# link), gets a 404, and asks the app's root 100 ms later. This script, run before Streamlit's own,
# names the root at once when the last part of the path is one of zooscope's pages; any prefix a
# reverse proxy adds in front is kept. Streamlit reads ``window.__streamlit`` when its script starts.
DIRECT_CONNECT_JS = """<script>
/* zooscope: open page URLs without probing <page>/_stcore/health first */
(function () {
  var pages = %s;
  var parts = window.location.pathname.split("/");
  var config = window.__streamlit || {};
  if (config.BACKEND_BASE_URL || pages.indexOf(parts[parts.length - 1]) < 0) return;
  parts.pop();
  window.__streamlit = Object.assign({}, config, {BACKEND_BASE_URL: window.location.origin + parts.join("/") + "/"});
})();
</script>
"""


def server_flags(host: str, port: int) -> list[str]:
    """The Streamlit flags zooscope always runs with."""
    settings = {
        "server.address": host,
        "server.port": str(port),
        "server.headless": "true",
        "server.enableXsrfProtection": "true",
        "server.enableCORS": "true",
        "server.maxUploadSize": str(MAX_UPLOAD_MB),
        "server.maxMessageSize": "50",
        "server.fileWatcherType": "none",
        "server.runOnSave": "false",
        "browser.gatherUsageStats": "false",
        "browser.serverAddress": host,
        "browser.serverPort": str(port),
        "client.toolbarMode": "viewer",
        "client.showErrorDetails": "none",
        "runner.magicEnabled": "false",
        "global.developmentMode": "false",
        "theme.base": "light",
    }
    return [f"--{key}={value}" for key, value in settings.items()]


def streamlit_command(host: str = "127.0.0.1", port: int = 8501) -> list[str]:
    """The full command line that starts the app with this Python.

    ``python -m app.cli.server run app/main.py FLAGS`` is ``streamlit run`` with one addition: the
    start-up warm-up (:func:`app.warmup.warm_up`) begins in the server process before the first
    browser connects, so the first view finds torch, captum and the default model ready.
    """
    return [sys.executable, "-m", "app.cli.server", "run", str(MAIN_SCRIPT), *server_flags(host, port)]


def direct_connect_static_dir(static_dir: Path, pages: list[str], into: Path) -> Path | None:
    """A copy of Streamlit's static folder (links to its files) whose index.html runs
    :data:`DIRECT_CONNECT_JS` first; None when its index.html is not the shape expected."""
    index = (static_dir / "index.html").read_text(encoding="utf-8")
    if index.count("<head>") != 1 or "window.__streamlit" in index:
        return None
    into.mkdir(parents=True, exist_ok=True)
    for entry in static_dir.iterdir():
        if entry.name != "index.html":
            os.symlink(entry, into / entry.name)
    script = DIRECT_CONNECT_JS % json.dumps(sorted(pages))
    (into / "index.html").write_text(index.replace("<head>", "<head>\n" + script, 1), encoding="utf-8")
    return into


def serve_direct_connect() -> bool:
    """Serve Streamlit's pages from :func:`direct_connect_static_dir` in this process; False (and
    Streamlit's own folder, unchanged) when that cannot be done on this Streamlit version."""
    try:
        into = Path(tempfile.mkdtemp(prefix="zooscope-static-"))
        atexit.register(shutil.rmtree, into, True)
        pages = [p.url_path for p in navigation.available() if p.url_path]
        patched = direct_connect_static_dir(Path(file_util.get_static_dir()), pages, into / "static")
    except OSError as e:
        _log.warning("serving Streamlit's own index.html (%s)", e)
        return False
    if patched is None:
        return False
    file_util.get_static_dir = lambda: str(patched)
    return True


def tcp_socket(sock: socket.socket) -> socket.socket:
    """``sock``, a bound internet socket, as one that names TCP as its protocol (same file
    descriptor, still non-blocking and inheritable); ``sock`` itself when it names TCP already or
    is not an internet stream socket. asyncio sets TCP_NODELAY on the connections a socket accepts
    only when it names TCP, and accepted sockets take their protocol from the listening one."""
    if (sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM
            or sock.proto == socket.IPPROTO_TCP):
        return sock
    tcp = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
    tcp.setblocking(False)
    tcp.set_inheritable(True)
    return tcp


def serve_without_nagle_delay() -> bool:
    """Have Streamlit's server send every response at once; False when this Streamlit does not
    bind its socket the way this expects (nothing changed then).

    Streamlit 1.67 binds its listening socket as ``socket.socket(family)``, whose protocol is 0,
    so asyncio left Nagle's algorithm on for every connection: a response written in two parts
    (headers, then body) waited for the browser's delayed ACK, 40 ms for each of the ~60 scripts a
    first visit fetches over a kept-alive connection (a share link's first visit: 1.40 -> 1.10 s).
    """
    try:
        from streamlit.web.server.starlette import starlette_server
    except ImportError:
        return False
    bind = getattr(starlette_server, "_bind_socket", None)
    if bind is None or getattr(bind, "zooscope_tcp", False):
        return bind is not None

    def bind_tcp(*args: object, **kwargs: object) -> socket.socket:
        return tcp_socket(bind(*args, **kwargs))

    bind_tcp.zooscope_tcp = True  # type: ignore[attr-defined]
    starlette_server._bind_socket = bind_tcp
    return True


def server_environment(environ: MutableMapping[str, str]) -> None:
    """Add :data:`SERVER_ENV` to ``environ`` where it has no value of its own (before torch loads)."""
    for name, value in SERVER_ENV.items():
        environ.setdefault(name, value)


def launch(argv: list[str]) -> int:
    """``python -m app.cli.server run SCRIPT FLAGS``: start the warm-up, then Streamlit's own CLI in this process."""
    server_environment(os.environ)
    warmup.warm_up()
    serve_direct_connect()
    serve_without_nagle_delay()
    return streamlit_cli.main(args=argv, prog_name="streamlit", standalone_mode=True)


def startup_problem() -> str | None:
    """Why the app must not start, or None. Checked before Streamlit is launched (and by every page run)."""
    if os.environ.get(UNSAFE_TORCH_ENV, "").strip() not in ("", "0"):
        return (f"{UNSAFE_TORCH_ENV} is set: it would let torch unpickle arbitrary code from checkpoint "
                f"files. Unset it and start zooscope again.")
    return None


def serve_command(args: argparse.Namespace) -> int:
    """``zooscope serve``: replace this process with the Streamlit server."""
    problem = startup_problem()
    if problem:
        print(f"zooscope: {problem}", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"zooscope: --port {args.port} is not a TCP port; use 1-65535", file=sys.stderr)
        return 2
    command = streamlit_command(args.host, args.port)
    print(f"zooscope: serving on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    if os.name == "posix":
        os.execv(command[0], command)  # signals reach Streamlit directly
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(launch(sys.argv[1:]))
