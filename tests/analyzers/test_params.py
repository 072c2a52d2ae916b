"""Params: bounds, share-link parsing with people messages, canonical round trip, widget rows."""

from __future__ import annotations

import dataclasses
import math

import pytest

from analyzers import (
    ANALYZERS, GradientShapParams, IGParams, OcclusionParams, ParamError, RandomisationParams, SaliencyParams,
    SmoothGradParams, field_specs, params_from_mapping, params_to_mapping,
)
from analyzers.params import Params

PARAM_CLASSES = sorted({entry.params for entry in ANALYZERS.values()}, key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", PARAM_CLASSES, ids=lambda c: c.__name__)
def test_defaults_round_trip_and_every_field_is_described(cls):
    p = cls()
    assert dataclasses.is_dataclass(p) and isinstance(p, Params)
    mapping = params_to_mapping(p)
    assert all(isinstance(v, str) for v in mapping.values())
    assert params_from_mapping(cls, mapping) == p
    for row in field_specs(cls):
        assert row.help, f"{cls.__name__}.{row.name} has no help text"
        assert row.choices or row.type is bool or row.type is str or row.min is not None
        if row.choices:
            assert row.default in row.choices


@pytest.mark.parametrize("cls", PARAM_CLASSES, ids=lambda c: c.__name__)
def test_non_default_values_round_trip_exactly(cls):
    changes = {}
    for row in field_specs(cls):
        if row.choices:
            changes[row.name] = row.choices[-1]
        elif row.type is bool:
            changes[row.name] = not row.default
        elif row.type is float:
            changes[row.name] = row.min + (row.max - row.min) / 3  # a float with many digits
        elif row.type is int:
            changes[row.name] = row.max
    p = cls(**changes)
    assert params_from_mapping(cls, params_to_mapping(p)) == p
    assert params_to_mapping(params_from_mapping(cls, params_to_mapping(p))) == params_to_mapping(p)


@pytest.mark.parametrize("mapping, words", [
    ({"n_steps": "5.5"}, ["n_steps", "5.5", "integer from 2 to 1024"]),
    ({"n_steps": "-1"}, ["n_steps", "-1", "2 to 1024"]),
    ({"n_steps": "0"}, ["n_steps", "0"]),
    ({"n_steps": "1e9"}, ["n_steps", "1e9"]),
    ({"n_steps": "nan"}, ["n_steps", "nan"]),
    ({"blur_sigma": "inf"}, ["blur_sigma", "inf"]),
    ({"blur_sigma": float("nan")}, ["blur_sigma"]),
    ({"n_steps": "many"}, ["n_steps", "many"]),
    ({"method": "simpson"}, ["method", "simpson", "gausslegendre", "riemann_trapezoid"]),
    ({"baseline": "grey"}, ["baseline", "grey", "black"]),
    ({"n_steps": ["4", "8"]}, ["n_steps", "2 times"]),
    ({"nsteps": "4"}, ["nsteps", "n_steps"]),
    ({"internal_batch_size": "-1"}, ["internal_batch_size", "0 to 1024"]),
    ({"target": "-2"}, ["target"]),
])
def test_bad_values_are_refused_with_a_message_naming_field_value_and_range(mapping, words):
    with pytest.raises(ParamError) as e:
        params_from_mapping(IGParams, mapping)
    for w in words:
        assert w in str(e.value)


def test_parsing_accepts_numbers_and_strings_and_canonicalises():
    p = params_from_mapping(IGParams, {"n_steps": 128, "blur_sigma": "2", "target": "3.0"})
    assert (p.n_steps, p.blur_sigma, p.target) == (128, 2.0, 3)
    assert isinstance(p.blur_sigma, float)
    assert params_to_mapping(p)["blur_sigma"] == "2.0"
    assert params_to_mapping(IGParams(blur_sigma=1))["blur_sigma"] == "1.0"


def test_direct_construction_is_validated_too():
    with pytest.raises(ParamError, match="n_steps"):
        IGParams(n_steps=1)
    with pytest.raises(ParamError, match="method"):
        IGParams(method="trapezoid")
    with pytest.raises(ParamError, match="n_steps"):
        IGParams(n_steps=True)  # a bool is not an int here


def test_bool_fields_parse_words():
    from analyzers import SaliencyParams

    assert params_from_mapping(SaliencyParams, {"abs": "false"}).abs is False
    assert params_from_mapping(SaliencyParams, {"abs": "true"}).abs is True
    with pytest.raises(ParamError, match="abs"):
        params_from_mapping(SaliencyParams, {"abs": "maybe"})


def test_field_specs_give_widget_rows():
    rows = {r.name: r for r in field_specs(IGParams)}
    assert rows["n_steps"][1:5] == (int, 64, 2, 1024)
    assert rows["method"].choices[0] == "gausslegendre"
    assert rows["internal_batch_size"].default == 0  # automatic
    assert math.isclose(rows["blur_sigma"].default, 4.0)


@pytest.mark.parametrize("params, factors", [
    (IGParams(n_steps=1024), {"n_steps": 1024}),
    (IGParams(n_steps=32, baseline="uniform", baseline_draws=16), {"n_steps": 32, "baseline_draws": 16}),
    (IGParams(n_steps=32, baseline="blur", baseline_draws=16), {"n_steps": 32}),  # one baseline: draws unused
    (SmoothGradParams(nt_samples=8), {"nt_samples": 8}),  # over saliency: one gradient per copy
    (SmoothGradParams(base="integrated_gradients", nt_samples=8, n_steps=4), {"n_steps": 4, "nt_samples": 8}),
    (GradientShapParams(n_samples=50), {"n_samples": 50}),
    (RandomisationParams(n_steps=12), {"n_steps": 12}),
    (SaliencyParams(), {}),
    (OcclusionParams(), {}),
])
def test_params_say_what_one_example_costs(params, factors):
    """The cost of an analysis has one owner, its params; the server's budget multiplies these by the examples."""
    assert params.cost_factors() == factors
