"""Every refusal a user's model folder can meet, checked before anything is allocated or imported.

A folder named by the server's operator is still untrusted data: it may hold pickles, remote code, a
config that asks for terabytes, or a safetensors header that lies about what follows it. The checks,
in the order ``model_zoo.sources`` runs them:

1. files: no symlink leaving the folder, no ``*.py`` anywhere in it, no ``auto_map`` in any top-level JSON
   (remote code), weights only from ``*.safetensors`` (a folder with only ``pytorch_model.bin``/``*.pt``/
   ``*.ckpt``/``*.pkl`` is refused; such files are never opened);
2. each safetensors header: 8-byte little-endian length (capped) + JSON, known dtypes, offsets that tile
   the data section, and a file whose size is exactly what the header declares;
3. the config built on the meta device (no memory): its bytes must fit the memory available, and every
   parameter/buffer name, shape and dtype kind must match the headers.

Every failure is a ``ModelSourceError`` whose message names the file and says what to do.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own cap
MAX_JSON_BYTES = 5 * 1024 * 1024  # config.json, tokenizer_config.json, ...
MAX_LAYERS = 1000  # more than any released model; keeps building on the meta device instant
MEMORY_MARGIN = 1.25  # float32 weights plus room for activations and the copy during loading
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".h5", ".msgpack")
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
FLOAT_DTYPES = {"F8_E4M3", "F8_E5M2", "F16", "BF16", "F32", "F64"}


class ModelSourceError(ValueError):
    """A model folder or plugin that cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor as a safetensors header declares it."""

    dtype: str
    shape: tuple[int, ...]
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def one_line(e: BaseException, limit: int = 300) -> str:
    """An exception's text on one line, capped (library errors can span many lines)."""
    return " ".join(str(e).split())[:limit] or type(e).__name__


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"


def check_files(folder: Path) -> None:
    """Refuse symlinks leaving the folder, Python files, remote code in JSON, and pickle-only weights."""
    root = folder.resolve()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_symlink():
            target = path.resolve()
            if target != root and root not in target.parents:
                raise ModelSourceError(f"{folder}: {rel} is a link to {target}, outside the model folder; "
                                       "copy the file into the folder instead of linking it")
        if path.suffix == ".py":
            raise ModelSourceError(f"{folder}: {rel} is Python code; zooscope never runs code from a model folder "
                                   "(remote code). Remove the .py files, or ship the model as a plugin package")
    for path in sorted(folder.glob("*.json")):
        data = read_json(path, folder)
        if isinstance(data, dict) and "auto_map" in data:
            raise ModelSourceError(f"{folder}: {path.name} has an auto_map (custom code to import); zooscope never "
                                   "runs remote code. Use a model whose architecture transformers ships, or a plugin")
    if not any(folder.glob("*.safetensors")):
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise ModelSourceError(
                f"{folder}: its weights are only {', '.join(pickles[:3])} (pickle, refused: loading a pickle can run "
                "code; it was not opened). Convert them to safetensors where you trust them, e.g. "
                "model.save_pretrained(folder, safe_serialization=True)")
        raise ModelSourceError(f"{folder}: no *.safetensors weights; save the model with "
                               "model.save_pretrained(folder, safe_serialization=True)")


def read_json(path: Path, folder: Path) -> object:
    """A small JSON file of the folder, or a clear refusal naming it."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise ModelSourceError(f"{folder}: {path.name} is {human_bytes(path.stat().st_size)}, too large for a "
                                   f"configuration file (limit {human_bytes(MAX_JSON_BYTES)})")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelSourceError(f"{folder}: {path.name} is not readable JSON ({type(e).__name__}: {e}); "
                               "write it again with save_pretrained") from None


def read_header(path: Path) -> dict[str, TensorInfo]:
    """The tensors a safetensors file declares, after checking the header against the file's size."""
    name = path.name
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ModelSourceError(f"{name}: {size} bytes, too short to be safetensors (truncated?); "
                                       "copy the weights again")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES:
                raise ModelSourceError(f"{name}: header claims {human_bytes(n)} (limit {human_bytes(MAX_HEADER_BYTES)}); "
                                       "the file is not valid safetensors")
            if n > size - 8:
                raise ModelSourceError(f"{name}: header claims {n} bytes but the file has {size}; it is truncated, "
                                       "copy the weights again")
            raw = f.read(n)
    except OSError as e:
        raise ModelSourceError(f"{name}: cannot be read ({e})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelSourceError(f"{name}: the header is not JSON; the file is not safetensors or is damaged") from None
    if not isinstance(header, dict):
        raise ModelSourceError(f"{name}: the header is not a JSON object; the file is not valid safetensors")
    header.pop("__metadata__", None)
    tensors: dict[str, TensorInfo] = {}
    spans: list[tuple[int, int]] = []
    for key, entry in header.items():
        try:
            dtype, shape, (begin, end) = entry["dtype"], tuple(int(d) for d in entry["shape"]), entry["data_offsets"]
            begin, end = int(begin), int(end)
        except (KeyError, TypeError, ValueError):
            raise ModelSourceError(f"{name}: the header entry {key!r} is malformed; the file is not valid safetensors") from None
        if dtype not in DTYPE_BYTES or any(d < 0 for d in shape):
            raise ModelSourceError(f"{name}: tensor {key!r} has dtype {dtype} and shape {shape}, which safetensors "
                                   "does not allow here")
        nbytes = math.prod(shape) * DTYPE_BYTES[dtype]
        if end - begin != nbytes or begin < 0:
            raise ModelSourceError(f"{name}: tensor {key!r} declares {end - begin} bytes for shape {shape} {dtype} "
                                   f"({nbytes} bytes); the header is inconsistent")
        tensors[key] = TensorInfo(dtype, shape, nbytes)
        spans.append((begin, end))
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise ModelSourceError(f"{name}: the tensors' byte ranges overlap or leave gaps; the file is not valid safetensors")
        position = end
    if 8 + n + position != size:
        raise ModelSourceError(
            f"{name}: the header declares {human_bytes(8 + n + position)} but the file holds {human_bytes(size)}; "
            + ("it is truncated, copy the weights again" if size < 8 + n + position else "it has trailing bytes"))
    return tensors


def available_memory() -> int:
    """Bytes of memory available now (MemAvailable from /proc/meminfo; else physical memory)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_memory(nbytes: int, what: str, folder: Path) -> None:
    """Refuse a model whose float32 weights (with a margin) do not fit the memory available."""
    need, have = int(nbytes * MEMORY_MARGIN), available_memory()
    if need > have:
        raise ModelSourceError(f"{folder}: {what} needs about {human_bytes(need)} of memory with its working margin; "
                               f"{human_bytes(have)} is available. Use a smaller model or a machine with more memory")


LAYER_KEYS = re.compile(r"(^|_)(num_hidden_layers|num_layers|n_layer|n_layers|num_decoder_layers|encoder_layers|"
                        r"decoder_layers|depths?)$")


def check_config_scale(config: dict, folder: Path) -> None:
    """Refuse layer counts no model has before the config is built (building stays instant)."""
    for key, value in config.items():
        if not LAYER_KEYS.search(key):
            continue
        total = sum(v for v in value if isinstance(v, int)) if isinstance(value, list) else value
        if isinstance(total, int) and total > MAX_LAYERS:
            raise ModelSourceError(f"{folder}: config.json asks for {total} layers ({key}); zooscope refuses more "
                                   f"than {MAX_LAYERS}. Check the config")


def _matching(name: str, headers: dict, prefix: str) -> str | None:
    if name in headers:
        return name
    if prefix and name.startswith(prefix + ".") and name[len(prefix) + 1:] in headers:
        return name[len(prefix) + 1:]
    if prefix and f"{prefix}.{name}" in headers:
        return f"{prefix}.{name}"
    return None


def check_against_headers(model, headers: dict[str, TensorInfo], folder: Path, strict_extra: bool,
                          may_lack: str = "") -> None:
    """Compare every parameter/buffer of a meta-device model with the headers: names, shapes, dtype kinds.

    ``headers`` is keyed by the model's own parameter names (``model_zoo.sources`` renames checkpoint keys
    the way transformers does when it loads); a tensor that transformers builds from several checkpoint
    tensors (fused q/k/v, merged experts) arrives as one TensorInfo holding their total, and is compared by
    element count. Tied weights (one tensor under several names) need only one name in the file; keys the
    model class says may be missing are allowed; extra tensors are allowed only when the folder's
    architecture is not the class loaded (a base encoder from a checkpoint with a head).
    """
    state = model.state_dict(keep_vars=True)
    prefix = getattr(model, "base_model_prefix", "") or ""
    ignore = [re.compile(p) for p in (getattr(model, "_keys_to_ignore_on_load_missing", None) or [])]
    ignore += [re.compile(may_lack)] if may_lack else []
    groups: dict[int, list[str]] = {}
    for key, tensor in state.items():
        groups.setdefault(id(tensor), []).append(key)
    used, missing, wrong = set(), [], []
    for key, tensor in state.items():
        found = _matching(key, headers, prefix)
        if found is None:
            tied = [k for k in groups[id(tensor)] if _matching(k, headers, prefix)]
            if not tied and not any(p.search(key) for p in ignore):
                missing.append(key)
            continue
        used.add(found)
        info = headers[found]
        same = tuple(tensor.shape) == info.shape if info.dtype != "FUSED" else tensor.numel() == info.numel
        if not same:
            wrong.append(f"{key}: config implies {tuple(tensor.shape)}, weights have {info.shape}")
        elif info.dtype != "FUSED" and tensor.is_floating_point() != (info.dtype in FLOAT_DTYPES):
            wrong.append(f"{key}: config implies {tensor.dtype}, weights have {info.dtype}")
    extra = sorted(set(headers) - used)
    problems = []
    if wrong:
        problems.append(f"{len(wrong)} tensors differ, e.g. {'; '.join(wrong[:3])}")
    if missing:
        problems.append(f"{len(missing)} tensors the config implies are not in the weights, e.g. {missing[:3]}")
    if extra and strict_extra:
        problems.append(f"{len(extra)} tensors in the weights are not in the model, e.g. {extra[:3]}")
    if problems:
        raise ModelSourceError(f"{folder}: config.json does not match the safetensors weights: " + "; ".join(problems)
                               + ". Save config and weights together with save_pretrained")


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files transformers would load: model.safetensors or those a sharded index names."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        data = read_json(index, folder)
        names = sorted(set((data or {}).get("weight_map", {}).values())) if isinstance(data, dict) else []
        if not names or any("/" in n or "\\" in n or n.startswith(".") for n in names):
            raise ModelSourceError(f"{folder}: {index.name} names no shard files, or shards outside the folder; "
                                   "save the model again with save_pretrained")
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise ModelSourceError(f"{folder}: {index.name} names {missing[0]}, which is missing; copy every shard")
        return [folder / n for n in names]
    if (folder / "model.safetensors").is_file():
        return [folder / "model.safetensors"]
    others = sorted(p.name for p in folder.glob("*.safetensors"))
    raise ModelSourceError(f"{folder}: transformers loads model.safetensors (or a sharded index), the folder has "
                           f"{', '.join(others[:3])}; rename the file to model.safetensors")


def model_view(meta, headers: dict) -> dict:
    """The headers keyed by the model's parameter names, renamed the way transformers renames checkpoint keys
    when it loads (legacy names, v5 renamings); tensors a converter fuses become one "FUSED" entry (by count)."""
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightConverter, WeightRenaming, rename_source_key

        conversions = get_model_conversion_mapping(meta, add_legacy=True)
        renamings = [c for c in conversions if isinstance(c, WeightRenaming)]
        converters = [c for c in conversions if isinstance(c, WeightConverter)]
        meta_state = meta.state_dict()
        view: dict = {}
        fused: dict[str, int] = {}
        for key, info in headers.items():
            new, pattern = rename_source_key(key, renamings, converters, meta.base_model_prefix, meta_state)
            if pattern is None:
                view[new] = info
            else:
                fused[new] = fused.get(new, 0) + info.numel
        for key, count in fused.items():
            view[key] = TensorInfo("FUSED", (count,), 0)
        return view
    except Exception:  # noqa: BLE001 - transformers' internal renaming API moved: compare the names as stored
        logging.getLogger(__name__).debug("transformers' key renaming unavailable; comparing checkpoint names as they are", exc_info=True)
        return headers
