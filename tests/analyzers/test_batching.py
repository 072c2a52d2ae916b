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

from analyzers import IGParams, OcclusionParams, ParamError, SmoothGradParams, params_from_mapping
from analyzers import batching
from analyzers.attribution import IG_CPU_BATCH, OCCLUSION_CPU_BATCH, TEXT_IG_CPU_BATCH, _ig, _occlusion, _smoothgrad
from analyzers.batching import AUTO, MAX_BATCH, MEMORY_SHARE, Batching, fit

from .conftest import minilm, trained_or_skip, untrained

CUDA = torch.device("cuda")
KEY = ("vit-dot", (1, 28, 28))


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


def test_a_set_batch_is_used_as_it_is_and_the_cpu_gets_its_measured_default():
    never = lambda n: pytest.fail("no probe off CUDA or for a set batch")  # noqa: E731
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
    assert calls == [1, batching.PROBE_SIZE] and Batching(CUDA, KEY).cost(probe, "ig") == (3_000, 200)
    cuda.budget_for(90, per_input=200)  # another session freed memory
    assert Batching(CUDA, KEY).size(AUTO, 1000, probe, kind="ig", cpu=64) == 90
    assert calls == [1, batching.PROBE_SIZE]  # not measured again
    Batching(CUDA, ("vit-dot", (1, 14, 14))).size(AUTO, 1000, probe, kind="ig", cpu=64)
    Batching(CUDA, KEY).size(AUTO, 1000, probe, kind="occlusion", cpu=16)
    assert len(calls) == 3 * 2  # another shape, another kind: measured


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
    probes, work = cuda.passes[:2], cuda.passes[2:]
    assert probes == [1, batching.PROBE_SIZE]
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
    assert cuda.passes[:2] == [1, batching.PROBE_SIZE]  # the cost of one occluded image
    assert max(cuda.passes[2:]) == 10 * 2
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
    assert cuda.passes[:2] == [1, batching.PROBE_SIZE] and max(cuda.passes[2:]) == 12
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
