"""``zooscope analyze``: the same decoder and the same messages as the web app, exit codes, never a traceback.

A few cases run the real command line (``python -m app.cli analyze ...``) in subprocesses, started
together; the full matrix calls ``app.cli.main`` in this process, which is the same code after the
interpreter has started (each subprocess spends seconds importing torch, captum and scikit-learn).
"""

from __future__ import annotations

import io
import json
import os
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from app.cli import main as cli
from app.runtime.images import decode_image
from app.runtime.inputs import InputError

ROOT = Path(__file__).resolve().parents[3]
SUMMARY_KEYS = {"model", "analyzer", "prediction", "target", "delta", "rel_error", "seconds", "params"}


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_declaring(width: int, height: int) -> bytes:
    """A ~100-byte PNG whose header declares width x height gray pixels: a decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
            + _png_chunk(b"IEND", b""))


def _digit_png() -> bytes:
    img = Image.new("L", (96, 80), 255)
    draw = ImageDraw.Draw(img)
    draw.line((20, 15, 70, 15), fill=0, width=8)
    draw.line((70, 15, 40, 70), fill=0, width=8)
    buffer = io.BytesIO()
    img.save(buffer, "PNG")
    return buffer.getvalue()


GOOD_PNG = _digit_png()
REFUSED = {
    "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><circle r="9"/></svg>',
    "noise.png": random.Random(0).randbytes(4000),
    "bomb.png": _png_declaring(60_000, 60_000),
    "empty.png": b"",
    "page.png": b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
    "cut.png": GOOD_PNG[: len(GOOD_PNG) // 2],
}
FAST = ["--param", "n_steps=8"]


def decoder_message(data: bytes) -> str:
    """What the web app's decoder says about ``data``."""
    with pytest.raises(InputError) as info:
        decode_image(data)
    return str(info.value)


def analyze(*args: str, model: str = "vit-dot", analyzer: str = "integrated_gradients") -> list[str]:
    return ["analyze", "--model", model, "--analyzer", analyzer, *args]


def run_in_process(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------ the real command line


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    for name, data in {**REFUSED, "digit.png": GOOD_PNG}.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture(scope="module")
def subprocess_runs(files) -> dict[str, subprocess.CompletedProcess]:
    """A few real ``python -m app.cli analyze`` runs, started at once and awaited together."""
    cases = {
        "bomb": analyze("--input", str(files / "bomb.png")),
        "nan": analyze("--input", "sample:0", "--param", "n_steps=nan"),
        "good": analyze("--input", str(files / "digit.png"), "--json", *FAST),
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    procs = {name: subprocess.Popen([sys.executable, "-m", "app.cli", *argv], cwd=ROOT, env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name, argv in cases.items()}
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return done


def test_the_command_line_refuses_a_decompression_bomb_with_the_decoders_message(subprocess_runs):
    run, name = subprocess_runs["bomb"], "bomb.png"
    assert run.returncode == 2, run.stderr
    assert run.stdout == ""
    assert f"zooscope analyze: {name}: {decoder_message(REFUSED[name])}" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_command_line_refuses_a_bad_param_with_exit_2(subprocess_runs):
    run = subprocess_runs["nan"]
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "n_steps='nan' is not allowed: n_steps must be an integer from 2 to 1024" in run.stderr


def test_the_command_line_analyses_a_good_png_and_prints_a_json_summary(subprocess_runs):
    run = subprocess_runs["good"]
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert SUMMARY_KEYS <= set(summary)
    assert 0 <= summary["prediction"] <= 9 and summary["target"] == summary["prediction"]
    assert summary["params"]["n_steps"] == "8" and summary["seconds"] > 0
    assert isinstance(summary["delta"], float) and isinstance(summary["rel_error"], float)


# ------------------------------------------------------------------ the full matrix, in process


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_every_refused_file_exits_2_with_the_decoders_message(files, capsys, name):
    code, out, err = run_in_process(analyze("--input", str(files / name)), capsys)
    assert code == 2 and out == ""
    assert err.strip() == f"zooscope analyze: {name}: {decoder_message(REFUSED[name])}"


def test_a_missing_file_is_a_message_not_a_traceback(tmp_path, capsys):
    code, _, err = run_in_process(analyze("--input", str(tmp_path / "nowhere.png")), capsys)
    assert code == 2 and "cannot read" in err and "nowhere.png" in err


@pytest.mark.parametrize("source", ["good", "sample"])
def test_a_good_input_gives_a_json_summary(files, capsys, source):
    where = str(files / "digit.png") if source == "good" else "sample:3"
    code, out, err = run_in_process(analyze("--input", where, "--json", *FAST), capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert SUMMARY_KEYS <= set(summary) and summary["model"] == "vit-dot"
    assert summary["analyzer"] == "integrated_gradients" and summary["params"]["n_steps"] == "8"


@pytest.mark.parametrize("params, expected", [
    (["n_steps=-1"], "n_steps='-1' is not allowed: n_steps must be an integer from 2 to 1024"),
    (["n_steps=0"], "n_steps='0' is not allowed"),
    (["n_steps=1e9"], "n_steps='1e9' is not allowed"),
    (["n_steps=NaN"], "n_steps='NaN' is not allowed"),
    (["n_steps=5.5"], "n_steps='5.5' is not allowed"),
    (["internal_batch_size=4096"], "internal_batch_size must be an integer from 0 to 1024"),
    (["colour=red"], "unknown parameter 'colour' for IGParams; known: n_steps"),
    (["n_steps=8", "n_steps=16"], "n_steps was given 2 times; give it once"),
    (["n_steps"], "--param 'n_steps' is not KEY=VALUE"),
    (["method=simpson"], "method='simpson' is not allowed: method must be one of gausslegendre"),
])
def test_bad_params_exit_2_with_a_clear_message(capsys, params, expected):
    argv = analyze("--input", "sample:0", *[a for p in params for a in ("--param", p)])
    code, out, err = run_in_process(argv, capsys)
    assert code == 2 and out == ""
    assert expected in err and err.startswith("zooscope analyze: ") and "Traceback" not in err


@pytest.mark.parametrize("model, analyzer, inp, expected", [
    ("resnet-50", "integrated_gradients", "sample:0", "unknown model 'resnet-50'; known: vit-dot"),
    ("vit-dot", "deep_dream", "sample:0", "unknown analyzer 'deep_dream'; choose from"),
    ("vit-dot", "latent_projection", "sample:0", "does not fit vit-dot; it fits:"),
    ("vit-dot", "integrated_gradients", "sample:5000", "out of range"),
    ("vit-dot", "integrated_gradients", "sample:x", "is not sample:N"),
    ("minilm", "integrated_gradients", "text:only one sentence", "compare two sentences"),
])
def test_unknown_models_analyzers_and_inputs_exit_2(capsys, model, analyzer, inp, expected):
    code, out, err = run_in_process(analyze("--input", inp, model=model, analyzer=analyzer), capsys)
    assert code == 2 and out == "" and expected in err, err
