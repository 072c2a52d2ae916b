"""Start the zooscope web app: ``streamlit run app/main.py`` with explicit, safe settings.

Every setting that matters is passed as a command-line flag, so the server behaves the
same whatever directory it is started from (``.streamlit/config.toml`` holds the same
values for a bare ``streamlit run``). Started through :func:`launch`, the server also serves
an ``index.html`` that connects page URLs (share links) straight to the app's root
(:func:`serve_direct_connect`), answers without Nagle's delay (:func:`serve_without_nagle_delay`),
and sends every response with headers that keep other sites from framing the app, with
``/_stcore/metrics`` closed unless the operator opens it (:func:`serve_response_policy`).
"""

from __future__ import annotations

import argparse
import atexit
import hmac
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
FRAME_ANCESTORS_ENV = "ZOOSCOPE_FRAME_ANCESTORS"
METRICS_ENV = "ZOOSCOPE_METRICS"
METRICS_CLOSED, METRICS_OPEN = "0", "1"
MIN_METRICS_TOKEN_CHARS = 16

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


# One site that may embed the app: http(s)://host[:port], "*." in front of the host for its subdomains.
_ORIGIN = re.compile(r"https?://(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:(\d{1,5}|\*))?",
                     re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]+")  # what an HTTP bearer token may hold (RFC 6750 b64token)
_ASGI = Callable[..., Awaitable[None]]


@dataclass(frozen=True)
class ResponsePolicy:
    """Who may frame the app, and who may read ``/_stcore/metrics``.

    Attributes:
        frame_ancestors: the CSP ``frame-ancestors`` sources: ``'none'`` (no site), or ``'self'``
            and origins such as ``https://wiki.example.org``.
        metrics: ``"0"`` closed (404), ``"1"`` open to anyone, else the bearer token a scraper must send.
    """

    frame_ancestors: tuple[str, ...] = ("'none'",)
    metrics: str = field(default=METRICS_CLOSED, repr=False)  # a token stays out of logs

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The headers every HTTP response carries (ASGI form). X-Frame-Options, for browsers that know
        no CSP, can only say DENY or SAMEORIGIN, so it is left out when other sites may embed the app."""
        csp = "frame-ancestors " + " ".join(self.frame_ancestors)
        headers = [(b"content-security-policy", csp.encode("ascii"))]
        legacy = {("'none'",): b"DENY", ("'self'",): b"SAMEORIGIN"}.get(self.frame_ancestors)
        if legacy:
            headers.append((b"x-frame-options", legacy))
        return headers

    def metrics_status(self, authorization: str) -> int:
        """200 when a request with this Authorization header may read the metrics, else the status
        that refuses it: 404 while they are closed, 401 without the right bearer token."""
        if self.metrics == METRICS_CLOSED:
            return 404
        if self.metrics == METRICS_OPEN:
            return 200
        scheme, _, token = authorization.partition(" ")
        sent = token.strip().encode() if scheme.lower() == "bearer" else b""
        return 200 if hmac.compare_digest(sent, self.metrics.encode()) else 401


def frame_ancestors(value: str) -> tuple[str, ...]:
    """The sites ``ZOOSCOPE_FRAME_ANCESTORS`` lets embed the app (space-separated); ValueError,
    with what to write instead, for anything else."""
    sources = tuple(s.rstrip("/") if "://" in s else s for s in value.split())
    if not sources or sources == ("'none'",):
        return ("'none'",)
    for source in sources:
        if source == "'none'":
            raise ValueError(f"{FRAME_ANCESTORS_ENV}: 'none' cannot be combined with sites; leave it alone or drop it")
        if source != "'self'" and not _ORIGIN.fullmatch(source):
            raise ValueError(f"{FRAME_ANCESTORS_ENV}: {source!r} is not a site that may embed zooscope. Write each "
                             f"as https://host or https://host:port (https://*.host for its subdomains), or 'self' "
                             f"with its quotes, separated by spaces; leave it unset so that no site may.")
    return sources


def metrics_access(value: str) -> str:
    """What ``ZOOSCOPE_METRICS`` asks for: :data:`METRICS_CLOSED`, :data:`METRICS_OPEN` or a bearer
    token; ValueError, with what to write instead, for anything else."""
    value = value.strip()
    if value in ("", METRICS_CLOSED):
        return METRICS_CLOSED
    if value == METRICS_OPEN:
        return METRICS_OPEN
    if len(value) < MIN_METRICS_TOKEN_CHARS or not _TOKEN.fullmatch(value):
        raise ValueError(f"{METRICS_ENV}={value[:20]!r} is not understood: use 0 to keep /_stcore/metrics closed, "
                         f"1 to open it to anyone, or a token of at least {MIN_METRICS_TOKEN_CHARS} letters, digits "
                         f"or ._~+/=- that scrapers send as 'Authorization: Bearer TOKEN'.")
    return value


def response_policy(environ: Mapping[str, str]) -> ResponsePolicy:
    """The :class:`ResponsePolicy` that ``environ`` asks for; ValueError (a message for the operator)
    when one of its values cannot be understood."""
    return ResponsePolicy(frame_ancestors(environ.get(FRAME_ANCESTORS_ENV, "")),
                          metrics_access(environ.get(METRICS_ENV, "")))


def is_metrics_path(path: str) -> bool:
    """Whether a request path is Streamlit's metrics endpoint (after any base URL path)."""
    return path.rstrip("/").endswith("/_stcore/metrics")


class ResponsePolicyMiddleware:
    """ASGI middleware around Streamlit's app: every HTTP response carries the policy's framing
    headers (replacing any X-Frame-Options), and ``/_stcore/metrics`` answers only as it allows."""

    def __init__(self, app: _ASGI, policy: ResponsePolicy) -> None:
        self.app = app
        self.policy = policy
        self._headers = policy.headers()

    async def __call__(self, scope: dict[str, Any], receive: _ASGI, send: _ASGI) -> None:
        if scope["type"] != "http":  # the websocket and the lifespan pass untouched
            await self.app(scope, receive, send)
            return

        async def send_with_policy(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-frame-options"]
                message = {**message, "headers": kept + self._headers}
            await send(message)

        if is_metrics_path(scope["path"]):
            authorization = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin-1")
            status = self.policy.metrics_status(authorization)
            if status != 200:
                await _refuse(send_with_policy, status)
                return
        await self.app(scope, receive, send_with_policy)


async def _refuse(send: _ASGI, status: int) -> None:
    body = b"Not Found" if status == 404 else b"Unauthorized"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="zooscope metrics"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve_response_policy(policy: ResponsePolicy) -> bool:
    """Have Streamlit's server answer through :class:`ResponsePolicyMiddleware`; False (logged, nothing
    changed) when this Streamlit does not build its app the way this expects.

    Streamlit 1.67 builds its Starlette app in ``starlette_server.create_starlette_app`` when the
    server starts; the app it returns is wrapped, so the policy covers every route, 404s included.
    """
    try:
        from streamlit.web.server.starlette import starlette_server
    except ImportError as e:
        _log.warning("no framing headers, /_stcore/metrics left as Streamlit serves it (%s)", e)
        return False
    build = getattr(starlette_server, "create_starlette_app", None)
    if not callable(build):
        _log.warning("no framing headers, /_stcore/metrics left as Streamlit serves it: "
                     "this Streamlit has no starlette_server.create_starlette_app")
        return False
    build = getattr(build, "zooscope_unwrapped", build)  # wrapped before: the newest policy replaces it

    def build_with_policy(*args: object, **kwargs: object) -> ResponsePolicyMiddleware:
        return ResponsePolicyMiddleware(build(*args, **kwargs), policy)

    build_with_policy.zooscope_unwrapped = build  # type: ignore[attr-defined]
    starlette_server.create_starlette_app = build_with_policy
    return True


def server_environment(environ: MutableMapping[str, str]) -> None:
    """Add :data:`SERVER_ENV` to ``environ`` where it has no value of its own (before torch loads)."""
    for name, value in SERVER_ENV.items():
        environ.setdefault(name, value)


def launch(argv: list[str]) -> int:
    """``python -m app.cli.server run SCRIPT FLAGS``: start the warm-up, then Streamlit's own CLI in this process."""
    try:
        policy = response_policy(os.environ)
    except ValueError as e:
        print(f"zooscope: {e}", file=sys.stderr)
        return 2
    server_environment(os.environ)
    warmup.warm_up()
    from app.runtime.models import register_user_models  # torch is loaded by now (the warm-up)

    register_user_models()
    serve_direct_connect()
    serve_without_nagle_delay()
    serve_response_policy(policy)
    return streamlit_cli.main(args=argv, prog_name="streamlit", standalone_mode=True)


def startup_problem() -> str | None:
    """Why the app must not start, or None. Checked before Streamlit is launched (and by every page run)."""
    if os.environ.get(UNSAFE_TORCH_ENV, "").strip() not in ("", "0"):
        return (f"{UNSAFE_TORCH_ENV} is set: it would let torch unpickle arbitrary code from checkpoint "
                f"files. Unset it and start zooscope again.")
    try:
        response_policy(os.environ)
    except ValueError as e:
        return str(e)
    return None


MODELS_ENV = "ZOOSCOPE_MODELS"


def models_environment(paths: list[str], environ: MutableMapping[str, str]) -> str | None:
    """Put ``serve --model PATH`` folders into ``ZOOSCOPE_MODELS`` (after what it holds) for the server process;
    returns a one-line problem for a path that is not a folder, else None."""
    folders = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_dir():
            return f"--model {raw}: not a folder; pass a Hugging Face model folder (config.json + model.safetensors)"
        folders.append(str(path.resolve()))
    if folders:
        environ[MODELS_ENV] = os.pathsep.join(filter(None, [environ.get(MODELS_ENV, ""), *folders]))
    return None


def serve_command(args: argparse.Namespace) -> int:
    """``zooscope serve``: replace this process with the Streamlit server."""
    problem = startup_problem() or models_environment(getattr(args, "model", None) or [], os.environ)
    if problem:
        print(f"zooscope: {problem}", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"zooscope: --port {args.port} is not a TCP port; use 1-65535", file=sys.stderr)
        return 2
    datasets = [d for d in getattr(args, "dataset", None) or [] if d]  # the Dataset page's named datasets
    if datasets:
        os.environ["ZOOSCOPE_DATASETS"] = ",".join(filter(None, [os.environ.get("ZOOSCOPE_DATASETS", ""), *datasets]))
    command = streamlit_command(args.host, args.port)
    print(f"zooscope: serving on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    if os.name == "posix":
        os.execv(command[0], command)  # signals reach Streamlit directly
    return subprocess.call(command)


if __name__ == "__main__":
    sys.exit(launch(sys.argv[1:]))
