"""The contract of an analyzer: what it is called, what it needs, and how to call it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Union

import torch

from .params import Params

# What analyzers take as ``inputs``: image batches (B, 1, 28, 28) in [0, 1]; for MiniLM a list of
# sentences (attention) or of (sentence A, sentence B) pairs (attribution); None where an analyzer
# works on the built-in held-out split or needs no input (manifold grid).
Inputs = Union[torch.Tensor, Sequence[str], Sequence[tuple[str, str]], None]


@dataclass(frozen=True)
class MethodSpec:
    """One analyzer as the app's menus see it: name, label, function, params class, paper, needs.

    ``function(model, spec, inputs, params, **kwargs) -> result``. An analyzer fits a model when
    ``needs <= spec.capabilities`` and the model's input modality is in ``modalities``.
    """

    name: str
    label: str
    function: Callable[..., Any]
    params: type[Params]
    paper: str
    needs: frozenset[str]
    modalities: frozenset[str] = frozenset({"image"})
    group: str = "attribution"  # attribution | attention | latent | capsules | faithfulness
    help: str = ""  # one line for the UI; defaults to the function's docstring's first line

    def __post_init__(self) -> None:
        if not self.help:  # the function's first docstring line is written to be read as help text
            object.__setattr__(self, "help", (self.function.__doc__ or "").strip().split("\n")[0])

    def fits(self, spec: Any) -> bool:
        """True when this analyzer can run on the model described by ``spec`` (a ModelSpec)."""
        return self.needs <= spec.capabilities and spec.input.modality in self.modalities
