"""``zooscope analyze``: run one analyzer on one input from the command line and print its summary.

    zooscope analyze --model vit-dot --analyzer integrated_gradients --input sample:0 --json
    zooscope analyze --model vit-dot --analyzer integrated_gradients --input digit.png \
        --param n_steps=256 --param baseline=blur --out ig.npz
    zooscope analyze --model vae-16d --analyzer latent_interpolation --input sample:3,7
    zooscope analyze --model minilm --analyzer integrated_gradients --input "text:A cat sat.||A dog sat."

``--input`` takes an image file (decoded by its content), ``sample:N[,M,...]`` for held-out
images of the built-in split, or for text models ``text:SENTENCE`` (several sentences or one
A/B pair separated by ``||``). The analysis runs through the same guards as on the server
(:func:`app.runtime.compute.run`: budget, time limit, out-of-memory fallback) and imports no
streamlit. Exit status: 0 done, 2 bad arguments, params or input (or over the budget), 1 the
model could not be loaded or the analysis failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analyzers import ParamError, compatible, get_analyzer, params_from_mapping, to_record
from app.runtime import compute
from app.runtime.guards import AnalysisError, AnalysisTooLarge
from app.runtime.images import decode_image
from app.runtime.inputs import InputError, validate_text
from app.runtime.models import heldout_split, sample_pixels
from model_zoo import get_spec

SAMPLE_PREFIX, TEXT_PREFIX = "sample:", "text:"


class _Refused(Exception):
    """Something the person gave cannot be used; the message says what to do."""


def analyze_command(args: argparse.Namespace) -> int:
    """Run ``args.analyzer`` on ``args.model`` for ``args.input`` and print the summary; return the exit code."""
    try:
        spec, entry, params, inputs = _prepare(args)
    except (ParamError, _Refused) as e:
        return _fail(str(e), 2)
    try:
        result = compute.run(entry.name, spec.name, params, inputs)
    except AnalysisTooLarge as e:
        return _fail(str(e), 2)
    except AnalysisError as e:  # the checkpoint, the time limit, out of memory on every device, ...
        return _fail(str(e), 1)
    summary = summarise(result, args.model, entry.name)
    print(json.dumps(summary, indent=2) if args.json else _human(summary))
    if args.out:
        save_npz(result, Path(args.out))
    return 0


def _prepare(args: argparse.Namespace):
    """Validate everything a person typed before any model is loaded."""
    try:
        spec = get_spec(args.model)
    except KeyError as e:
        raise _Refused(e.args[0]) from None
    entry = get_analyzer(args.analyzer)
    if not entry.fits(spec):
        raise _Refused(f"{entry.label} does not fit {spec.name}; it fits: {', '.join(compatible(spec))}")
    params = params_from_mapping(entry.params, parse_param_pairs(args.param))
    return spec, entry, params, load_inputs(args.input, spec, entry.name)


def _fail(message: str, code: int) -> int:
    print(f"zooscope analyze: {message}", file=sys.stderr)
    return code


def parse_param_pairs(pairs: Sequence[str]) -> dict[str, str | list[str]]:
    """``["k=v", ...]`` -> mapping; a key given twice maps to a list (which params_from_mapping refuses)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise _Refused(f"--param {pair!r} is not KEY=VALUE, e.g. --param n_steps=128")
        key = key.strip()
        out[key] = [*out[key], value] if isinstance(out.get(key), list) else ([out[key], value] if key in out else value)
    return out


def load_inputs(text: str, spec, analyzer: str = ""):
    """The model inputs an ``--input`` names: an image file, held-out samples, or text.

    Text attributions take one pair ``text:A||B``; other text analyzers a list of sentences.
    """
    if spec.input.modality == "text":
        parts = _text_inputs(text)
        if analyzer != "integrated_gradients":
            return parts
        if len(parts) != 2:
            raise _Refused('text attributions compare two sentences: --input "text:SENTENCE A||SENTENCE B"')
        return [(parts[0], parts[1])]
    if text.startswith(SAMPLE_PREFIX):
        return _samples(text[len(SAMPLE_PREFIX):])
    return _image_file(Path(text))


def _samples(indices: str) -> np.ndarray:
    n = len(heldout_split().y_heldout)
    try:
        picks = [int(i) for i in indices.split(",")]
    except ValueError:
        raise _Refused(f"sample:{indices} is not sample:N with N a whole number from 0 to {n - 1}") from None
    if any(not 0 <= i < n for i in picks):
        raise _Refused(f"sample:{indices} is out of range: the held-out split has images 0 to {n - 1}")
    return np.stack([sample_pixels(i) for i in picks])  # (B, 28, 28) in [0, 1]


def _image_file(path: Path) -> np.ndarray:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _Refused(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return np.asarray(decode_image(data).pixels, dtype=np.float32)  # (28, 28) in [0, 1]
    except InputError as e:
        raise _Refused(f"{path.name}: {e}") from None


def _text_inputs(text: str) -> list:
    if not text.startswith(TEXT_PREFIX):
        raise _Refused('text models take --input "text:SENTENCE" or "text:SENTENCE A||SENTENCE B"')
    try:
        parts = [validate_text(p.strip()) for p in text[len(TEXT_PREFIX):].split("||")]
    except InputError as e:
        raise _Refused(str(e)) from None
    return parts


def summarise(result, model: str, analyzer: str) -> dict[str, Any]:
    """The JSON summary: model, analyzer, the result's own summary (scalars for one example), seconds."""
    body = {k: (v[0] if isinstance(v, list) and len(v) == 1 else v) for k, v in result.summary().items()}
    return {"model": model, "analyzer": analyzer, **body, "device": result.info.device,
            "seconds": result.info.seconds, "params": result.info.params}


def _human(summary: dict[str, Any]) -> str:
    return "\n".join(f"{k:>12}: {v}" for k, v in summary.items())


def save_npz(result, path: Path) -> None:
    """Write the result's arrays and its JSON metadata (as a string array, no pickle) to ``path``."""
    meta, arrays = to_record(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, __meta__=np.array(json.dumps(meta)), **{k.replace("/", "__"): v for k, v in arrays.items()})
