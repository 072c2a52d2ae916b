"""Share-link state: one typed, frozen object per view, to and from the URL's query parameters.

Every value in a URL is validated against an allow-list (the zoo's models, the analyzers'
methods, the held-out set's size, the params dataclasses' bounds). Nothing here raises on a
bad link: :meth:`from_query` returns the closest usable view plus one message per problem,
for the page to show above a working page.

Binding a view to the page (see :func:`bind` and :func:`publish`)::

    bound = state.bind(AttributionView)      # the view to seed widgets from, and link problems
    ... draw widgets seeded from bound.view with session.WidgetKeys(PAGE, force=bound.opened) ...
    state.publish(new_view)                  # the URL now reproduces what is on screen
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import streamlit as st

from app import session

Query = Mapping[str, Sequence[str]]

MAX_SHOWN_VALUE = 40  # characters of a bad value quoted back in a message
HELDOUT_SIZE = 1000
DEFAULT_MODEL = "vit-dot"
DEFAULT_METHOD = "integrated_gradients"
DEFAULT_SAMPLE = 0


# URL keys of the views themselves; a params field with one of these names is written "param.<name>"
# in a URL (IG's quadrature ``method`` would otherwise clash with the attribution ``method``).
RESERVED_KEYS = frozenset({"id", "model", "method", "sample", "upload", "columns", "sample_b", "upload_b",
                           "text", "text_b"})


def param_key(field_name: str) -> str:
    """The URL key of a params field."""
    return f"param.{field_name}" if field_name in RESERVED_KEYS else field_name


def _quote(value: str) -> str:
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
            self.problems.append(f"Unknown {what} {_quote(value)}; showing {default}. "
                                 f"Choose one of: {', '.join(allowed)}.")
            return default
        return value

    def integer(self, key: str, low: int, high: int, default: int, what: str) -> int:
        """An integer in [low, high]; anything else is reported and replaced by ``default``."""
        value = self.raw(key)
        if value is None:
            return default
        text = value.strip()
        if not (text.isdigit() or (text.startswith("-") and text[1:].isdigit())) or len(text) > 12:
            self.problems.append(f"{what} must be a whole number from {low} to {high}, not {_quote(value)}; "
                                 f"showing {default}.")
            return default
        number = int(text)
        if not low <= number <= high:
            self.problems.append(f"{what} {number} is out of range: use {low} to {high}; showing {default}.")
            return default
        return number

    def link_id(self) -> str | None:
        """The ``id`` of a shared analysis, if it has the shape of one (checked before any lookup)."""
        from app.store import is_valid_link_id

        value = self.raw("id")
        if value is None:
            return None
        if not is_valid_link_id(value):
            self.problems.append(f"{_quote(value)} is not a zooscope link id (22 letters, digits, '-' or '_'). "
                                 "Check that the whole link was copied.")
            return None
        return value

    def params(self, cls: type, keys: Sequence[str] | None = None) -> tuple[tuple[str, str], ...]:
        """Canonical params of class ``cls`` from the URL keys that are its fields.

        Each bad value is reported and left at its default; the rest are kept.
        """
        from analyzers import ParamError, field_specs, params_from_mapping, params_to_mapping

        names = [s.name for s in field_specs(cls)] if keys is None else list(keys)
        good: dict[str, str] = {}
        for name in names:
            if param_key(name) not in self.query:
                continue
            value = self.raw(param_key(name))
            if value is None:
                continue
            try:
                params_from_mapping(cls, {name: value})
                good[name] = value
            except ParamError as e:
                self.problems.append(f"{e}. Using the default.")
        try:
            return tuple(params_to_mapping(params_from_mapping(cls, good)).items())
        except ParamError as e:  # values fine one by one but not together
            self.problems.append(f"{e}. Using the defaults.")
            return tuple(params_to_mapping(cls()).items())

    def finish(self) -> tuple[str, ...]:
        """All problems, including one for each key nothing asked for."""
        unknown = sorted(set(self.query) - self.used)
        if unknown:
            shown = ", ".join(_quote(k) for k in unknown[:8]) + (" …" if len(unknown) > 8 else "")
            self.problems.append(f"Ignored unknown link parameter{'s' if len(unknown) > 1 else ''}: {shown}.")
        return tuple(self.problems)


# --------------------------------------------------------------------------- allow-lists


def image_models(needs: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Zoo models that take digit images and have every capability in ``needs``."""
    from model_zoo import REGISTRY

    return tuple(n for n, s in REGISTRY.items() if s.input.modality == "image" and s.supports(needs))


def attribution_models() -> tuple[str, ...]:
    """Image models that at least one attribution method fits."""
    from analyzers import ATTRIBUTION_METHODS
    from model_zoo import REGISTRY

    return tuple(n for n in image_models() if any(m.fits(REGISTRY[n]) for m in ATTRIBUTION_METHODS.values()))


def attribution_methods(model: str) -> tuple[str, ...]:
    """Attribution methods that fit ``model`` on image input."""
    from analyzers import ATTRIBUTION_METHODS
    from model_zoo import get_spec

    spec = get_spec(model)
    return tuple(n for n, m in ATTRIBUTION_METHODS.items() if m.fits(spec) and spec.input.modality in m.modalities)


def target_labels(model: str) -> tuple[str, ...]:
    """What a model's attribution ``target`` can name: its classes, or its latent means for a VAE."""
    from model_zoo import get_spec

    spec = get_spec(model)
    if "latent" in spec.capabilities:
        return tuple(f"z{k}" for k in range(spec.config.latent_dim))
    return tuple(spec.input.labels)


def _checked_target(r: QueryReader, model: str, params: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """Params with a ``target`` beyond the model's outputs reported and reset to 'predicted' (-1)."""
    values = dict(params)
    labels = target_labels(model)
    if "target" not in values or not labels or -1 <= int(values["target"]) < len(labels):
        return params
    r.problems.append(f"target {values['target']} is out of range for {model}: it has {len(labels)} outputs "
                      f"(0 to {len(labels) - 1}); use -1 for the predicted one. Using the predicted one.")
    return tuple((k, "-1" if k == "target" else v) for k, v in params)


def params_class(method: str) -> type:
    """The params dataclass of an attribution method."""
    from analyzers import ATTRIBUTION_METHODS

    return ATTRIBUTION_METHODS[method].params


def default_params(method: str) -> tuple[tuple[str, str], ...]:
    """The canonical default params of a method."""
    from analyzers import params_to_mapping

    return tuple(params_to_mapping(params_class(method)()).items())


# --------------------------------------------------------------------------- views


class View(Protocol):
    PAGE: ClassVar[str]
    link: str | None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[Any, tuple[str, ...]]: ...

    def to_query(self) -> dict[str, str]: ...


V = TypeVar("V", bound=View)


def _without_link(view: Any) -> Any:
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


@dataclass(frozen=True)
class AttributionView:
    """The Attribution page: one model, one method with its params, one input.

    URL: ``?model=vit-dot&method=integrated_gradients&sample=17&n_steps=64`` (params that
    differ from the defaults), or ``?id=<link id>`` for a saved analysis.
    """

    PAGE: ClassVar[str] = "attribution"

    model: str = DEFAULT_MODEL
    method: str = DEFAULT_METHOD
    params: tuple[tuple[str, str], ...] = field(default_factory=lambda: default_params(DEFAULT_METHOD))
    input: InputRef = InputRef()
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[AttributionView, tuple[str, ...]]:
        r = QueryReader(query)
        link = r.link_id()
        if link is not None:
            r.used.update(r.query)  # a saved analysis is the whole view; its other keys are ignored
            return cls(link=link), r.finish()
        model = r.choice("model", attribution_models(), DEFAULT_MODEL, "model")
        methods = attribution_methods(model)
        method = r.choice("method", methods, DEFAULT_METHOD if DEFAULT_METHOD in methods else methods[0],
                          f"method for {model}")
        ref = InputRef.read(r, uploads)
        params = _checked_target(r, model, r.params(params_class(method)))
        return cls(model, method, params, ref), r.finish()

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        defaults = dict(default_params(self.method))
        changed = {param_key(k): v for k, v in self.params if defaults.get(k) != v}
        return {"model": self.model, "method": self.method, **self.input.to_query(), **changed}

    def params_object(self) -> Any:
        """The validated params dataclass of this view's method."""
        from analyzers import params_from_mapping

        return params_from_mapping(params_class(self.method), dict(self.params))


@dataclass(frozen=True)
class Column:
    """One column of the Compare page: a model and an attribution method (default params)."""

    model: str
    method: str

    def text(self) -> str:
        return f"{self.model}:{self.method}"


DEFAULT_COLUMNS = (Column("vit-dot", "integrated_gradients"), Column("vit-dot", "saliency"),
                   Column("vit-dot", "occlusion"))
MIN_COLUMNS, MAX_COLUMNS = 2, 4


@dataclass(frozen=True)
class CompareView:
    """The Compare page: one input, 2-4 columns of model:method, each with default params.

    URL: ``?sample=3&columns=vit-dot:integrated_gradients,capsnet:integrated_gradients``.
    """

    PAGE: ClassVar[str] = "compare"

    columns: tuple[Column, ...] = DEFAULT_COLUMNS
    input: InputRef = InputRef()
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[CompareView, tuple[str, ...]]:
        r = QueryReader(query)
        link = r.link_id()
        if link is not None:
            r.used.update(r.query)
            return cls(link=link), r.finish()
        ref = InputRef.read(r, uploads)
        columns = cls._read_columns(r)
        return cls(columns, ref), r.finish()

    @staticmethod
    def _read_columns(r: QueryReader) -> tuple[Column, ...]:
        raw = r.raw("columns")
        if raw is None:
            return DEFAULT_COLUMNS
        parts = [p for p in raw.split(",") if p.strip()]
        if not MIN_COLUMNS <= len(parts) <= MAX_COLUMNS:
            r.problems.append(f"Compare shows {MIN_COLUMNS} to {MAX_COLUMNS} columns; the link has {len(parts)}. "
                              "Showing the default columns.")
            return DEFAULT_COLUMNS
        columns = []
        for part in parts:
            model, _, method = part.strip().partition(":")
            if model not in attribution_models() or method not in attribution_methods(model):
                r.problems.append(f"Column {_quote(part)} is not model:method with a known pair, e.g. "
                                  "vit-dot:integrated_gradients. Showing the default columns.")
                return DEFAULT_COLUMNS
            columns.append(Column(model, method))
        return tuple(columns)

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        return {**self.input.to_query(), "columns": ",".join(c.text() for c in self.columns)}


Params = tuple[tuple[str, str], ...]
DEFAULT_TEXTS = ("A man is playing a guitar.", "Someone plays an instrument.")


@dataclass(frozen=True)
class AnalysisView:
    """A page that runs some analyzers on one model and one input (two for interpolation). Subclass per page.

    Class settings: ``PAGE``; ``ANALYZERS`` the page runs; ``MODELS`` it offers (None: every model
    that one of them fits); ``DEFAULT_MODEL``; ``TWO_INPUTS`` for a second digit.

    URL: ``?model=vae-2d&sample=3&sample_b=250&latent_traversal.steps=11`` for images,
    ``?model=minilm&text=...&text_b=...`` for text models; params that differ from their defaults
    are written ``<analyzer>.<field>``.
    """

    PAGE: ClassVar[str] = ""
    ANALYZERS: ClassVar[tuple[str, ...]] = ()
    MODELS: ClassVar[tuple[str, ...] | None] = None
    DEFAULT_MODEL: ClassVar[str] = DEFAULT_MODEL
    TWO_INPUTS: ClassVar[bool] = False
    MAX_TEXT_CHARS: ClassVar[int] = 500

    model: str = ""
    params: tuple[tuple[str, Params], ...] = ()  # analyzer -> canonical params; absent = defaults
    input: InputRef = InputRef()
    input_b: InputRef = InputRef(sample=500)
    text: str = DEFAULT_TEXTS[0]
    text_b: str = DEFAULT_TEXTS[1]
    link: str | None = None

    def __post_init__(self) -> None:
        if not self.model:
            object.__setattr__(self, "model", self.default_model())

    @classmethod
    def models(cls) -> tuple[str, ...]:
        """The models this page offers."""
        from analyzers import ANALYZERS
        from model_zoo import REGISTRY

        if cls.MODELS is not None:
            return tuple(m for m in cls.MODELS if m in REGISTRY)
        return tuple(n for n, s in REGISTRY.items() if any(ANALYZERS[a].fits(s) for a in cls.ANALYZERS))

    @classmethod
    def default_model(cls) -> str:
        models = cls.models()
        return cls.DEFAULT_MODEL if cls.DEFAULT_MODEL in models or not models else models[0]

    @classmethod
    def analyzers_for(cls, model: str) -> tuple[str, ...]:
        """The page's analyzers that fit ``model``."""
        from analyzers import ANALYZERS
        from model_zoo import get_spec

        spec = get_spec(model)
        return tuple(a for a in cls.ANALYZERS if ANALYZERS[a].fits(spec))

    @staticmethod
    def params_class_of(analyzer: str) -> type:
        from analyzers import ANALYZERS

        return ANALYZERS[analyzer].params

    def params_of(self, analyzer: str) -> Any:
        """The validated params of ``analyzer`` in this view (its defaults when not set)."""
        from analyzers import params_from_mapping

        return params_from_mapping(self.params_class_of(analyzer), dict(dict(self.params).get(analyzer, ())))

    def with_params(self, analyzer: str, params: Any) -> AnalysisView:
        """This view with ``analyzer``'s params replaced (canonical form)."""
        rest = tuple((a, p) for a, p in self.params if a != analyzer)
        given = canonical(params)
        if given != canonical(self.params_class_of(analyzer)()):
            rest = (*rest, (analyzer, given))
        return dataclasses.replace(self, params=tuple(sorted(rest)))

    def is_text(self) -> bool:
        from model_zoo import get_spec

        return get_spec(self.model).input.modality == "text"

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[AnalysisView, tuple[str, ...]]:
        from analyzers import params_from_mapping

        r = QueryReader(query)
        link = r.link_id()
        if link is not None:
            r.used.update(r.query)
            return cls(link=link), r.finish()
        model = r.choice("model", cls.models(), cls.default_model(), "model")
        view = cls(model=model, input=InputRef.read(r, uploads),
                   input_b=InputRef.read(r, uploads, "_b", 500) if cls.TWO_INPUTS else InputRef(sample=500),
                   text=cls._read_text(r, "text", DEFAULT_TEXTS[0]), text_b=cls._read_text(r, "text_b", DEFAULT_TEXTS[1]))
        # Canonical: a text model keeps the default digits, an image model the example sentences.
        unused = ("input", "input_b") if view.is_text() else ("text", "text_b")
        view = dataclasses.replace(view, **{name: getattr(cls(model=model), name) for name in unused})
        for analyzer in cls.ANALYZERS:
            names = [f.name for f in _fields(cls.params_class_of(analyzer))]
            given = {f"{analyzer}.{n}": n for n in names if f"{analyzer}.{n}" in r.query}
            if given:
                sub = QueryReader({n: r.query[k] for k, n in given.items()})
                params = sub.params(cls.params_class_of(analyzer))
                view = view.with_params(analyzer, params_from_mapping(cls.params_class_of(analyzer), dict(params)))
                r.used.update(given)
                r.problems.extend(f"{analyzer}: {p}" for p in sub.problems)
        return view, r.finish()

    @classmethod
    def _read_text(cls, r: QueryReader, key: str, default: str) -> str:
        from app.inputs import InputError, validate_text

        value = r.raw(key)
        if value is None:
            return default
        try:
            return validate_text(value, max_chars=cls.MAX_TEXT_CHARS)
        except InputError as e:
            r.problems.append(f"{key}: {e} Using the example sentence.")
            return default

    def to_query(self) -> dict[str, str]:
        if self.link:
            return {"id": self.link}
        query = {"model": self.model}
        if self.is_text():
            query |= {"text": self.text, "text_b": self.text_b}
        else:
            query |= self.input.to_query()
            if self.TWO_INPUTS:
                query |= self.input_b.to_query_as("_b")
        for analyzer, params in self.params:
            defaults = dict(canonical(self.params_class_of(analyzer)()))
            query |= {f"{analyzer}.{k}": v for k, v in params if defaults.get(k) != v}
        return query


def _fields(cls: type) -> tuple[Any, ...]:
    from analyzers import field_specs

    return field_specs(cls)


@dataclass(frozen=True)
class ModelsView:
    """The Models page: which model card is open. URL: ``?model=capsnet``."""

    PAGE: ClassVar[str] = "models"

    model: str = DEFAULT_MODEL
    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[ModelsView, tuple[str, ...]]:
        from model_zoo import REGISTRY

        r = QueryReader(query)
        model = r.choice("model", tuple(REGISTRY), DEFAULT_MODEL, "model")
        return cls(model), r.finish()

    def to_query(self) -> dict[str, str]:
        return {"model": self.model}


@dataclass(frozen=True)
class LinkView:
    """A page that only opens shared links (Home): ``?id=<link id>``."""

    PAGE: ClassVar[str] = "home"

    link: str | None = None

    @classmethod
    def from_query(cls, query: Query, uploads: Container[str] = ()) -> tuple[LinkView, tuple[str, ...]]:
        r = QueryReader(query)
        return cls(r.link_id()), r.finish()

    def to_query(self) -> dict[str, str]:
        return {"id": self.link} if self.link else {}


# --------------------------------------------------------------------------- binding to the page


@dataclass(frozen=True)
class Bound(Generic[V]):
    """What :func:`bind` found: the view to seed widgets from, whether a link was just opened,
    and the problems of that link (kept until the person changes the view)."""

    view: V
    opened: bool
    problems: tuple[str, ...]


def read_query() -> dict[str, list[str]]:
    """The current URL's query parameters, every value of every key."""
    return {k: st.query_params.get_all(k) for k in st.query_params.keys()}


def _signature(query: Mapping[str, Sequence[str] | str]) -> str:
    norm = {k: [v] if isinstance(v, str) else list(v) for k, v in query.items()}
    return json.dumps(norm, sort_keys=True)


def bind(view_cls: type[V]) -> Bound[V]:
    """The view this run starts from.

    A URL the person opened or edited (different from what this session last wrote for the
    page) is parsed and wins: ``opened`` is True and widgets are re-seeded. Otherwise the
    session's last view of the page is used (or the defaults), so leaving a page and coming
    back keeps it as it was.
    """
    data = session.current()
    page = view_cls.PAGE
    query = read_query()
    if query and _signature(query) != data.written_query.get(page):
        view, problems = view_cls.from_query(query, data.uploads)
        if view.link:
            view, problems = _open_saved(view_cls, view.link, problems)
        data.views[page] = view
        data.notices[page] = problems
        data.written_query[page] = _signature(query)
        if view.link:  # a share link opens as a report: its settings as text until the person asks to change them
            data.reading.add(page)
        else:
            data.reading.discard(page)
        return Bound(view, True, problems)
    view = data.views.get(page)
    if not isinstance(view, view_cls):
        view = view_cls()
    return Bound(view, False, data.notices.get(page, ()))


def _open_saved(view_cls: type[V], link: str, problems: tuple[str, ...]) -> tuple[V, tuple[str, ...]]:
    """The saved view behind ``link`` (switching to the page that shows it), or the defaults."""
    from app import navigation, share

    try:
        saved = share.open_link(link)
    except share.LinkProblem as e:
        return view_cls(), (*problems, str(e))
    if saved.page != view_cls.PAGE:
        target = navigation.page_file(saved.page)
        if target is None:
            return view_cls(), (*problems, f"This link was saved on the {saved.page!r} page, which this "
                                           "zooscope does not have.")
        st.switch_page(str(target), query_params={"id": link})
    share.restore_inputs(saved, session.current())
    view, more = view_cls.from_query(saved.view, session.current().uploads)
    return dataclasses.replace(view, link=link), (*problems, *more)


def settle(bound: Bound[V], view: V) -> V:
    """The view built from the widgets, keeping the bound view's link while nothing else changed."""
    if bound.view.link and _without_link(view) == _without_link(bound.view):
        return dataclasses.replace(view, link=bound.view.link)
    return view


def publish(view: View) -> None:
    """Make the URL reproduce ``view`` and remember it as this page's current view."""
    data = session.current()
    page = view.PAGE
    if data.views.get(page) != view:
        data.notices.pop(page, None)  # the person moved on from the link they opened
    data.views[page] = view
    query = view.to_query()
    if _signature(query) != _signature(read_query()):
        st.query_params.from_dict(query)
    data.written_query[page] = _signature(query)


def canonical(params: Any) -> tuple[tuple[str, str], ...]:
    """The canonical form of a params dataclass, as views hold it."""
    from analyzers import params_to_mapping

    return tuple(params_to_mapping(params).items())
