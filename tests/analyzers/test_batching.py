"""Internal batches chosen from the device's memory.

This machine has no GPU, so the CUDA path runs against a simulated allocator: torch.cuda's
memory functions replaced by one whose peak is a fixed part plus a cost per row of the
largest forward pass since the last reset. The analyzers really run (on the CPU); what is
simulated is only how much memory their passes would take.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import GradientShap, IntegratedGradients

from analyzers import (
    GradientShapParams,
    IGParams,
    OcclusionParams,
    ParamError,
    SmoothGradParams,
    attribute,
    batching,
    params_from_mapping,
)
from analyzers.attribution import (
    _gradient_shap,
    _ig_core as _ig,  # the computation itself: the completeness advice (which reruns IG) is tested apart
    _occlusion,
    _shap_samples,
    _smoothgrad,
)
from analyzers.attribution_params import IG_CPU_BATCH, OCCLUSION_CPU_BATCH, TEXT_IG_CPU_BATCH
from analyzers.baselines import make_baselines
from analyzers.batching import AUTO, BUDGET_ENV, MAX_BATCH, MEMORY_SHARE, Batching, MemoryBudgetError, fit
from model_zoo import get_spec

from .conftest import minilm, trained_or_skip, untrained

CUDA = torch.device("cuda")
CPU = torch.device("cpu")
KEY = ("vit-dot", (1, 28, 28))
PROBES = [1, batching.PROBE_SIZE, 2 * batching.PROBE_SIZE]  # inputs in the passes that measure a cost
MB = 2**20
SHARE = batching.CPU_TENSOR_SHARE  # of the budget the tensors of a CPU pass may fill


class SimulatedCuda:
    """torch.cuda's memory functions for a device with ``free`` bytes free, whose allocations peak at
    ``fixed + per_row * rows`` for the largest pass of ``rows`` inputs since the last reset."""

    def __init__(self, monkeypatch, free: int, fixed: int, per_row: int):
        self.free, self.fixed, self.per_row = free, fixed, per_row
        self.rows = 0  # largest pass since the last reset
        self.passes: list[int] = []  # rows of every pass, probes included
        self.resets = 0
        for name, fn in [("mem_get_info", lambda device=None: (self.free, 4 * self.free)),
                         ("memory_reserved", lambda device=None: 0), ("memory_allocated", lambda device=None: 0),
                         ("reset_peak_memory_stats", self._reset), ("max_memory_allocated", self._peak),
                         ("synchronize", lambda device=None: None)]:
            monkeypatch.setattr(torch.cuda, name, fn)

    def _reset(self, device=None) -> None:
        self.resets += 1
        self.rows = 0

    def _peak(self, device=None) -> int:
        return self.fixed + self.per_row * self.rows if self.rows else 0

    def watch(self, f):
        """``f`` with every pass's rows recorded."""
        def watched(x):
            self.rows = max(self.rows, x.shape[0])
            self.passes.append(x.shape[0])
            return f(x)
        return watched

    def budget_for(self, batch: int, per_input: int) -> None:
        """Set the free memory so that the automatic batch comes out at ``batch``."""
        self.free = int((self.fixed + per_input * batch + per_input // 2) / MEMORY_SHARE)


@pytest.fixture(autouse=True)
def fresh_costs():
    batching.forget_costs()
    yield
    batching.forget_costs()


def _on_simulated_gpu(monkeypatch, model, x, *, free=0, fixed=50_000, per_row=1_000):
    """The simulated device, the model's score function watched by it, and the predicted targets of x."""
    cuda = SimulatedCuda(monkeypatch, free=free, fixed=fixed, per_row=per_row)
    with torch.no_grad():
        t = model.scores(x).argmax(1)
    return cuda, cuda.watch(model.scores), t


# --- the arithmetic --------------------------------------------------------------------------

@pytest.mark.parametrize("budget, per_input, items, batch", [
    (1000, 10, 500, 100),  # what fits
    (1000, 10, 64, 64),  # never more than there is to do
    (5, 10, 64, 1),  # at least one, even when nothing fits (out of memory then halves nothing: it says so)
    (-50, 10, 64, 1),  # the fixed part alone is over the budget
    (10**15, 1, 10**9, MAX_BATCH),  # a ceiling whatever the memory
])
def test_fit_is_what_the_budget_holds_between_one_and_the_items(budget, per_input, items, batch):
    assert fit(budget, per_input, items) == batch


def test_without_a_budget_a_set_batch_is_used_as_it_is_and_the_cpu_gets_its_measured_default(monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "0")
    never = lambda n: pytest.fail("no probe without a budget, off CUDA or for a set batch")  # noqa: E731
    assert Batching(CUDA, KEY).size(24, 512, never, kind="ig", cpu=64) == 24
    assert Batching(torch.device("cpu"), KEY).size(24, 512, never, kind="ig", cpu=64) == 24
    assert Batching(torch.device("cpu"), KEY).size(AUTO, 512, never, kind="ig", cpu=64) == 64
    assert Batching(torch.device("cpu"), KEY).size(AUTO, 10, never, kind="ig", cpu=64) == 10


def test_the_cost_is_measured_once_per_model_shape_and_kind_and_free_memory_is_read_every_time(monkeypatch):
    cuda = SimulatedCuda(monkeypatch, free=0, fixed=3_000, per_row=200)
    calls = []

    def probe(n):
        calls.append(n)
        cuda.rows = n  # a pass over n inputs

    cuda.budget_for(40, per_input=200)
    assert Batching(CUDA, KEY).size(AUTO, 1000, probe, kind="ig", cpu=64) == 40
    assert calls == PROBES and Batching(CUDA, KEY).cost(probe, "ig") == (3_000, 200)
    cuda.budget_for(90, per_input=200)  # another session freed memory
    assert Batching(CUDA, KEY).size(AUTO, 1000, probe, kind="ig", cpu=64) == 90
    assert calls == PROBES  # not measured again
    Batching(CUDA, ("vit-dot", (1, 14, 14))).size(AUTO, 1000, probe, kind="ig", cpu=64)
    Batching(CUDA, KEY).size(AUTO, 1000, probe, kind="occlusion", cpu=16)
    assert len(calls) == 3 * 3  # another shape, another kind: measured


def test_a_batch_param_of_zero_means_automatic_and_a_negative_one_says_the_range():
    assert IGParams().internal_batch_size == AUTO and OcclusionParams().perturbations_per_eval == AUTO
    assert SmoothGradParams().internal_batch_size == AUTO
    with pytest.raises(ParamError, match="internal_batch_size must be an integer from 0 to 1024"):
        params_from_mapping(IGParams, {"internal_batch_size": "-1"})


# --- the analyzers on a simulated GPU --------------------------------------------------------

def test_integrated_gradients_on_a_gpu_passes_as_many_path_points_as_fit_and_draws_the_same_map(
        monkeypatch, digits):
    model, x = trained_or_skip("vit-dot"), digits[:1]
    cuda, f, t = _on_simulated_gpu(monkeypatch, model, x)
    cuda.budget_for(24, per_input=1_000)
    out = _ig(f, x, t, IGParams(n_steps=64), None, Batching(CUDA, KEY))
    probes, work = cuda.passes[:3], cuda.passes[3:]
    assert probes == PROBES
    assert work == [24, 24, 16, 1]  # 64 path points 24 at a time, then F(baseline)
    on_cpu = _ig(model.scores, x, t, IGParams(n_steps=64, internal_batch_size=64), None,
                 Batching(torch.device("cpu"), KEY))
    np.testing.assert_allclose(out.attributions.numpy(), on_cpu.attributions.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out.f_baseline.numpy(), on_cpu.f_baseline.numpy(), rtol=1e-5)


def test_integrated_gradients_with_room_for_everything_takes_one_pass_and_a_set_batch_wins(monkeypatch, digits):
    model, x = untrained("vit-dot"), digits[:2]
    cuda, f, t = _on_simulated_gpu(monkeypatch, model, x, free=10**12)
    _ig(f, x, t, IGParams(n_steps=32, baseline="uniform", baseline_draws=3), None, Batching(CUDA, KEY))
    assert max(cuda.passes[2:]) == 32 * 2 * 3  # every path point of every draw of both images at once
    cuda.passes.clear()
    _ig(f, x, t, IGParams(n_steps=32, internal_batch_size=8), None, Batching(CUDA, KEY))
    assert max(cuda.passes) == 8


def test_integrated_gradients_on_the_cpu_uses_the_cpu_batch(digits):
    model = untrained("vit-dot")
    seen = []

    def f(x):
        seen.append(x.shape[0])
        return model.scores(x)

    x = digits[:1]
    with torch.no_grad():
        t = model.scores(x).argmax(1)
    _ig(f, x, t, IGParams(n_steps=IG_CPU_BATCH * 2), None, Batching(torch.device("cpu"), KEY))
    assert max(seen) == IG_CPU_BATCH


def test_occlusion_on_a_gpu_occludes_as_many_copies_per_pass_as_fit_and_draws_the_same_map(monkeypatch, digits):
    model, x = untrained("capsnet"), digits[:2]
    cuda, f, t = _on_simulated_gpu(monkeypatch, model, x, fixed=20_000, per_row=500)
    cuda.budget_for(20, per_input=500)  # 20 occluded images: 10 copies of each of the two
    params = OcclusionParams(window=7, stride=7)
    out = _occlusion(f, x, t, params, None, Batching(CUDA, ("capsnet", (1, 28, 28))))
    assert cuda.passes[:3] == PROBES  # the cost of one occluded image
    assert max(cuda.passes[3:]) == 10 * 2
    cuda.passes.clear()
    _occlusion(f, x[:1], t[:1], params.replace(window=4, stride=4), None, Batching(CUDA, ("capsnet", (1, 28, 28))))
    assert cuda.passes == [1, 20, 20, 9]  # one image: 20 of its 49 copies per pass; the cost not measured again
    on_cpu = _occlusion(model.scores, x, t, params.replace(perturbations_per_eval=OCCLUSION_CPU_BATCH), None,
                        Batching(torch.device("cpu"), KEY))
    np.testing.assert_allclose(out.attributions.numpy(), on_cpu.attributions.numpy(), rtol=1e-4, atol=1e-6)


def test_smoothgrad_over_ig_on_a_gpu_fits_its_internal_batch(monkeypatch, digits):
    model, x = untrained("vit-dot"), digits[:1]
    cuda, f, t = _on_simulated_gpu(monkeypatch, model, x)
    cuda.budget_for(12, per_input=1_000)
    params = SmoothGradParams(base="integrated_gradients", nt_samples=4, n_steps=16)
    out = _smoothgrad(f, x, t, params, None, Batching(CUDA, KEY))
    assert cuda.passes[:3] == PROBES and max(cuda.passes[3:]) == 12
    on_cpu = _smoothgrad(model.scores, x, t, params.replace(internal_batch_size=64), None,
                         Batching(torch.device("cpu"), KEY))
    np.testing.assert_allclose(out.attributions.numpy(), on_cpu.attributions.numpy(), rtol=1e-4, atol=1e-6)


def test_text_integrated_gradients_asks_for_its_own_smaller_cpu_batch(monkeypatch):
    """MiniLM's path points cost far more memory than a digit's: off CUDA they go 64 per pass, not 128."""
    from analyzers import integrated_gradients
    from model_zoo import get_spec

    asked = []
    real = Batching.size
    monkeypatch.setattr(Batching, "size", lambda self, *a, **k: asked.append((a, k)) or real(self, *a, **k))
    result = integrated_gradients(minilm(), get_spec("minilm"), [("A cat sleeps.", "A dog barks.")], IGParams(n_steps=4))
    assert np.isfinite(result.attributions).all()
    (requested, items, _probe), kwargs = asked[0]
    assert (requested, items, kwargs["cpu"]) == (AUTO, 4, TEXT_IG_CPU_BATCH) and TEXT_IG_CPU_BATCH < IG_CPU_BATCH


# --- the memory budget on the CPU ------------------------------------------------------------

def allocating(per_input: int, fixed: int = 0, single: int = 0):
    """A probe whose pass over n inputs holds ``fixed + per_input * n`` bytes of tensors at its peak
    (``single`` more for one input alone, as kernels made for a single input can take)."""
    def probe(n: int):
        held = torch.empty(fixed + (single if n == 1 else 0), dtype=torch.uint8)
        rows = torch.empty(per_input * n, dtype=torch.uint8)
        return held.numel() + rows.numel()
    return probe


@pytest.mark.parametrize("raw, mb", [(None, batching.DEFAULT_BUDGET_MB), ("256", 256), ("0.5", 0.5),
                                     ("0", float("inf")), ("lots", batching.DEFAULT_BUDGET_MB),
                                     ("-3", batching.DEFAULT_BUDGET_MB)])
def test_the_budget_is_read_from_the_environment_in_megabytes(monkeypatch, raw, mb):
    if raw is None:
        monkeypatch.delenv(BUDGET_ENV, raising=False)
    else:
        monkeypatch.setenv(BUDGET_ENV, raw)
    assert batching.budget_bytes() == mb * MB


def test_the_cpu_peak_is_what_torch_allocates_at_once_not_in_all():
    def work():
        for _ in range(3):
            a = torch.empty(10 * MB, dtype=torch.uint8)
            b = torch.empty(5 * MB, dtype=torch.uint8)
            del a, b
    peak = batching.cpu_peak_bytes(work)
    assert 15 * MB <= peak < 16 * MB


def test_on_the_cpu_a_pass_holds_what_the_budget_holds_up_to_the_cpu_default(monkeypatch):
    probe = allocating(per_input=MB, fixed=2 * MB)
    monkeypatch.setenv(BUDGET_ENV, str(12 / SHARE))  # 12 MB for tensors
    assert Batching(CPU, KEY).size(AUTO, 1000, probe, kind="ig", cpu=64) == 10  # (12 - 2) MB / 1 MB
    fixed, per_input = Batching(CPU, KEY).cost(probe, "ig")
    assert fixed == pytest.approx(2 * MB, rel=0.01) and per_input == pytest.approx(MB, rel=0.01)
    assert Batching(CPU, KEY).size(24, 1000, probe, kind="ig", cpu=64) == 10  # a set batch the budget cannot hold
    assert Batching(CPU, KEY).size(4, 1000, probe, kind="ig", cpu=64) == 4  # one it can
    monkeypatch.setenv(BUDGET_ENV, "1024")
    assert Batching(CPU, KEY).size(AUTO, 1000, probe, kind="ig", cpu=64) == 64  # larger is not faster on a CPU
    assert Batching(CPU, KEY).size(AUTO, 7, probe, kind="ig", cpu=64) == 7


def test_a_single_input_costing_more_than_its_share_is_kept_in_the_fixed_part(monkeypatch):
    probe = allocating(per_input=MB, single=3 * MB)  # like capsnet: 1 input 3.0 MB, 2 to 256 inputs 1.65 MB each
    monkeypatch.setenv(BUDGET_ENV, str(4.5 / SHARE))
    assert Batching(CPU, KEY).size(AUTO, 1000, probe, kind="ig", cpu=64) == 1  # the single input's 4 MB fit
    fixed, per_input = Batching(CPU, KEY).cost(probe, "ig")
    assert per_input == pytest.approx(MB, rel=0.01) and fixed == pytest.approx(3 * MB, rel=0.01)
    monkeypatch.setenv(BUDGET_ENV, str(3.5 / SHARE))
    with pytest.raises(MemoryBudgetError, match=f"about {4 / SHARE:.2g} MB for a single input"):
        Batching(CPU, KEY).size(AUTO, 1000, probe, kind="ig", cpu=64)


def test_when_not_even_one_input_fits_the_analysis_is_refused_with_what_to_do(monkeypatch):
    monkeypatch.setenv(BUDGET_ENV, "2.5")
    with pytest.raises(MemoryBudgetError) as info:
        Batching(CPU, KEY).size(AUTO, 1000, allocating(per_input=MB, fixed=2 * MB), kind="integrated_gradients",
                                cpu=64)
    message = str(info.value)
    assert isinstance(info.value, ParamError)  # shown to people like any other refused setting
    assert f"Integrated gradients on vit-dot needs about {3 / SHARE:.2g} MB for a single input" in message
    assert "the 2.5 MB one analysis may use" in message and BUDGET_ENV in message


def test_the_budget_also_holds_a_gpu_pass_below_half_the_free_memory(monkeypatch):
    cuda = SimulatedCuda(monkeypatch, free=10**12, fixed=MB, per_row=MB)

    def probe(n):
        cuda.rows = n

    monkeypatch.setenv(BUDGET_ENV, "33")
    assert Batching(CUDA, KEY).size(AUTO, 1000, probe, kind="ig", cpu=64) == 32
    monkeypatch.setenv(BUDGET_ENV, "0.5")
    with pytest.raises(MemoryBudgetError):
        Batching(CUDA, KEY).size(AUTO, 1000, probe, kind="ig", cpu=64)


def _watched(model):
    passes = []

    def f(x):
        passes.append(x.shape[0])
        return model.scores(x)
    return f, passes


def _budget_for(monkeypatch, batch: int, kind: str, probe) -> None:
    """Set the budget so that a pass of ``probe``'s work holds ``batch`` inputs."""
    monkeypatch.setenv(BUDGET_ENV, "0")
    fixed, per_input = Batching(CPU, KEY).cost(probe, kind)
    monkeypatch.setenv(BUDGET_ENV, str((fixed + per_input * (batch + 0.5)) / SHARE / MB))


def test_gradient_shap_under_a_small_budget_runs_in_chunks_and_gives_captums_one_pass_answer(monkeypatch, digits):
    model, x = untrained("vit-dot"), digits[:2]
    with torch.no_grad():
        t = model.scores(x).argmax(1)
    params = GradientShapParams(n_samples=40, baseline_draws=6, seed=3)
    f, passes = _watched(model)
    dist = make_baselines(x[:1], params.baseline, draws=params.baseline_draws, sigma=params.blur_sigma,
                          seed=params.seed)[:, 0]

    def probe(n):
        return _shap_samples(model.scores, x[:1], dist, int(t[0]), params.replace(n_samples=n), n)

    monkeypatch.setenv(BUDGET_ENV, "0")
    whole = _gradient_shap(f, x, t, params, None, Batching(CPU, KEY))
    assert max(passes) == params.n_samples  # no budget: every point in one pass, as before
    batching.forget_costs()
    _budget_for(monkeypatch, 6, "gradient_shap", probe)
    passes.clear()
    chunked = _gradient_shap(f, x, t, params, None, Batching(CPU, KEY))
    assert max(passes) == 6 and passes.count(6) >= 2 * 3 * (params.n_samples // 6)  # gradients, then two deltas
    np.testing.assert_allclose(chunked.attributions.numpy(), whole.attributions.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(chunked.delta.numpy(), whole.delta.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(chunked.f_baseline.numpy(), whole.f_baseline.numpy(), rtol=1e-6)
    np.random.seed(params.seed)
    torch.manual_seed(params.seed)
    captum, _ = GradientShap(model.scores).attribute(x[:1], baselines=dist, n_samples=params.n_samples,
                                                     stdevs=params.stdevs, target=int(t[0]),
                                                     return_convergence_delta=True)
    np.testing.assert_allclose(chunked.attributions[:1].numpy(), captum.numpy(), rtol=1e-5, atol=1e-7)


def test_integrated_gradients_under_a_small_budget_runs_in_chunks_with_the_same_map(monkeypatch, digits):
    model, x = untrained("capsnet"), digits[:1]
    with torch.no_grad():
        t = model.scores(x).argmax(1)
    params = IGParams(n_steps=32)
    f, passes = _watched(model)
    monkeypatch.setenv(BUDGET_ENV, "0")
    whole = _ig(f, x, t, params, None, Batching(CPU, KEY))
    ig = IntegratedGradients(model.scores)
    _budget_for(monkeypatch, 5, "integrated_gradients", lambda n: ig.attribute(
        x, torch.zeros_like(x), target=t, n_steps=n, method="gausslegendre", internal_batch_size=n))
    passes.clear()
    chunked = _ig(f, x, t, params, None, Batching(CPU, KEY))
    assert max(passes) == 5
    np.testing.assert_allclose(chunked.attributions.numpy(), whole.attributions.numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method, params", [("integrated_gradients", IGParams(n_steps=8)),
                                            ("gradient_shap", GradientShapParams(n_samples=8)),
                                            ("occlusion", OcclusionParams(window=7, stride=7))])
def test_a_budget_too_small_for_one_input_refuses_the_analysis(monkeypatch, digits, method, params):
    monkeypatch.setenv(BUDGET_ENV, "0.01")  # 10 KB
    refusal = f"more than the 0.01 MB one analysis may use on this server \\({BUDGET_ENV}\\)"
    with pytest.raises(MemoryBudgetError, match=refusal):
        attribute(untrained("vit-dot"), get_spec("vit-dot"), digits[:1], method, params)
