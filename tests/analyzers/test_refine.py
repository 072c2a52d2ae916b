"""Progressive attributions (analyzers.refine): nested grids, the stopping rule, one-shot equality, stopping early."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from torch import nn

from analyzers import GradientShapParams, IGParams, SmoothGradParams, integrated_gradients, smoothgrad
from analyzers.refine import (
    CAPTUM_METHOD, DEFAULT_CAP, RULES, _alphas, _new_points, path_integral, refine, refine_to_end, schedule,
)
from analyzers.run import hook_count


@pytest.fixture(scope="module")
def vit():
    import model_zoo

    return model_zoo.get_spec("vit-dot"), model_zoo.load("vit-dot")


@pytest.fixture(scope="module")
def digits():
    import model_zoo

    return torch.from_numpy(model_zoo.load_split().x_heldout[:6].astype(np.float32) / 255.0).unsqueeze(1)


@pytest.mark.parametrize("rule, start, expected", [
    ("trapezoid", 2, [2, 3, 5, 9, 17, 33, 65, 129, 257]),
    ("midpoint", 2, [2, 6, 18, 54, 162]),
    ("gausslegendre", 2, [2, 4, 8, 16, 32, 64, 128, 256]),
])
def test_levels_stay_under_the_cap(rule, start, expected):
    assert schedule(rule, start, DEFAULT_CAP) == expected


@pytest.mark.parametrize("rule", ["trapezoid", "midpoint"])
def test_nested_rules_reuse_every_earlier_point(rule):
    levels = schedule(rule, 2, 257)
    for before, after in zip(levels, levels[1:]):
        old, new = set(np.round(_alphas(rule, before), 12)), np.round(_new_points(rule, after, before), 12)
        assert old.isdisjoint(new) and old | set(new) == set(np.round(_alphas(rule, after), 12))
        assert len(new) == after - before  # each level costs only its new points


def test_a_linear_model_is_exact_at_the_first_level():
    w = torch.randn(1, 10, generator=torch.Generator().manual_seed(0))
    f = lambda x: x @ w.T  # noqa: E731
    x = torch.rand(3, 10)
    levels = list(path_integral(f, x, torch.zeros_like(x), torch.zeros(3, dtype=torch.long)))
    assert len(levels) == 1 and levels[0]["final"] and not levels[0]["capped"] and levels[0]["steps"] == 2
    torch.testing.assert_close(levels[0]["attr"], x * w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("baseline", ["black", "uniform"])
def test_the_final_attribution_equals_a_one_shot_run_with_the_same_steps(vit, digits, rule, baseline):
    spec, model = vit
    x = digits[:2]
    params = IGParams(baseline=baseline, baseline_draws=2)
    last = refine_to_end(model, spec, x, "integrated_gradients", params, rule=rule)
    assert last.final and last.params.n_steps == last.steps and last.params.method == CAPTUM_METHOD[rule]
    one = integrated_gradients(model, spec, x, last.params)
    scale = np.abs(one.attributions).max()
    np.testing.assert_allclose(last.result.attributions, one.attributions, atol=2e-5 * scale, rtol=0)
    np.testing.assert_allclose(last.result.rel_error, one.rel_error, atol=1e-4)
    assert last.result.info.params["n_steps"] == str(last.steps)  # exports say how many steps were used


def test_refinement_never_ends_above_the_threshold_unless_the_cap_stopped_it_and_then_it_says_so(vit, digits):
    spec, model = vit
    ended = []
    for cap in (2, 5, DEFAULT_CAP):
        for rule in RULES:
            steps = list(refine(model, spec, digits, "integrated_gradients", IGParams(), rule=rule, cap=cap))
            assert [s.final for s in steps] == [False] * (len(steps) - 1) + [True]
            assert all(b.evaluations > a.evaluations for a, b in zip(steps, steps[1:]))
            last = steps[-1]
            assert last.passed or last.capped, (rule, cap, last.status())
            assert float(last.result.rel_error.max()) == pytest.approx(last.error)
            if last.capped:
                assert not last.passed and "cap" in last.status() and bool(last.result.flagged.any())
            ended.append(last.capped)
    assert any(ended) and not all(ended)  # both endings happened


def test_nested_grids_pay_only_for_new_points(vit, digits):
    spec, model = vit
    steps = list(refine(model, spec, digits[:1], "integrated_gradients", IGParams(), rule="trapezoid", cap=17))
    assert [s.evaluations for s in steps] == [s.steps for s in steps]
    gl = list(refine(model, spec, digits[:1], "integrated_gradients", IGParams(), rule="gausslegendre", cap=16))
    assert [s.evaluations for s in gl] == list(np.cumsum([s.steps for s in gl]))  # GL pays every level again


def test_smoothgrad_sharpens_by_samples_and_ends_equal_to_a_one_shot_run(vit, digits):
    spec, model = vit
    steps = list(refine(model, spec, digits[:2], "smoothgrad", SmoothGradParams(), cap=16))
    assert [s.steps for s in steps] == [4, 8, 16] and steps[-1].readout == "spread"
    assert steps[-1].error < steps[0].error and steps[-1].capped == (steps[-1].error > steps[-1].threshold)
    one = smoothgrad(model, spec, digits[:2], steps[-1].params)
    np.testing.assert_allclose(steps[-1].result.attributions, one.attributions, rtol=1e-4,
                               atol=1e-5 * np.abs(one.attributions).max())


def test_gradient_shap_sharpens_by_samples_reproducibly(vit, digits):
    spec, model = vit
    a = list(refine(model, spec, digits[:1], "gradient_shap", GradientShapParams(), cap=32))
    b = refine_to_end(model, spec, digits[:1], "gradient_shap", GradientShapParams(), cap=32)
    assert [s.steps for s in a][:3] == [4, 8, 16] and a[-1].params.n_samples == a[-1].steps
    np.testing.assert_array_equal(a[-1].result.attributions, b.result.attributions)
    assert np.isfinite(a[-1].result.rel_error).all() and a[-1].error < a[0].error


def test_stopping_early_keeps_the_current_level_leaves_the_model_as_found_and_no_thread(vit, digits):
    spec, model = vit
    before = set(threading.enumerate())
    hooks, training = hook_count(model), model.training
    calls = []
    steps = list(refine(model, spec, digits[:1], "integrated_gradients", IGParams(), cap=257, tol=0.0,
                        should_stop=lambda: calls.append(1) or len(calls) >= 2))
    assert len(steps) == 2 and steps[-1].final and not steps[-1].capped
    gen = refine(model, spec, digits[:1], "integrated_gradients", IGParams(), tol=0.0)
    first = next(gen)
    assert not first.final and not model.training or training  # in the analysis frame while it runs
    gen.close()  # the caller moved on
    assert hook_count(model) == hooks and model.training == training
    assert set(threading.enumerate()) == before


def test_unknown_methods_and_rules_are_refused_with_a_message(vit, digits):
    from analyzers import ParamError

    spec, model = vit
    with pytest.raises(ParamError, match="not refined progressively"):
        next(refine(model, spec, digits[:1], "occlusion"))
    with pytest.raises(ParamError, match="unknown refinement rule"):
        next(refine(model, spec, digits[:1], rule="simpson"))


def test_refine_does_not_import_streamlit():
    code = "import sys, analyzers.refine; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
