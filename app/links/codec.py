"""The URL codec: every page's link state to and from the query parameters, validated, with no streamlit.

Every value in a URL is checked against an allow-list (:mod:`app.links.catalogue`: the models
that fit a page, the methods that fit a model, the held-out set's size, the params dataclasses'
bounds, the text validator). Nothing here raises on a bad link: a view's ``from_query`` returns
the closest usable view plus one message per problem, for the page to show above a working page.

A page's view is a frozen dataclass with ``PAGE``, ``link``, ``from_query`` and ``to_query``
(see :class:`View`); the views live with their pages in ``app.features``. A params field is
written under its own name (``n_steps=64``), under ``param.<name>`` when that name is a
view's own key, or under ``<prefix>.<name>`` when a page holds several params (``proj.method``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

from analyzers import ParamError, field_specs, params_from_mapping, params_to_mapping
from app.runtime.inputs import InputError, validate_text
from app.runtime.store import is_valid_link_id

Query = Mapping[str, Sequence[str]]
Params = tuple[tuple[str, str], ...]  # canonical params, as views hold them

MAX_INDEX = 63  # layer / head / iteration bound in a link; the page checks the model's own sizes
MAX_TEXT_CHARS = 300  # per sentence; MiniLM reads at most 128 tokens anyway

MAX_SHOWN_VALUE = 40  # characters of a bad value quoted back in a message

HELDOUT_SIZE = 1000

# A whole number in a link, whitespace around it aside: an optional sign and 1-12 of the ASCII digits
# 0-9. str.isdigit() would let through superscripts ('²', which int() then refuses) and int() other
# scripts' digits ('٣', read as 3); a link has one spelling of a number, the one it is written in.
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]{1,12}")

DEFAULT_SAMPLE = 0

# URL keys of the views themselves; a params field with one of these names is written "param.<name>"
# in a URL (IG's quadrature ``method`` would otherwise clash with the attribution ``method``).
RESERVED_KEYS = frozenset({"id", "model", "method", "sample", "upload", "columns", "sample_b", "upload_b",
                           "text", "text_b"})


def param_key(field_name: str) -> str:
    """The URL key of a params field."""
    return f"param.{field_name}" if field_name in RESERVED_KEYS else field_name


def quote(value: str) -> str:
    """A value from a link as a message quotes it: in quotes, cut to a readable length."""
    text = value if len(value) <= MAX_SHOWN_VALUE else value[: MAX_SHOWN_VALUE - 1] + "…"
    return repr(text)


class QueryReader:
    """Reads query parameters one key at a time, collecting one message per problem.

    Each reader method marks its key as used and returns a valid value: the one in the URL
    when it is allowed, the default otherwise. :meth:`finish` adds a message for every key
    that no method asked for.
    """

    def __init__(self, query: Query):
        self.query = {str(k): [str(v) for v in (vs if isinstance(vs, (list, tuple)) else [vs])]
                      for k, vs in query.items()}
        self.used: set[str] = set()
        self.problems: list[str] = []

    def raw(self, key: str) -> str | None:
        """The single value of ``key``, or None when absent or repeated (repeats are reported)."""
        self.used.add(key)
        values = self.query.get(key)
        if not values:
            return None
        if len(values) > 1:
            self.problems.append(f"'{key}' appears {len(values)} times in the link; give it once.")
            return None
        return values[0]

    def has(self, key: str) -> bool:
        return key in self.query

    def choice(self, key: str, allowed: Sequence[str], default: str, what: str) -> str:
        """A value from ``allowed``; anything else is reported and replaced by ``default``."""
        value = self.raw(key)
        if value is None:
            return default
        if value not in allowed:
            self.problems.append(f"Unknown {what} {quote(value)}; showing {default}. "
                                 f"Choose one of: {', '.join(allowed)}.")
            return default
        return value

    def integer(self, key: str, low: int, high: int, default: int, what: str) -> int:
        """An integer in [low, high]; anything else is reported and replaced by ``default``."""
        value = self.raw(key)
        if value is None:
            return default
        text = value.strip()
        if not WHOLE_NUMBER.fullmatch(text):
            self.problems.append(f"{what} must be a whole number from {low} to {high} written with the digits 0-9, "
                                 f"not {quote(value)}; showing {default}.")
            return default
        number = int(text)
        if not low <= number <= high:
            self.problems.append(f"{what} {number} is out of range: use {low} to {high}; showing {default}.")
            return default
        return number

    def link_id(self) -> str | None:
        """The ``id`` of a shared analysis, if it has the shape of one (checked before any lookup)."""
        value = self.raw("id")
        if value is None:
            return None
        if not is_valid_link_id(value):
            self.problems.append(f"{quote(value)} is not a zooscope link id (22 letters, digits, '-' or '_'). "
                                 "Check that the whole link was copied.")
            return None
        return value

    def finish(self) -> tuple[str, ...]:
        """All problems, including one for each key nothing asked for."""
        unknown = sorted(set(self.query) - self.used)
        if unknown:
            shown = ", ".join(quote(k) for k in unknown[:8]) + (" …" if len(unknown) > 8 else "")
            self.problems.append(f"Ignored unknown link parameter{'s' if len(unknown) > 1 else ''}: {shown}.")
        return tuple(self.problems)


# --------------------------------------------------------------------------- views


class View(Protocol):
    """What every page's link state is: a page name, a saved-analysis link, and the URL both ways."""

    PAGE: ClassVar[str]
    link: str | None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[Any, tuple[str, ...]]: ...

    def to_query(self) -> dict[str, str]: ...


V = TypeVar("V", bound=View)


def without_link(view: Any) -> Any:
    """The view without its saved-analysis link: what the widgets describe."""
    return dataclasses.replace(view, link=None)


@dataclass(frozen=True)
class InputRef:
    """Which digit a view looks at: held-out image ``sample``, or this session's upload ``upload``."""

    sample: int = DEFAULT_SAMPLE
    upload: str | None = None  # sha256 of an uploaded file (kept in the session or in a saved analysis)

    def to_query(self) -> dict[str, str]:
        return {"upload": self.upload} if self.upload else {"sample": str(self.sample)}

    def to_query_as(self, suffix: str) -> dict[str, str]:
        """The URL keys with a suffix, for a second input (``sample_b``, ``upload_b``)."""
        return {f"{k}{suffix}": v for k, v in self.to_query().items()}

    @classmethod
    def read(cls, reader: QueryReader, uploads: Container[str] = (), suffix: str = "",
             default: int = DEFAULT_SAMPLE) -> InputRef:
        """``sample=N`` (a held-out index) or ``upload=<sha256>`` of an upload this session has."""
        sample = reader.integer(f"sample{suffix}", 0, HELDOUT_SIZE - 1, default, f"sample{suffix}")
        upload = reader.raw(f"upload{suffix}")
        if upload is None:
            return cls(sample=sample)
        if upload in uploads:
            return cls(sample=sample, upload=upload)
        reader.problems.append("This link points to an uploaded image that this browser session does not have "
                               "(uploads live only in the session, or in a shared link). Upload it again, or use "
                               "Share to make a link that keeps it. Showing a held-out digit instead.")
        return cls(sample=sample)


def canonical(params: Any) -> Params:
    """The canonical form of a params dataclass, as views hold it."""
    return tuple(params_to_mapping(params).items())


def signature(query: Mapping[str, Sequence[str] | str]) -> str:
    """A query's canonical text, to tell whether two queries are the same."""
    norm = {k: [v] if isinstance(v, str) else list(v) for k, v in query.items()}
    return json.dumps(norm, sort_keys=True)


# --------------------------------------------------------------------------- params


def defaults(cls: type, **changes: Any) -> Params:
    """The canonical params of ``cls`` at its defaults (with ``changes``)."""
    return canonical(cls(**changes))


def read_params(r: QueryReader, cls: type, prefix: str = "", base: Params | None = None,
                fields: Container[str] | None = None) -> Params:
    """Canonical params of ``cls`` from URL keys ``<prefix>.<field>`` (or the plain field names).

    Only ``fields`` are read from the URL when given. Each bad value is reported and left at
    its value in ``base`` (the class defaults when None).
    """
    start = dict(base) if base is not None else dict(canonical(cls()))
    good: dict[str, str] = {}
    for spec in field_specs(cls):
        if fields is not None and spec.name not in fields:
            continue
        key = f"{prefix}.{spec.name}" if prefix else param_key(spec.name)
        value = r.raw(key) if r.has(key) else None
        if value is None:
            continue
        try:
            params_from_mapping(cls, {spec.name: value})
            good[spec.name] = value
        except ParamError as e:
            r.problems.append(f"{e}. Using {start[spec.name]}.")
    try:
        return canonical(params_from_mapping(cls, {**start, **good}))
    except ParamError as e:  # fine one by one, not together
        r.problems.append(f"{e}. Using the defaults.")
        return canonical(params_from_mapping(cls, start))


def write_params(params: Params, defaults: Params,
                 prefix: str = "") -> dict[str, str]:
    """URL keys for the params that differ from ``defaults``."""
    base = dict(defaults)
    return {(f"{prefix}.{k}" if prefix else param_key(k)): v for k, v in params if base.get(k) != v}


def params_object(cls: type, params: Params) -> Any:
    """The validated params dataclass behind a view's canonical params."""
    return params_from_mapping(cls, dict(params))


def read_text(r: QueryReader, key: str, default: str, what: str) -> str:
    """A sentence from the URL, validated like typed text; a bad one is reported and replaced."""
    value = r.raw(key)
    if value is None:
        return default
    try:
        return validate_text(value, max_chars=MAX_TEXT_CHARS)
    except InputError as e:
        r.problems.append(f"{what}: {e} Showing the example sentence instead.")
        return default


def saved_link(cls: type, r: QueryReader) -> tuple[Any, tuple[str, ...]] | None:
    """A view that only names a saved analysis (``?id=``), or None when the URL has no id."""
    link = r.link_id()
    if link is None:
        return None
    r.used.update(r.query)  # a saved analysis is the whole view; its other keys are ignored
    return cls(link=link), r.finish()
