"""``zooscope serve``: the Streamlit flags it always passes, and what stops it from starting."""

from __future__ import annotations

import argparse

from app import server


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
    assert command[1:4] == ["-m", "app.server", "run"] and command[4].endswith("app/main.py")


def test_serve_refuses_to_start_with_unsafe_torch_loading(monkeypatch, capsys):
    monkeypatch.setenv(server.UNSAFE_TORCH_ENV, "1")
    assert server.serve_command(argparse.Namespace(host="127.0.0.1", port=8123)) == 2
    assert server.UNSAFE_TORCH_ENV in capsys.readouterr().err


def test_serve_refuses_a_port_that_is_not_one(monkeypatch, capsys):
    monkeypatch.delenv(server.UNSAFE_TORCH_ENV, raising=False)
    assert server.serve_command(argparse.Namespace(host="127.0.0.1", port=70000)) == 2
    assert "not a TCP port" in capsys.readouterr().err
