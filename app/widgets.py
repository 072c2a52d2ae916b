"""Widgets drawn from the ``field_specs`` of an analyzer's params dataclass.

One widget per field: a checkbox for bool, a select box for choices, a number input within the
field's bounds for int and float, a text input otherwise. The shared ``target`` field becomes a
choice of "predicted" or one of the model's labels. Widgets are seeded from the current params
through :class:`app.session.WidgetKeys`, so share links and the URL restore them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from app import messages
from app.session import WidgetKeys

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
    from analyzers import ParamError, field_specs

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


class SettingsSummary:
    """Stands in for ``st`` in a page's settings code while the page shows a share link as opened.

    The settings code runs unchanged, but no widget is drawn: each widget call returns the value
    its key holds (``WidgetKeys`` seeded it from the link) and notes the label and the value as
    the widget would show it. The page then shows the notes as text (see ``views.settings``): a
    shared analysis opens as a report of every setting it was made with, those in collapsed
    sections included, and draws the controls only when the person asks to change something.
    Only the calls settings code makes are here; anything else is an AttributeError, not a
    silently missing widget.
    """

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.images: list[tuple[tuple[Any, ...], dict[str, Any]]] = []  # st.image calls, to make after the text

    def note(self, label: str, shown: Any) -> None:
        """Add a line "label: shown" (no label: the text alone)."""
        self.lines.append((str(label), " ".join(str(shown).split())))

    def _choice(self, label: str, key: str | None, format_func: Any, default: Any) -> Any:
        value = st.session_state[key] if key is not None and key in st.session_state else default
        self.note(label, format_func(value))
        return value

    def selectbox(self, label: str, options: Sequence[Any], index: int = 0, format_func: Any = str, *,
                  key: str | None = None, **_: Any) -> Any:
        return self._choice(label, key, format_func, list(options)[index] if len(options) else None)

    radio = selectbox  # same arguments, same reading

    def select_slider(self, label: str, options: Sequence[Any] = (), value: Any = None, format_func: Any = str, *,
                      key: str | None = None, **_: Any) -> Any:
        return self._choice(label, key, format_func, value if value is not None else list(options)[0])

    def number_input(self, label: str, min_value: Any = None, max_value: Any = None, value: Any = None, *,
                     format: str | None = None, key: str | None = None, **_: Any) -> Any:
        shown = (lambda v: format % v) if format else str
        return self._choice(label, key, shown, value if value is not None else min_value)

    def checkbox(self, label: str, value: bool = False, *, key: str | None = None, **_: Any) -> bool:
        return bool(self._choice(label, key, lambda v: "yes" if v else "no", value))

    def text_input(self, label: str, value: str = "", *, key: str | None = None, **_: Any) -> str:
        return self._choice(label, key, str, value)

    text_area = text_input

    def file_uploader(self, *_: Any, **__: Any) -> None:
        return None  # nothing new is uploaded while reading; the link's own upload is restored

    def expander(self, *_: Any, **__: Any) -> SettingsSummary:
        return self  # a collapsed section's settings are listed with the rest

    def columns(self, spec: int | Sequence[float], **_: Any) -> list[SettingsSummary]:
        return [self] * (spec if isinstance(spec, int) else len(spec))

    def text(self, body: Any, **_: Any) -> None:
        self.note("", body)

    def image(self, *args: Any, **kwargs: Any) -> None:
        self.images.append((args, kwargs))  # the input, drawn under the settings

    def caption(self, *_: Any, **__: Any) -> None:
        return None  # notes about the controls ("Nothing uploaded yet"), not settings

    def __enter__(self) -> SettingsSummary:
        return self

    def __exit__(self, *_: Any) -> None:
        return None

    def markdown(self) -> str:
        """The notes as Markdown lines, every label and value shown literally."""
        return "  \n".join(f"**{messages.escape(label)}** {messages.escape(shown)}" if label
                            else messages.escape(shown) for label, shown in self.lines)
