"""``zooscope serve``: the Streamlit flags it always passes, and what stops it from starting."""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
from pathlib import Path

from app.cli import server


def test_serve_passes_safe_explicit_flags():
    flags = dict(f[2:].split("=", 1) for f in server.server_flags("127.0.0.1", 8123))
    assert flags["server.address"] == "127.0.0.1" and flags["server.port"] == "8123"
    assert flags["server.headless"] == "true"
    assert flags["server.enableXsrfProtection"] == "true"
    assert flags["browser.gatherUsageStats"] == "false"
    assert flags["server.fileWatcherType"] == "none"
    assert int(flags["server.maxUploadSize"]) <= 5
    assert flags["client.showErrorDetails"] == "none"
    command = server.streamlit_command("127.0.0.1", 8123)
    assert command[1:4] == ["-m", "app.cli.server", "run"] and command[4].endswith("app/main.py")


def test_serve_refuses_to_start_with_unsafe_torch_loading(monkeypatch, capsys):
    monkeypatch.setenv(server.UNSAFE_TORCH_ENV, "1")
    assert server.serve_command(argparse.Namespace(host="127.0.0.1", port=8123)) == 2
    assert server.UNSAFE_TORCH_ENV in capsys.readouterr().err


def test_serve_refuses_a_port_that_is_not_one(monkeypatch, capsys):
    monkeypatch.delenv(server.UNSAFE_TORCH_ENV, raising=False)
    assert server.serve_command(argparse.Namespace(host="127.0.0.1", port=70000)) == 2
    assert "not a TCP port" in capsys.readouterr().err


def test_page_urls_connect_to_the_app_root_without_probing_the_page_path(tmp_path):
    from streamlit import file_util

    real = Path(file_util.get_static_dir())
    patched = server.direct_connect_static_dir(real, ["attribution", "latent"], tmp_path / "static")
    assert patched is not None
    index = (patched / "index.html").read_text()
    head = index.split("<head>", 1)[1]
    assert head.lstrip().startswith("<script>")  # before Streamlit's own module script
    assert head.index("BACKEND_BASE_URL") < head.index('type="module"')
    assert '["attribution", "latent"]' in index
    script = server.DIRECT_CONNECT_JS % '["attribution", "latent"]'
    assert index.replace("<head>\n" + script, "<head>", 1) == (real / "index.html").read_text()
    for entry in real.iterdir():  # everything else is Streamlit's own file
        if entry.name != "index.html":
            assert (patched / entry.name).resolve() == entry.resolve()


def test_an_index_of_another_shape_is_left_as_streamlit_ships_it(tmp_path):
    static = tmp_path / "streamlit-static"
    static.mkdir()
    (static / "index.html").write_text("<html><body>no head element</body></html>")
    assert server.direct_connect_static_dir(static, ["attribution"], tmp_path / "out") is None
    (static / "index.html").write_text("<html><head><script>window.__streamlit = {}</script></head></html>")
    assert server.direct_connect_static_dir(static, ["attribution"], tmp_path / "out") is None


def _nodelay_on_an_accepted_connection(listening: socket.socket) -> int:
    """TCP_NODELAY on the server's side of one connection that asyncio accepts on ``listening``."""
    async def accept_one() -> int:
        loop = asyncio.get_running_loop()
        seen: asyncio.Future[int] = loop.create_future()

        class Accepted(asyncio.Protocol):
            def connection_made(self, transport):  # type: ignore[override]
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        serving = await loop.create_server(Accepted, sock=listening)
        _, writer = await asyncio.open_connection(*listening.getsockname()[:2])
        try:
            return await asyncio.wait_for(seen, 5)
        finally:
            writer.close()
            serving.close()
            await serving.wait_closed()

    return asyncio.run(accept_one())


def test_a_listening_socket_made_without_a_protocol_accepts_connections_without_nagles_delay():
    plain = socket.socket(socket.AF_INET)  # how Streamlit 1.67 makes its own: protocol 0
    plain.bind(("127.0.0.1", 0))
    plain.listen(8)
    plain.setblocking(False)
    plain.set_inheritable(True)
    fd, address = plain.fileno(), plain.getsockname()
    tcp = server.tcp_socket(plain)
    assert tcp.proto == socket.IPPROTO_TCP and tcp.fileno() == fd and tcp.getsockname() == address
    assert not tcp.getblocking() and tcp.get_inheritable()
    assert _nodelay_on_an_accepted_connection(tcp) != 0
    with socket.socket(socket.AF_UNIX) as local:  # not an internet socket: left as it is
        assert server.tcp_socket(local) is local


def test_streamlits_server_socket_accepts_connections_without_nagles_delay(monkeypatch):
    from streamlit.web.server.starlette import starlette_server

    monkeypatch.setattr(starlette_server, "_bind_socket", starlette_server._bind_socket)  # put back afterwards
    assert server.serve_without_nagle_delay()
    patched = starlette_server._bind_socket
    assert server.serve_without_nagle_delay() and starlette_server._bind_socket is patched  # wrapped once
    listening = patched("127.0.0.1", 0, 8)  # Streamlit's own bind, through the wrapper
    assert _nodelay_on_an_accepted_connection(listening) != 0


def test_the_server_environment_makes_torchs_waiting_threads_sleep_unless_told_otherwise():
    environ: dict[str, str] = {}
    server.server_environment(environ)
    assert environ["OMP_WAIT_POLICY"] == "PASSIVE"
    mine = {"OMP_WAIT_POLICY": "ACTIVE"}
    server.server_environment(mine)
    assert mine == {"OMP_WAIT_POLICY": "ACTIVE"}


def test_the_launcher_module_does_not_load_torch_before_it_sets_the_environment():
    # libgomp reads OMP_WAIT_POLICY once, when torch loads: importing the launcher must not load it.
    code = "import sys, app.cli.server; print('torch' in sys.modules, 'app.runtime.models' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(server.__file__).parents[2],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
