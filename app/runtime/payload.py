"""What a saved analysis is stored as, whatever the database: canonical JSON metadata, arrays as an .npz.

Never pickle: object arrays are refused before saving, and archives are read with pickle
disabled. Wrong arguments from our own code raise ``TypeError``/``ValueError``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np


def check_text(field: str, value: object, *, allow_empty: bool) -> None:
    """Refuse a kind or title that is not text (or is empty where it must not be)."""
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, got {type(value).__name__}")
    if not value and not allow_empty:
        raise ValueError(f"{field} must not be empty")


def meta_to_json(meta: Mapping[str, Any]) -> str:
    """Canonical JSON (sorted keys, compact); numpy scalars become Python numbers."""
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    return json.dumps(dict(meta), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(
        f"meta values must be JSON (str, number, bool, None, list, dict); got {type(value).__name__}. "
        "Put arrays in `arrays`, not in `meta`."
    )


def checked_arrays(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The arrays as plain ndarrays; object arrays are refused because they would need pickle."""
    if not isinstance(arrays, Mapping):
        raise TypeError(f"arrays must be a dict of name -> array, got {type(arrays).__name__}")
    checked = {}
    for name, value in arrays.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"array names must be non-empty str, got {name!r}")
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(
                f"array {name!r} has dtype {array.dtype}, which would need pickle; the store saves only "
                "numeric, bool and string arrays. Convert it first, e.g. np.asarray(x, dtype=str)."
            )
        checked[name] = array
    return checked


def pack_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Write the arrays as an .npz archive, the layout np.savez writes, with pickle disabled.

    Written member by member rather than with ``np.savez(buf, **arrays)`` so
    that array names like "file" or "allow_pickle" cannot collide with
    np.savez's own parameters.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
    return buffer.getvalue()


def unpack_arrays(blob: bytes) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive, read with pickle disabled (a pickled member is an error)."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
