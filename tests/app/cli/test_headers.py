"""What every response says about framing, and who may read ``/_stcore/metrics`` (issue 22, item 5)."""

from __future__ import annotations

import argparse
import asyncio
import urllib.error
import urllib.request
from email.message import Message
from pathlib import Path

import pytest

from app.cli import server
from tests.app import serving

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "s3cret-scraper-token-0123"


async def _page(scope, receive, send):
    """A stand-in for Streamlit's app: one page that sets its own X-Frame-Options."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html"), (b"x-frame-options", b"ALLOWALL")]})
    await send({"type": "http.response.body", "body": b"<html></html>"})


def _get(app, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, list[str]], bytes]:
    """GET ``path`` from an ASGI app: status, headers (name -> values), body."""
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": b"",
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}
    asyncio.run(app(scope, receive, send))
    start = sent[0]
    names: dict[str, list[str]] = {}
    for k, v in start["headers"]:
        names.setdefault(k.decode().lower(), []).append(v.decode())
    return start["status"], names, b"".join(m.get("body", b"") for m in sent[1:])


def test_by_default_no_site_may_frame_any_response():
    app = server.ResponsePolicyMiddleware(_page, server.ResponsePolicy())
    status, headers, body = _get(app, "/attribution")
    assert status == 200 and body == b"<html></html>"
    assert headers["content-security-policy"] == ["frame-ancestors 'none'"]
    assert headers["x-frame-options"] == ["DENY"]  # the page's own ALLOWALL is gone


def test_metrics_are_closed_by_default_and_the_refusal_is_framed_too():
    app = server.ResponsePolicyMiddleware(_page, server.ResponsePolicy())
    for path in ("/_stcore/metrics", "/_stcore/metrics/", "/base/_stcore/metrics", "//_stcore/metrics"):
        status, headers, body = _get(app, path)
        assert (status, body) == (404, b"Not Found"), path
        assert headers["x-frame-options"] == ["DENY"]
    assert _get(app, "/_stcore/health")[0] == 200
    assert _get(app, "/_stcore/metrics-about")[0] == 200  # only the endpoint itself


def test_open_metrics_pass_through():
    app = server.ResponsePolicyMiddleware(_page, server.ResponsePolicy(metrics=server.METRICS_OPEN))
    assert _get(app, "/_stcore/metrics")[0] == 200


def test_metrics_behind_a_token_need_it_as_a_bearer_token():
    app = server.ResponsePolicyMiddleware(_page, server.ResponsePolicy(metrics=TOKEN))
    status, headers, _ = _get(app, "/_stcore/metrics")
    assert status == 401 and headers["www-authenticate"][0].startswith("Bearer")
    assert _get(app, "/_stcore/metrics", {"Authorization": "Bearer wrong-token-0123456789"})[0] == 401
    assert _get(app, "/_stcore/metrics", {"Authorization": f"Basic {TOKEN}"})[0] == 401
    assert _get(app, "/_stcore/metrics", {"Authorization": f"Bearer {TOKEN}"})[0] == 200


def test_sites_chosen_by_the_operator_may_frame_the_app():
    sites = "'self'  https://wiki.example.org https://*.example.org:8443/"
    policy = server.response_policy({server.FRAME_ANCESTORS_ENV: sites})
    assert policy.frame_ancestors == ("'self'", "https://wiki.example.org", "https://*.example.org:8443")
    status, headers, _ = _get(server.ResponsePolicyMiddleware(_page, policy), "/")
    assert status == 200
    assert headers["content-security-policy"] == [f"frame-ancestors {' '.join(policy.frame_ancestors)}"]
    assert "x-frame-options" not in headers  # it cannot name a list of sites; the page's own is dropped too
    only_self = server.response_policy({server.FRAME_ANCESTORS_ENV: "'self'"})
    assert dict(only_self.headers())[b"x-frame-options"] == b"SAMEORIGIN"


def test_the_environment_read_when_unset_or_empty_is_the_strict_default():
    assert server.response_policy({}) == server.ResponsePolicy(("'none'",), server.METRICS_CLOSED)
    blank = {server.FRAME_ANCESTORS_ENV: " ", server.METRICS_ENV: ""}
    assert server.response_policy(blank) == server.ResponsePolicy()
    assert server.response_policy({server.METRICS_ENV: "0"}).metrics == server.METRICS_CLOSED
    assert server.response_policy({server.METRICS_ENV: " 1 "}).metrics == server.METRICS_OPEN
    assert server.response_policy({server.METRICS_ENV: TOKEN}).metrics == TOKEN


@pytest.mark.parametrize("value", [
    "*", "https:", "wiki.example.org", "https://wiki.example.org/embed", "javascript:alert(1)",
    "https://a.org; script-src *", "https://a.org,https://b.org", "'none' https://a.org", "self",
    "https://a.org\r\nSet-Cookie: x=1", "ftp://a.org",
])
def test_a_frame_ancestor_that_is_not_a_site_is_refused(value):
    with pytest.raises(ValueError, match=server.FRAME_ANCESTORS_ENV):
        server.response_policy({server.FRAME_ANCESTORS_ENV: value})


@pytest.mark.parametrize("value", ["true", "yes", "2", "short-token", "a token with spaces in it", "tök" * 8])
def test_a_metrics_setting_that_is_not_understood_is_refused(value):
    with pytest.raises(ValueError, match=server.METRICS_ENV):
        server.response_policy({server.METRICS_ENV: value})


def test_serve_refuses_to_start_with_a_setting_it_cannot_understand(monkeypatch, capsys):
    monkeypatch.delenv(server.UNSAFE_TORCH_ENV, raising=False)
    monkeypatch.setenv(server.FRAME_ANCESTORS_ENV, "wiki.example.org")
    assert server.serve_command(argparse.Namespace(host="127.0.0.1", port=8123)) == 2
    assert "https://host" in capsys.readouterr().err
    monkeypatch.delenv(server.FRAME_ANCESTORS_ENV)
    monkeypatch.setenv(server.METRICS_ENV, "yes")
    assert server.serve_command(argparse.Namespace(host="127.0.0.1", port=8123)) == 2
    assert "0 to keep /_stcore/metrics closed" in capsys.readouterr().err
    assert server.launch(["run", "app/main.py"]) == 2  # the launcher checks too, before Streamlit starts


def test_streamlits_app_is_built_inside_the_policy(monkeypatch):
    from streamlit.web.server.starlette import starlette_server

    monkeypatch.setattr(starlette_server, "create_starlette_app", lambda runtime: _page)  # put back afterwards
    assert server.serve_response_policy(server.ResponsePolicy())
    strict = starlette_server.create_starlette_app(object())
    assert isinstance(strict, server.ResponsePolicyMiddleware) and strict.app is _page
    assert server.serve_response_policy(server.ResponsePolicy(metrics=server.METRICS_OPEN))  # replaces, not nests
    assert starlette_server.create_starlette_app(object()).app is _page


def test_a_streamlit_that_builds_its_app_elsewhere_is_left_alone(monkeypatch, caplog):
    from streamlit.web.server.starlette import starlette_server

    monkeypatch.delattr(starlette_server, "create_starlette_app")
    assert not server.serve_response_policy(server.ResponsePolicy())
    assert "no framing headers" in caplog.text
    assert not hasattr(starlette_server, "create_starlette_app")


# --------------------------------------------------------------------------- the real server


def _fetch(url: str) -> tuple[int, Message]:
    """Status and headers (names in any case) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.headers


def _serving(tmp_path: Path, **env: str):
    """``zooscope serve`` on a free port, its own ZOOSCOPE_HOME, no warm-up, only ``env``'s framing settings."""
    for name in ("ZOOSCOPE_FRAME_ANCESTORS", "ZOOSCOPE_METRICS"):
        env.setdefault(name, "")
    return serving.start(tmp_path / f"home-{len(list(tmp_path.iterdir()))}", {"ZOOSCOPE_WARMUP": "0", **env})


def test_the_real_server_frames_nothing_and_keeps_its_metrics_closed_unless_told(tmp_path):
    strict, strict_url, strict_log = _serving(tmp_path)
    try:
        serving.wait_healthy(strict_url, strict, strict_log)
        for path in ("/", "/attribution", "/_stcore/health"):
            status, headers = _fetch(strict_url + path)
            assert status == 200, path
            assert headers.get("Content-Security-Policy") == "frame-ancestors 'none'", path
            assert headers.get("X-Frame-Options") == "DENY", path
        status, headers = _fetch(strict_url + "/_stcore/metrics")
        assert status == 404 and headers.get("X-Frame-Options") == "DENY"
    finally:
        serving.stop(strict)

    embedded, open_url, open_log = _serving(tmp_path, ZOOSCOPE_METRICS="1",
                                            ZOOSCOPE_FRAME_ANCESTORS="https://wiki.example.org")
    try:
        serving.wait_healthy(open_url, embedded, open_log)
        status, headers = _fetch(open_url + "/attribution")
        assert status == 200 and headers.get("Content-Security-Policy") == "frame-ancestors https://wiki.example.org"
        assert "X-Frame-Options" not in headers
        with urllib.request.urlopen(open_url + "/_stcore/metrics", timeout=10) as r:
            assert r.status == 200 and r.read().rstrip().endswith(b"# EOF")  # Streamlit's OpenMetrics text
            assert r.headers.get("Content-Security-Policy") == "frame-ancestors https://wiki.example.org"
    finally:
        serving.stop(embedded)
