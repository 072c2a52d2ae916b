"""Widgets drawn from the ``field_specs`` of an analyzer's params dataclass.

One widget per field: a checkbox for bool, a select box for choices, a number input within the
field's bounds for int and float, a text input otherwise. The shared ``target`` field becomes a
choice of "predicted" or one of the model's labels. Widgets are seeded from the current params
through :class:`app.ui.session.WidgetKeys`, so share links and the URL restore them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from analyzers import ParamError, field_specs
from app.ui import messages
from app.ui.session import WidgetKeys

MAIN_FIELDS = 3  # fields shown directly; the rest go into "More parameters"

# Choices a form cannot supply (they need a tensor passed in code).
HIDDEN_CHOICES = frozenset({"custom"})


# What each field is called on screen: the science, not the code. The code's name (captum's, and the
# link's) is given in the help text, so both stay findable.
LABELS = {
    "target": "Explained class", "n_steps": "Path steps", "method": "Quadrature rule", "baseline": "Baseline",
    "baseline_draws": "Noise baselines averaged", "blur_sigma": "Blur radius σ (pixels)",
    "internal_batch_size": "Inputs per pass (0: automatic)", "seed": "Random seed", "abs": "Absolute values",
    "base": "Method averaged over noise", "nt_type": "Noise aggregation", "nt_samples": "Noisy copies",
    "stdevs": "Noise level σ (pixel units)", "n_samples": "Points on the paths", "window": "Window (pixels)",
    "stride": "Stride (pixels)", "perturbations_per_eval": "Windows per pass (0: automatic)",
    "head_fusion": "Head fusion", "gradient_rollout": "Gradient rollout", "dependence": "Input-dependence measure",
    "n_neighbors": "Neighbours (UMAP)", "min_dist": "Minimum distance (UMAP)", "perplexity": "Perplexity (t-SNE)",
    "n": "Grid points per side", "span": "Probability mass covered", "k": "Sweep (prior σ)",
    "steps": "Images per dimension", "samples": "Samples",
}


def _label(name: str) -> str:
    """A field's name on screen (the code's own name when there is no better one)."""
    return LABELS.get(name, name)


def _help(spec: Any) -> str:
    """The field's help, ending with its name in links and in captum."""
    return f"{spec.help} (`{spec.name}` in links)" if spec.name in LABELS else spec.help


def _target_options(labels: Sequence[str]) -> list[int]:
    return [-1, *range(len(labels))]


def _draw(spec: Any, key: str, labels: Sequence[str], host: Any) -> None:
    """Draw the widget for one field under ``key`` (its value is read from session state).

    Numbers have no bounds in the widget: a value out of range reaches the params' own check and
    shows a visible error (a bounded widget would silently keep the old value and the old result).
    """
    label, hint = _label(spec.name), _help(spec)
    if spec.name == "target" and labels:
        host.selectbox(label, _target_options(labels), key=key, help=hint,
                       format_func=lambda i: "predicted class" if i < 0 else f"{i} ({labels[i]})")
    elif spec.type is bool:
        host.checkbox(label, key=key, help=hint)
    elif spec.choices:
        host.selectbox(label, [c for c in spec.choices if c not in HIDDEN_CHOICES], key=key, help=hint)
    elif spec.type is int:
        host.number_input(label, step=1, key=key, help=hint)
    elif spec.type is float:
        step = (spec.max - spec.min) / 100 if spec.min is not None and spec.max is not None else 0.01
        host.number_input(label, step=float(step), format="%g", key=key, help=hint)
    else:
        host.text_input(label, key=key, help=hint, max_chars=200)


def _options(spec: Any, labels: Sequence[str]) -> list[Any] | None:
    if spec.name == "target" and labels:
        return _target_options(labels)
    if spec.choices:
        return [c for c in spec.choices if c not in HIDDEN_CHOICES]
    return None


def params_form(cls: type, current: Any, keys: WidgetKeys, *, prefix: str,
                labels: Sequence[str] = (), host: Any = st) -> Any:
    """Draw widgets for every field of params class ``cls``, seeded from ``current``; return new params.

    Args:
        cls: a params dataclass (``analyzers.Params`` subclass).
        current: the params to seed widgets with (an instance of ``cls``).
        keys: the page's widget keys; ``prefix`` separates forms of different methods.
        labels: the model's class labels, for the ``target`` field.
        host: where the widgets go: ``st`` (the current container) or a :class:`SettingsSummary`.

    Returns:
        A validated instance of ``cls``, or None after showing what is wrong when a value is out of
        range or the values do not fit together (the page then shows no result, not a stale one).
    """
    specs = sorted(field_specs(cls), key=lambda s: s.name != "target")  # what is explained comes first
    values: dict[str, Any] = {}
    for spec in specs[:MAIN_FIELDS]:
        values[spec.name] = _field(spec, current, keys, prefix, labels, host)
    if len(specs) > MAIN_FIELDS:
        more = host.expander("More parameters")
        for spec in specs[MAIN_FIELDS:]:
            values[spec.name] = _field(spec, current, keys, prefix, labels, more)
    try:
        return cls(**values)
    except (ParamError, TypeError) as e:
        messages.error(f"{e}. Change it to see a result.")
        return None


def _field(spec: Any, current: Any, keys: WidgetKeys, prefix: str, labels: Sequence[str], host: Any) -> Any:
    """Seed, draw and read the widget of one field."""
    seed = getattr(current, spec.name)
    if spec.name == "target" and labels and not -1 <= seed < len(labels):
        seed = -1
    key = keys.key(f"{prefix}.{spec.name}", seed, _options(spec, labels))
    _draw(spec, key, labels, host)
    return st.session_state[key]


def number_field(keys: WidgetKeys, part: str, name: str, current: Any, host: Any = st) -> Any:
    """A number input for one params field, within its bounds, seeded from ``current``."""
    spec = next(s for s in field_specs(type(current)) if s.name == name)
    key = keys.key(f"{part}.{name}", getattr(current, name))
    if spec.type is int:
        host.number_input(name, min_value=spec.min, max_value=spec.max, step=1, key=key, help=spec.help)
    else:
        host.number_input(name, min_value=float(spec.min), max_value=float(spec.max),
                          step=float(spec.max - spec.min) / 100, format="%g", key=key, help=spec.help)
    return st.session_state[key]


def build_params(cls: type, values: dict[str, Any], fallback: Any) -> Any:
    """``cls(**values)``, or ``fallback`` after saying why the values do not fit together."""
    try:
        return cls(**values)
    except (ParamError, TypeError) as e:
        messages.error(f"These settings do not fit together: {e}")
        return fallback
