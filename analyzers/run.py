"""The frame every analyzer call runs in: the model left as found, the device, timing, memory policy."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from .params import Params, params_to_mapping
from .results import RunInfo

T = TypeVar("T")

HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def model_device(model: nn.Module) -> torch.device:
    """The device the model's parameters live on (CPU for a model without parameters)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def hook_count(model: nn.Module) -> int:
    """Number of forward and backward hooks registered on the model and its submodules."""
    return sum(len(getattr(m, d, {})) for m in model.modules() for d in HOOK_DICTS)


@dataclass
class Run:
    """One analyzer call in progress: what runs on which model, and since when."""

    model_name: str
    analyzer: str
    params: Params
    device: torch.device
    started: float

    def info(self) -> RunInfo:
        """The RunInfo for the result, with the seconds taken so far."""
        return RunInfo(self.model_name, self.analyzer, params_to_mapping(self.params), str(self.device),
                       round(time.perf_counter() - self.started, 6))


@contextmanager
def analysis(model: nn.Module, spec, analyzer: str, params: Params) -> Iterator[Run]:
    """Run an analysis on a model and leave it as found: mode, requires_grad flags, and no new hooks.

    During the call the model is in eval mode with every parameter frozen, whatever the caller had.
    """
    install_library_hooks(model)
    training, flags = model.training, [p.requires_grad for p in model.parameters()]
    before = {id(m): {d: set(getattr(m, d, {})) for d in HOOK_DICTS} for m in model.modules()}
    model.eval().requires_grad_(False)  # gradients are taken w.r.t. inputs only
    try:
        yield Run(spec.name, analyzer, params, model_device(model), time.perf_counter())
    finally:
        _remove_new_hooks(model, before)
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)
        model.train(training)


def install_library_hooks(model: nn.Module) -> None:
    """Let transformers install the hooks it keeps on a model before the call's hooks are counted.

    transformers >= 5 installs inactive output-capturing forward hooks on a model's first forward
    and relies on them from then on (that is how ``output_attentions`` works). They belong to
    the model, not to this call: installing them first keeps them out of what the call removes.
    """
    if "transformers" not in sys.modules:
        return
    try:
        from transformers import PreTrainedModel
        from transformers.utils.output_capturing import maybe_install_capturing_hooks
    except ImportError:  # older transformers: no persistent hooks
        return
    for m in model.modules():
        if isinstance(m, PreTrainedModel):
            maybe_install_capturing_hooks(m)


def _remove_new_hooks(model: nn.Module, before: dict[int, dict[str, set]]) -> None:
    """Drop any hook added during the call (a library that failed midway may leave one)."""
    for m in model.modules():
        for d in HOOK_DICTS:
            hooks = getattr(m, d, None)
            if hooks is None:
                continue
            for key in set(hooks) - before.get(id(m), {}).get(d, set()):
                del hooks[key]


def is_out_of_memory(e: BaseException) -> bool:
    """True for CUDA (or other accelerator) out-of-memory errors."""
    return isinstance(e, torch.cuda.OutOfMemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


def halving_on_oom(fn: Callable[[int], T], batch_size: int) -> T:
    """Call ``fn(batch_size)``; on out-of-memory retry with half the batch, down to 1, then give up."""
    while True:
        try:
            return fn(batch_size)
        except RuntimeError as e:
            if not is_out_of_memory(e) or batch_size <= 1:
                raise
            batch_size = max(1, batch_size // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
