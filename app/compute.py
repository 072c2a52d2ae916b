"""Run analyzers for the pages: numpy inputs in, cached result dataclasses out.

The one place where the app turns arrays into tensors and calls ``analyzers``; pages never
touch torch. Every call goes through :func:`app.cache.run_analysis`, so a result is computed
once per process under our own key and the model is held by one session at a time.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from app import cache

_log = logging.getLogger(__name__)


class AnalysisError(Exception):
    """An analysis could not run; the message is for people (what was wrong, what to do)."""


def input_sha256(inputs: np.ndarray | Sequence[Any] | None) -> str:
    """The identity of an input: sha256 of an image array's bytes, or of texts as JSON."""
    if inputs is None:
        return "none"
    if isinstance(inputs, np.ndarray):
        return cache.array_sha256(inputs)
    text = json.dumps([list(t) if isinstance(t, tuple) else t for t in inputs], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def image_batch(pixels: np.ndarray) -> Any:
    """(28, 28) or (B, 28, 28) pixels in [0, 1] -> a float tensor (B, 1, 28, 28)."""
    import torch

    a = np.asarray(pixels, dtype=np.float32)
    a = a[None] if a.ndim == 2 else a  # (B, 28, 28)
    return torch.from_numpy(np.array(a, dtype=np.float32, copy=True)).unsqueeze(1)  # (B, 1, 28, 28)


def _model_inputs(inputs: np.ndarray | Sequence[Any] | None) -> Any:
    if isinstance(inputs, np.ndarray):
        return image_batch(inputs)
    return None if inputs is None else list(inputs)


def run(analyzer: str, model: str, params: Any, inputs: np.ndarray | Sequence[Any] | None = None, *,
        depends_on: str = "", **kwargs: Any) -> Any:
    """Run analyzer ``analyzer`` (a key of ``analyzers.ANALYZERS``) on zoo model ``model``, cached.

    Args:
        params: the analyzer's params dataclass (canonical form goes into the cache key).
        inputs: (28, 28) / (B, 28, 28) pixels, a list of texts or pairs, or None.
        depends_on: an extra key part for results that take another result as input (e.g. the
            attribution key for deletion curves), so different orderings never share an entry.
        kwargs: passed to the analyzer (e.g. ``attributions=`` for deletion curves).

    Raises:
        AnalysisError: the params do not fit, the checkpoint is missing, or the analysis failed.
    """
    from analyzers import ParamError, params_to_mapping, run_analyzer
    from model_zoo import CheckpointError, get_spec

    try:
        spec = get_spec(model)
    except KeyError as e:
        raise AnalysisError(str(e.args[0]) if e.args else f"unknown model {model!r}") from None
    key = cache.result_key(input_sha256=input_sha256(inputs), model=model, analysis=analyzer,
                           params=params_to_mapping(params), extra={"depends_on": depends_on})
    try:
        return cache.run_analysis(model, key, lambda m: run_analyzer(analyzer, m, spec, _model_inputs(inputs),
                                                                     params, **kwargs))
    except ParamError as e:
        raise AnalysisError(f"{e}") from None
    except CheckpointError as e:
        raise AnalysisError(f"The model could not be loaded: {e}") from None
    except NotImplementedError:
        raise AnalysisError(f"{analyzer} is not available in this build of zooscope yet.") from None
    except Exception as e:  # a bug or the machine: say so plainly, keep the traceback in the server log
        _log.exception("analysis %s on %s failed", analyzer, model)
        raise AnalysisError(f"{analyzer} on {model} failed ({type(e).__name__}). The details are in the server "
                            "log; try other settings, or try again.") from None


def key_of(analyzer: str, model: str, params: Any, inputs: np.ndarray | Sequence[Any] | None) -> str:
    """The cache key :func:`run` uses (for results that depend on another result)."""
    from analyzers import params_to_mapping

    return cache.result_key(input_sha256=input_sha256(inputs), model=model, analysis=analyzer,
                            params=params_to_mapping(params), extra={"depends_on": ""})
