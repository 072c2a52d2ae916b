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


def _label(name: str) -> str:
    return name  # captum's own names: the same words as in the URL and the papers


def _target_options(labels: Sequence[str]) -> list[int]:
    return [-1, *range(len(labels))]


def _draw(spec: Any, key: str, labels: Sequence[str], host: Any) -> None:
    """Draw the widget for one field under ``key`` (its value is read from session state)."""
    if spec.name == "target" and labels:
        host.selectbox(_label(spec.name), _target_options(labels), key=key, help=spec.help,
                       format_func=lambda i: "predicted class" if i < 0 else f"{i} ({labels[i]})")
    elif spec.type is bool:
        host.checkbox(_label(spec.name), key=key, help=spec.help)
    elif spec.choices:
        host.selectbox(_label(spec.name), [c for c in spec.choices if c not in HIDDEN_CHOICES], key=key,
                       help=spec.help)
    elif spec.type is int:
        host.number_input(_label(spec.name), min_value=spec.min, max_value=spec.max, step=1, key=key,
                          help=spec.help)
    elif spec.type is float:
        step = (spec.max - spec.min) / 100 if spec.min is not None and spec.max is not None else 0.01
        host.number_input(_label(spec.name), min_value=float(spec.min) if spec.min is not None else None,
                          max_value=float(spec.max) if spec.max is not None else None, step=float(step),
                          format="%g", key=key, help=spec.help)
    else:
        host.text_input(_label(spec.name), key=key, help=spec.help, max_chars=200)


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
        A validated instance of ``cls``; if the widgets' values do not fit together, an error
        is shown and ``current`` is returned.
    """
    specs = field_specs(cls)
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
        messages.error(f"These parameters do not fit together: {e}")
        return current


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
