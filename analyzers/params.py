"""Analyzer parameters: frozen dataclasses with bounds, validated from share links and forms.

Every params class subclasses :class:`Params`; each field is declared with :func:`param`,
which records its bounds (``min``/``max``), its allowed ``choices`` and a ``help`` line in the
field's metadata. The UI builds widgets from :func:`field_specs`; a share link is turned back
into params by :func:`params_from_mapping`, which rejects anything out of bounds with a
:class:`ParamError` that names the field, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar, get_type_hints

P = TypeVar("P", bound="Params")

# A number as text (a link, a form, the command line), whitespace around it aside: a sign, the ASCII
# digits 0-9, a decimal point and an exponent ("64", "-1", "0.5", "1e-06", "3.0"). float() alone would
# also take other scripts' digits ("٣"), underscores ("1_000") and words ("nan", "infinity").
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

MAX_SHOWN_VALUE = 40  # characters of a bad value quoted back in a message


class ParamError(ValueError):
    """A parameter value a person gave is not allowed; the message says which and what is."""


class FieldSpec(NamedTuple):
    """One parameter as the UI needs it to draw a widget."""

    name: str
    type: type  # int, float, str or bool
    default: Any
    min: float | int | None
    max: float | int | None
    choices: tuple[str, ...] | None
    help: str


def param(default: Any, *, min: float | None = None, max: float | None = None,
          choices: tuple[str, ...] | None = None, help: str = "") -> Any:
    """A dataclass field carrying its bounds, choices and help text in its metadata."""
    meta = {"min": min, "max": max, "choices": tuple(choices) if choices else None, "help": help}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Params:
    """Base of every analyzer's params: values are checked against their bounds on creation."""

    def __post_init__(self) -> None:
        for spec in field_specs(type(self)):
            value = getattr(self, spec.name)
            _check(spec, value)
            if spec.type is float and isinstance(value, int):
                object.__setattr__(self, spec.name, float(value))  # canonical: 1 -> 1.0

    def replace(self: P, **changes: Any) -> P:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def cost_factors(self) -> dict[str, int]:
        """What one example of this analysis costs in model evaluations, as named factors.

        Their product, times the number of examples, is the cost the server's budget is
        checked against. Analyses of one forward pass (or a fixed few) name none; those with a
        path integral or samples name theirs (``n_steps``, ``nt_samples``, ...).
        """
        return {}


def field_specs(cls: type[Params]) -> tuple[FieldSpec, ...]:
    """Rows (name, type, default, min, max, choices, help) for every field of a params class."""
    rows = cls.__dict__.get("_field_specs")  # worked out once per class, kept on the class itself
    if rows is None:
        rows = _field_rows(cls)
        setattr(cls, "_field_specs", rows)
    return rows


def _field_rows(cls: type[Params]) -> tuple[FieldSpec, ...]:
    hints = get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        m = f.metadata
        rows.append(FieldSpec(f.name, _base_type(hints[f.name]), f.default, m.get("min"), m.get("max"),
                              m.get("choices"), m.get("help", "")))
    return tuple(rows)


def _base_type(hint: Any) -> type:
    for t in (bool, int, float, str):
        if hint is t:
            return t
    raise TypeError(f"params fields must be bool, int, float or str, not {hint!r}")


def _allowed(spec: FieldSpec) -> str:
    if spec.choices:
        return "one of " + ", ".join(spec.choices)
    if spec.type is bool:
        return "true or false"
    kind = "an integer" if spec.type is int else "a number"
    if spec.min is not None and spec.max is not None:
        return f"{kind} from {spec.min} to {spec.max}"
    if spec.min is not None:
        return f"{kind} of at least {spec.min}"
    return kind


def _shown(value: Any) -> str:
    """A bad value as a message quotes it: its repr, cut to a readable length."""
    if isinstance(value, str) and len(value) > MAX_SHOWN_VALUE:
        value = value[: MAX_SHOWN_VALUE - 1] + "…"
    return repr(value)


def _fail(spec: FieldSpec, value: Any, hint: str = "") -> ParamError:
    return ParamError(f"{spec.name}={_shown(value)} is not allowed: {spec.name} must be {_allowed(spec)}{hint}")


def _check(spec: FieldSpec, value: Any) -> None:
    """Raise ParamError unless value has the field's type and lies within its bounds."""
    if spec.type is bool:
        if not isinstance(value, bool):
            raise _fail(spec, value)
        return
    if spec.type is str:
        if not isinstance(value, str) or (spec.choices and value not in spec.choices):
            raise _fail(spec, value)
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(spec, value)
    if spec.type is int and not isinstance(value, int):
        raise _fail(spec, value)
    if not math.isfinite(value):
        raise _fail(spec, value)
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        raise _fail(spec, value)


def _parse(spec: FieldSpec, raw: Any) -> Any:
    """Turn a mapping value (usually a string from a URL) into the field's type, or refuse it."""
    if isinstance(raw, (list, tuple)):
        raise ParamError(f"{spec.name} was given {len(raw)} times; give it once ({_allowed(spec)})")
    if spec.type is str:
        return raw if isinstance(raw, str) else str(raw)
    if spec.type is bool:
        text = str(raw).strip().lower() if not isinstance(raw, bool) else str(raw).lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise _fail(spec, raw)
    return _parse_number(spec, raw)


def _parse_number(spec: FieldSpec, raw: Any) -> int | float:
    if isinstance(raw, bool):
        raise _fail(spec, raw)
    if isinstance(raw, str) and not NUMBER.fullmatch(raw.strip()):
        raise _fail(spec, raw, " written with the digits 0-9")
    try:
        value = float(raw) if not isinstance(raw, (int, float)) else raw
    except (TypeError, ValueError):
        raise _fail(spec, raw) from None
    if not math.isfinite(value):
        raise _fail(spec, raw)
    if spec.type is int:
        if isinstance(value, float) and not value.is_integer():
            raise _fail(spec, raw)
        return int(value)
    return float(value)


def params_from_mapping(cls: type[P], mapping: Mapping[str, Any]) -> P:
    """Build and validate params from a mapping of names to strings or numbers (a share link, a form).

    Unknown keys, repeated keys (given as lists), NaN or infinite numbers, fractional values
    for integer fields, values out of bounds and unknown choices each raise ParamError. Keys
    that are absent take their defaults.
    """
    specs = {s.name: s for s in field_specs(cls)}
    unknown = sorted(set(mapping) - set(specs))
    if unknown:
        raise ParamError(f"unknown parameter {', '.join(map(repr, unknown))} for {cls.__name__}; "
                         f"known: {', '.join(specs)}")
    values = {}
    for name, raw in mapping.items():
        values[name] = _parse(specs[name], raw)
        try:
            _check(specs[name], values[name])
        except ParamError:
            raise _fail(specs[name], raw) from None
    return cls(**values)


def params_to_mapping(p: Params) -> dict[str, str]:
    """The canonical string form of params (every field, in declaration order); round-trips exactly."""
    return {s.name: _format(getattr(p, s.name)) for s in field_specs(type(p))}


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest string that parses back to the same float
    return str(value)


# ---------------------------------------------------------------------------------------------
# Shared choices and field helpers for the analyzers' params classes.

BASELINES = ("black", "white", "blur", "uniform", "heldout_mean", "custom")
IG_METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")
TARGET_HELP = ("What to explain: a class index for classifiers, a latent dimension for VAEs; "
               "-1 = the predicted class (VAEs: the dimension with the largest |mu|)")


def target_param() -> Any:
    """The shared ``target`` field: a class or latent index, -1 for the predicted one."""
    return param(-1, min=-1, max=1023, help=TARGET_HELP)


def baseline_param(default: str = "black") -> Any:
    """The shared ``baseline`` field: the reference input attributions are measured against."""
    return param(default, choices=BASELINES, help=(
        "Reference input: black (zeros), white (ones), blur (Gaussian-blurred input), uniform "
        "(noise, averaged over baseline_draws draws), heldout_mean (mean held-out image)"))
