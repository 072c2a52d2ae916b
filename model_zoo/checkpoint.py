"""Checkpoints that describe themselves, loaded through safetensors only, and the model loader."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .registry import get_spec
from .spec import ModelSpec

SAFETENSORS_MAGIC_MAX_HEADER = 100 * 1024 * 1024


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not fit its model; the message names both."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(model: nn.Module, path: Path, meta: dict[str, Any]) -> str:
    """Write the model's weights as safetensors with JSON metadata in the header; return its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={k: json.dumps(v, sort_keys=True) for k, v in meta.items()})
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return file_sha256(path)


def read_metadata(path: Path) -> dict[str, Any]:
    """The JSON metadata a checkpoint carries (config, metrics, recipe, split, code version)."""
    with safe_open(str(path), framework="pt") as f:
        return {k: json.loads(v) for k, v in (f.metadata() or {}).items()}


def _looks_like_safetensors(path: Path) -> bool:
    """True when the file starts with a plausible safetensors header (u64 length + '{')."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n <= min(SAFETENSORS_MAGIC_MAX_HEADER, path.stat().st_size - 8) and head[8:9] == b"{"


def _read_plugin_state(spec: ModelSpec, path: Path) -> dict[str, torch.Tensor]:
    """A plugin's weights: the header checked against the file (size, offsets, memory) before reading."""
    from .safety import ModelSourceError, check_memory, read_header

    fix = f"reinstall the plugin that provides {spec.name} ({spec.extra.get('plugin', '?')})"
    try:
        headers = read_header(path)
        check_memory(sum(t.nbytes for t in headers.values()), "its weights", path.parent)
        return load_file(str(path))
    except ModelSourceError as e:
        raise CheckpointError(f"{spec.name}: {e}; {fix}") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{spec.name}: weights {path} are unreadable ({e}); {fix}") from None


def _read_state(spec: ModelSpec, path: Path) -> dict[str, torch.Tensor]:
    if spec.source != "zoo":
        return _read_plugin_state(spec, path)
    if not path.exists():
        raise CheckpointError(f"{spec.name}: no checkpoint at {path}; run `zooscope train {spec.name}`")
    if not _looks_like_safetensors(path):
        raise CheckpointError(
            f"{spec.name}: {path.name} is not a safetensors file (refused without loading it); "
            f"restore the shipped checkpoint or run `zooscope train {spec.name}`"
        )
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{spec.name}: checkpoint {path.name} is unreadable or truncated ({e}); "
                              f"restore it or run `zooscope train {spec.name}`") from None


def _check_shapes(spec: ModelSpec, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    missing, unexpected = sorted(want.keys() - got.keys()), sorted(got.keys() - want.keys())
    wrong = [f"{k}: checkpoint {got[k]} vs model {want[k]}" for k in sorted(want.keys() & got.keys()) if want[k] != got[k]]
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing, e.g. {missing[:3]}" if missing else "",
                 f"{len(unexpected)} unexpected, e.g. {unexpected[:3]}" if unexpected else "",
                 f"shape mismatch in {len(wrong)} tensors, e.g. {wrong[:3]}" if wrong else ""]
        raise CheckpointError(f"{spec.name}: checkpoint does not fit the model config: " + "; ".join(p for p in parts if p))


def best_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: the argument, else ZOOSCOPE_DEVICE, else CUDA when available, else CPU."""
    choice = device or os.environ.get("ZOOSCOPE_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)


def build(spec: ModelSpec) -> nn.Module:
    """A freshly initialised model for a spec (no weights loaded)."""
    return spec.builder(spec.config)


def load(name: str, device: str | torch.device | None = None) -> nn.Module:
    """A zoo model with its shipped weights, in eval mode, parameters frozen, on the best device."""
    return load_spec(get_spec(name), device)


def load_spec(spec: ModelSpec, device: str | torch.device | None = None) -> nn.Module:
    """The model a spec describes, weights from its checkpoint (safetensors only), eval mode, frozen."""
    model = build(spec)
    if spec.checkpoint_path is not None:
        state = _read_state(spec, spec.checkpoint_path)
        _check_shapes(spec, model, state)
        model.load_state_dict(state)
    model.eval().requires_grad_(False)
    return model.to(best_device(device))


def config_dict(spec: ModelSpec) -> dict[str, Any]:
    """The spec's config as a plain dict (for metadata and cards)."""
    return dataclasses.asdict(spec.config)
