"""Decode a capsule network's class capsule with pose offsets a person sets (the Capsules page's sliders).

The analyzers decode perturbed poses one dimension at a time (``analyzers.pose_perturbation``);
the sliders move all 16 dimensions at once, which needs one decoder call per slider position.
Each call runs :func:`analyzers.reconstruct_with_offsets` through :func:`app.runtime.compute.run_work`,
behind the same guards and cache as every other analysis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from analyzers import reconstruct_with_offsets
from app.runtime import compute
from app.runtime.results import array_sha256, result_key


def offsets_key(offsets: Sequence[float]) -> str:
    """Canonical text of the pose offsets, for the cache key."""
    return ",".join(repr(round(float(o), 6)) for o in offsets)


def reconstruction(model: str, pixels: np.ndarray, target: int, offsets: Sequence[float]) -> np.ndarray:
    """Digit (28, 28) decoded from capsule ``target`` of ``pixels``'s poses with ``offsets`` (16,) added.

    Every other capsule is masked out, as in the paper's reconstructions (Sabour et al. 2017).

    Raises:
        app.runtime.guards.AnalysisError: the model could not be loaded, or the decoder failed.
    """
    spec = compute.spec_of(model)
    pixels = np.asarray(pixels, dtype=np.float32)

    def key() -> str:
        return result_key(input_sha256=array_sha256(pixels), spec=spec, analysis="pose_reconstruction",
                          params={"target": str(int(target)), "offsets": offsets_key(offsets)})

    def decode(m) -> np.ndarray:
        out = reconstruct_with_offsets(m, spec, compute.model_inputs(pixels), int(target), offsets)
        out.flags.writeable = False
        return out

    return compute.run_work(spec, f"Decoding capsule {int(target)} of {model}", key, decode)
