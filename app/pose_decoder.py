"""Decode a capsule network's class capsule with pose offsets a person sets (the Capsules page's sliders).

The analyzers decode perturbed poses one dimension at a time (``analyzers.pose_perturbation``);
the sliders move all 16 dimensions at once, which needs one decoder call per slider position.
This module runs :func:`analyzers.reconstruct_with_offsets` under the model's lock and caches
it under our own key, like ``app.compute.run`` does for the other analyzers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from app import cache


def offsets_key(offsets: Sequence[float]) -> str:
    """Canonical text of the pose offsets, for the cache key."""
    return ",".join(repr(round(float(o), 6)) for o in offsets)


def reconstruction(model: str, pixels: np.ndarray, target: int, offsets: Sequence[float]) -> np.ndarray:
    """Digit (28, 28) decoded from capsule ``target`` of ``pixels``'s poses with ``offsets`` (16,) added.

    Every other capsule is masked out, as in the paper's reconstructions (Sabour et al. 2017).
    """
    key = cache.result_key(input_sha256=cache.array_sha256(np.asarray(pixels, dtype=np.float32)), model=model,
                           analysis="pose_reconstruction", params={"target": str(int(target)),
                                                                   "offsets": offsets_key(offsets)})
    return cache.run_analysis(model, key, lambda m: _decode(m, model, pixels, int(target), offsets))


def _decode(m: Any, name: str, pixels: np.ndarray, target: int, offsets: Sequence[float]) -> np.ndarray:
    from analyzers import reconstruct_with_offsets
    from model_zoo import get_spec

    from app.compute import image_batch

    out = reconstruct_with_offsets(m, get_spec(name), image_batch(pixels), target, offsets)
    out.flags.writeable = False
    return out
