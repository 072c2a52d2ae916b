"""Every URL key of every page, fuzzed: any value gives the page or a message, never an exception.

Numbers in links are written with the ASCII digits 0-9 only. ``str.isdigit()`` accepts '²' and
'⑦', which ``int()`` then refuses (issue 22: six pages showed Streamlit's exception page), and
``int()``/``float()`` read '٣' as 3; both kinds are now refused with a message. The property
tests draw values from every Unicode digit category, signs, exponents, whitespace, huge, empty
and non-finite values, and repeated keys, for every key each view reads.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzers import AttentionParams, HeadStatsParams, PoseParams, field_specs
from app.features.attention import DEFAULT_TEXTS, AttentionView
from app.features.attribution import AttributionView
from app.features.capsules import POSE_FIELDS, CapsuleView
from app.features.compare import Column, CompareView
from app.features.home import LinkView
from app.features.latent import LATENT_PARTS, LatentView, latent_params_class
from app.features.models import ModelsView
from app.features.synthesizers import SynthesizerView
from app.links.catalogue import attribution_methods, default_params, is_text_model, params_class
from app.links.codec import InputRef, param_key
from tests.app.apptest import errors, open_page

UPLOAD = "ab" * 32  # an upload this session has (sha256)
LINK = "A" * 22  # a well-formed saved-analysis id

# --------------------------------------------------------------------------- the views and their keys

METHODS = attribution_methods("vit-dot")

# A default and some non-default views of each page; their to_query() keys are the keys to fuzz.
EXAMPLES = {
    AttributionView: [AttributionView(), AttributionView(input=InputRef(7, UPLOAD)), AttributionView(link=LINK),
                      *(AttributionView("vit-dot", m, default_params(m), InputRef(999)) for m in METHODS)],
    CompareView: [CompareView(), CompareView((Column("vit-dot", "occlusion"), Column("capsnet", "saliency")),
                                             InputRef(42, UPLOAD))],
    AttentionView: [AttentionView(), AttentionView("minilm", texts=("Hi there", "مرحبا 👋"), layer=5, head=11),
                    AttentionView("vit-dot", InputRef(42), layer=3, head=2,
                                  params=(("head_fusion", "max"), ("gradient_rollout", "false"), ("target", "7")))],
    SynthesizerView: [SynthesizerView(), SynthesizerView(InputRef(300), 3, 1, (("dependence", "js"),))],
    LatentView: [LatentView(), LatentView("vae-16d", InputRef(5), 900)],
    CapsuleView: [CapsuleView(), CapsuleView("capsnet", InputRef(500), 3, 5, (("steps", "7"), ("span", "0.3")))],
    ModelsView: [ModelsView(), ModelsView("capsnet")],
    LinkView: [LinkView(), LinkView(LINK)],
}


def _param_keys(cls: type, prefix: str = "", fields: Sequence[str] | None = None, numeric: bool = False) -> set[str]:
    """The URL keys of a params class's fields (only its int and float ones when ``numeric``)."""
    names = [s.name for s in field_specs(cls) if (fields is None or s.name in fields)
             and (not numeric or s.type in (int, float))]
    return {f"{prefix}.{n}" if prefix else param_key(n) for n in names}


def _all_param_keys(numeric: bool = False) -> dict[type, set[str]]:
    return {
        AttributionView: set().union(*(_param_keys(params_class(m), numeric=numeric) for m in METHODS)),
        AttentionView: _param_keys(AttentionParams, numeric=numeric),
        SynthesizerView: _param_keys(HeadStatsParams, numeric=numeric),
        LatentView: set().union(*(_param_keys(latent_params_class(p), p, numeric=numeric) for p in LATENT_PARTS)),
        CapsuleView: _param_keys(PoseParams, "pose", POSE_FIELDS, numeric=numeric),
    }


PARAM_KEYS = _all_param_keys()
NUMERIC_PARAM_KEYS = {cls: keys for cls, keys in _all_param_keys(numeric=True).items() if keys}

KEYS = {cls: sorted({"id", *(k for v in views for k in v.to_query()), *PARAM_KEYS.get(cls, ())})
        for cls, views in EXAMPLES.items()}

# Keys read as whole numbers by the codec (QueryReader.integer), per view.
WHOLE_NUMBER_KEYS = {
    AttributionView: {"sample"}, CompareView: {"sample"}, AttentionView: {"sample", "layer", "head"},
    SynthesizerView: {"sample", "layer", "head"}, LatentView: {"sample", "to"},
    CapsuleView: {"sample", "target", "routing_class"},
}
TEXT_KEYS = {"a", "b"}  # sentences: any script is welcome there

# --------------------------------------------------------------------------- values

SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹₀₁₂₃₄₅₆₇₈₉"
CIRCLED = "⓪①②③④⑤⑥⑦⑧⑨⑩⑳❶➀➊"
WHITESPACE = ["", " ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2009", "\u200b", "\x0b"]
SIGNS = ["", "-", "+", "−", "－", "﹣", "--", "+-", "-+"]
NON_FINITE = ["nan", "NaN", "-nan", "inf", "-inf", "+inf", "Infinity", "-Infinity", "INF", "nAn"]
SPECIAL = ["", " ", "²", "-²", "⑦", "¹", "٣", "١٢", "१", "１２", "𝟙", "๓", "½", "Ⅻ",
           "1_000", "0x10", "0b1", "0o7",
           "1.", ".5", "5.5", "3.0", "1e3", "1E-3", "2e+2", "1e400", "-0", "+5", "00017", "9" * 13, "9" * 5000,
           "1" * 4301, "x" * 10_000, "\x00", "%32", "true", "false", "None", "[1]", "1,2", "1 2", "1\n2"]

ascii_numbers = st.one_of(
    st.integers(-(10**15), 10**15).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.tuples(st.integers(-99, 5000), st.sampled_from("eE"), st.sampled_from(["", "+", "-"]),
              st.integers(0, 400)).map(lambda t: f"{t[0]}{t[1]}{t[2]}{t[3]}"),
)
unicode_digits = st.text(st.characters(categories=("Nd", "No", "Nl")), min_size=1, max_size=4)
odd_digits = st.text(st.sampled_from(SUPERSCRIPTS + CIRCLED), min_size=1, max_size=3)
numbers = st.one_of(ascii_numbers, unicode_digits, odd_digits,
                    st.tuples(st.sampled_from(SIGNS), st.one_of(ascii_numbers, unicode_digits, odd_digits))
                    .map("".join))
padded = st.tuples(st.sampled_from(WHITESPACE), numbers, st.sampled_from(WHITESPACE)).map("".join)
long_values = st.tuples(st.sampled_from("19x²٣ "), st.integers(13, 20_000)).map(lambda t: t[0] * t[1])


def values_for(good: Sequence[str]) -> st.SearchStrategy[str]:
    """One URL value: hostile ones of every kind, and the good values the examples write."""
    return st.one_of(numbers, padded, long_values, st.sampled_from(SPECIAL + NON_FINITE), st.text(max_size=30),
                     st.sampled_from(list(good) or [""]))


def good_values(cls: type) -> list[str]:
    return sorted({v for view in EXAMPLES[cls] for v in view.to_query().values()})


@st.composite
def queries(draw: st.DrawFn, cls: type) -> tuple[dict[str, list[str]], list[str]]:
    """A query as Streamlit gives it: an example view's URL with 1-3 keys fuzzed (some repeated)."""
    base = draw(st.sampled_from(EXAMPLES[cls])).to_query()
    query = {k: [v] for k, v in base.items()}
    keys = draw(st.lists(st.sampled_from(KEYS[cls]), min_size=1, max_size=3, unique=True))
    value = values_for(good_values(cls))
    for key in keys:
        query[key] = draw(st.one_of(st.lists(value, min_size=1, max_size=1), st.lists(value, min_size=2, max_size=3)))
    return query, keys


def must_be_refused(cls: type, key: str, values: list[str]) -> str | None:
    """Why a link value may not be taken silently (None when it may be): the links' contract."""
    if len(values) > 1:
        return "repeated"
    value = values[0]
    if not value.strip():
        return "empty"
    if len(value) > 1000:
        return "too long"
    if key in TEXT_KEYS:
        return None
    if any(ord(c) > 127 and not c.isspace() for c in value):
        return "not written with ASCII characters"
    if value.strip() in NON_FINITE:
        return "not a finite number"
    if key in WHOLE_NUMBER_KEYS.get(cls, ()) and not re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        return "not a whole number"
    return None


def as_query(query: dict[str, str]) -> dict[str, list[str]]:
    return {k: [v] for k, v in query.items()}


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FOCUSED = settings(FUZZ, max_examples=100)  # one key, one kind of value


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda c: c.PAGE)
@FUZZ
@given(data=st.data())
def test_every_value_of_every_key_gives_a_view_or_a_message(cls, data):
    query, keys = data.draw(queries(cls))
    view, problems = cls.from_query(query, {UPLOAD})  # never raises

    assert isinstance(view, cls)
    assert all(isinstance(p, str) and p for p in problems)
    assert all(len(p) < 1000 for p in problems), "bad values are cut short in messages"
    for key in keys:
        if view.link is not None and key != "id":
            continue  # a saved analysis is the whole view: its other keys are ignored on purpose
        reason = must_be_refused(cls, key, query[key])
        assert reason is None or problems, f"{key}={query[key]!r} is {reason}, yet the link gave no message"


@pytest.mark.parametrize("cls", list(EXAMPLES), ids=lambda c: c.PAGE)
@FUZZ
@given(data=st.data())
def test_whatever_a_link_held_the_view_it_gives_round_trips(cls, data):
    query, _ = data.draw(queries(cls))
    view, _ = cls.from_query(query, {UPLOAD})
    written = view.to_query()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in written.items())

    back, problems = cls.from_query(as_query(written), {UPLOAD})
    assert problems == ()
    assert carried(back) == carried(view)
    assert back.to_query() == written
    again, problems = cls.from_query(as_query(back.to_query()), {UPLOAD})
    assert problems == () and again == back


def carried(view: object) -> object:
    """The view as far as its URL carries it.

    Views hold two things their links leave out on purpose: the held-out ``sample`` behind an
    upload (the digit picker's position), and on the Attention page the sentences of an image
    model or the digit of a text model (to_query writes only the input the model reads).
    """
    ref = getattr(view, "input", None)
    if isinstance(ref, InputRef) and ref.upload:
        view = dataclasses.replace(view, input=InputRef(upload=ref.upload))
    if isinstance(view, AttentionView):
        text = is_text_model(view.model)
        view = dataclasses.replace(view, input=InputRef() if text else view.input,
                                   texts=view.texts if text else DEFAULT_TEXTS)
    return view


@pytest.mark.parametrize("cls", [c for c in EXAMPLES if c in WHOLE_NUMBER_KEYS], ids=lambda c: c.PAGE)
@FOCUSED
@given(data=st.data())
def test_numbers_in_links_are_written_with_the_digits_0_to_9(cls, data):
    key = data.draw(st.sampled_from(sorted(WHOLE_NUMBER_KEYS[cls])))
    value = data.draw(st.one_of(unicode_digits, odd_digits, padded).filter(
        lambda v: not re.fullmatch(r"[+-]?[0-9]+", v.strip())))
    view, problems = cls.from_query({key: [value]})
    default, _ = cls.from_query({})
    assert view == default, f"{key}={value!r} was not replaced by the default"
    assert len(problems) == 1 and "digits 0-9" in problems[0] and key in problems[0], problems


@pytest.mark.parametrize("cls", list(NUMERIC_PARAM_KEYS), ids=lambda c: c.PAGE)
@FOCUSED
@given(data=st.data())
def test_params_in_links_are_written_with_the_digits_0_to_9(cls, data):
    key = data.draw(st.sampled_from(sorted(NUMERIC_PARAM_KEYS[cls])))
    value = data.draw(st.one_of(unicode_digits, odd_digits).filter(lambda v: not v.isascii()))
    base = EXAMPLES[cls][0].to_query() if cls is not AttributionView else _attribution_base_for(key)
    view, problems = cls.from_query({**as_query(base), key: [value]})
    assert view == cls.from_query(as_query(base))[0], f"{key}={value!r} was not replaced by the default"
    assert len(problems) == 1 and "digits 0-9" in problems[0], problems


def _attribution_base_for(key: str) -> dict[str, str]:
    """An Attribution URL whose method has the params field ``key``."""
    method = next(m for m in METHODS if key in _param_keys(params_class(m)))
    return AttributionView("vit-dot", method, default_params(method)).to_query()


# --------------------------------------------------------------------------- the pages (issue 22)

ISSUE_URLS = [
    ("attribution", {"sample": "²", "n_steps": "8"}),
    ("compare", {"sample": "⑦", "columns": "vit-dot:saliency,vit-dot:input_x_gradient"}),
    ("attribution", {"sample": "-²", "n_steps": "8"}),
    ("synthesizers", {"head": "¹"}),
    ("attention", {"layer": "²"}),
    ("latent", {"to": "²"}),
    ("capsules", {"routing_class": "²"}),
]


@pytest.mark.parametrize("page, query", ISSUE_URLS, ids=["attribution-superscript", "compare-circled",
                                                         "attribution-negative", "synthesizers-head",
                                                         "attention-layer", "latent-to", "capsules-routing_class"])
def test_unicode_digits_in_a_link_give_the_page_with_a_message(page, query):
    at = open_page(page, query)
    assert not at.exception, [e.value for e in at.exception]
    key, value = next((k, v) for k, v in query.items() if not v.isascii())
    assert any(key in e and repr(value) in e and "digits 0-9" in e for e in errors(at)), errors(at)
