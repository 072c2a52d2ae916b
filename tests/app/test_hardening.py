"""Hardening (issue 5): out of memory, cost and time limits, shared models under load, a store that
cannot save, tampered links, Pillow's limits and no user text rendered as HTML.

Faults are injected (an analyzer that raises out of memory, a tiny time limit, a read-only store),
so every case runs in a second or two on a CPU.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

import analyzers
from analyzers import IGParams, SaliencyParams
from analyzers.run import hook_count
from app import cache, compute, inputs
from app.session import WidgetKeys
from app.store import Store
from tests.app.apptest import errors, numbers, open_page
from tests.app.test_store import unprivileged  # root ignores permissions: the block runs as nobody

ROOT = Path(__file__).resolve().parents[2]
FAST_IG = {"model": "vit-dot", "method": "integrated_gradients", "sample": "17", "n_steps": "16"}
PIXELS = np.zeros((28, 28), dtype=np.float32)
PIXELS[6:22, 12:16] = 1.0  # a rough "1"
OOM = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total capacity)"



@pytest.fixture(autouse=True)
def default_limits(monkeypatch):
    """Every test runs with the default time and cost limits."""
    monkeypatch.delenv(compute.TIMEOUT_ENV, raising=False)
    monkeypatch.delenv(compute.BUDGET_ENV, raising=False)


def lock_is_free(name: str) -> bool:
    """Whether another thread can take the model's lock right now."""
    lock = cache.loaded_model(name).lock
    got: list[bool] = []

    def probe():
        ok = lock.acquire(blocking=False)
        got.append(ok)
        if ok:
            lock.release()

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return got == [True]


class FailingAnalyzer:
    """Stands in for ``analyzers.run_analyzer``: raises ``error`` for the first ``k`` calls, then runs."""

    def __init__(self, k: int, error: BaseException | None = None, only_on=None):
        self.k, self.error, self.only_on = k, error or torch.cuda.OutOfMemoryError(OOM), only_on
        self.real = analyzers.run_analyzer
        self.calls: list[tuple[object, object]] = []  # (model, params) of every call

    def __call__(self, name, model, spec, x, params=None, **kwargs):
        self.calls.append((model, params))
        if len(self.calls) <= self.k and (self.only_on is None or model is self.only_on):
            raise self.error
        return self.real(name, model, spec, x, params, **kwargs)

    def batches(self) -> list[int]:
        return [p.internal_batch_size for _, p in self.calls]


# ------------------------------------------------------------------ out of memory


def test_out_of_memory_retries_with_half_the_internal_batch_and_the_next_request_works(monkeypatch):
    fake = FailingAnalyzer(k=2)
    monkeypatch.setattr(analyzers, "run_analyzer", fake)
    result = compute.run("integrated_gradients", "vit-dot", IGParams(n_steps=8, internal_batch_size=64, seed=101),
                         PIXELS)
    assert fake.batches() == [64, 32, 16]
    assert result.info.params["internal_batch_size"] == "16" and np.isfinite(result.attributions).all()
    assert lock_is_free("vit-dot") and hook_count(cache.loaded_model("vit-dot").model) == 0
    assert compute.run("saliency", "vit-dot", SaliencyParams(abs=False), PIXELS) is not None


@pytest.mark.parametrize("error, seed", [(torch.cuda.OutOfMemoryError(OOM), 102), (RuntimeError("CUDA out of memory."), 107)])
def test_out_of_memory_at_a_batch_of_one_on_the_cpu_is_a_clear_message(monkeypatch, error, seed):
    fake = FailingAnalyzer(k=10**6, error=error)
    monkeypatch.setattr(analyzers, "run_analyzer", fake)
    with pytest.raises(compute.AnalysisOutOfMemory) as info:
        compute.run("integrated_gradients", "vit-dot", IGParams(n_steps=8, internal_batch_size=64, seed=seed), PIXELS)
    assert fake.batches() == [64, 32, 16, 8, 4, 2, 1]
    message = str(info.value)
    assert "ran out of memory, even with an internal batch of 1" in message and "Lower n_steps" in message
    assert "Traceback" not in message
    assert lock_is_free("vit-dot") and hook_count(cache.loaded_model("vit-dot").model) == 0
    monkeypatch.setattr(analyzers, "run_analyzer", fake.real)  # the machine has memory again
    assert compute.run("integrated_gradients", "vit-dot", IGParams(n_steps=8, seed=seed), PIXELS).attributions.shape


def test_out_of_memory_with_an_automatic_batch_is_not_retried_by_the_app(monkeypatch):
    """An automatic batch is halved inside the analyzer (down to 1) before the error reaches the app."""
    fake = FailingAnalyzer(k=10**6)
    monkeypatch.setattr(analyzers, "run_analyzer", fake)
    with pytest.raises(compute.AnalysisOutOfMemory, match="even with an internal batch of 1"):
        compute.run("integrated_gradients", "vit-dot", IGParams(n_steps=8, seed=108), PIXELS)
    assert fake.batches() == [0]
    assert lock_is_free("vit-dot")


def test_out_of_memory_without_a_batch_to_halve_is_not_retried(monkeypatch):
    fake = FailingAnalyzer(k=1)
    monkeypatch.setattr(analyzers, "run_analyzer", fake)
    with pytest.raises(compute.AnalysisOutOfMemory, match=r"^Saliency on vit-dot ran out of memory\."):
        compute.run("saliency", "vit-dot", SaliencyParams(abs=True, target=3), PIXELS)
    assert len(fake.calls) == 1


@pytest.mark.parametrize("batch, tries_on_gpu", [(64, 7), (0, 1)])  # set: halved down to 1; automatic: by the analyzer
def test_out_of_memory_on_an_accelerator_falls_back_to_a_cpu_copy(monkeypatch, batch, tries_on_gpu):
    import analyzers.run as run_module
    from model_zoo import get_spec, load

    shared = cache.loaded_model("vit-dot").model
    cpu = cache.LoadedModel("vit-dot", load("vit-dot", "cpu"), threading.RLock(), get_spec("vit-dot").sha256, "cpu")
    real_device = run_module.model_device
    monkeypatch.setattr(run_module, "model_device",  # pretend the shared model lives on a GPU
                        lambda m: torch.device("cuda", 0) if m is shared else real_device(m))
    monkeypatch.setattr(cache, "cpu_model", lambda name: cpu)
    fake = FailingAnalyzer(k=10**6, only_on=shared)  # the "GPU" never has room, the CPU does
    monkeypatch.setattr(analyzers, "run_analyzer", fake)
    result = compute.run("integrated_gradients", "vit-dot", IGParams(n_steps=8, internal_batch_size=batch, seed=103),
                         PIXELS)
    models = [m for m, _ in fake.calls]
    assert models[:-1] == [shared] * tries_on_gpu and models[-1] is cpu.model  # then the CPU copy
    assert fake.batches()[-1] == batch  # the CPU starts again from the requested batch
    expected = analyzers.run_analyzer("integrated_gradients", load("vit-dot", "cpu"), get_spec("vit-dot"),
                                      compute.image_batch(PIXELS), IGParams(n_steps=8, seed=103))
    np.testing.assert_array_equal(result.attributions, expected.attributions)
    assert lock_is_free("vit-dot") and cpu.lock.acquire(blocking=False)
    cpu.lock.release()


def test_out_of_memory_on_the_page_is_a_message_above_a_usable_page(monkeypatch):
    monkeypatch.setattr(analyzers, "run_analyzer", FailingAnalyzer(k=10**6))
    at = open_page("attribution", {**FAST_IG, "seed": "104"})
    assert not at.exception, [e.value for e in at.exception]
    assert any("ran out of memory" in e for e in errors(at)), errors(at)
    assert at.selectbox(key=WidgetKeys("attribution").name("model")).value == "vit-dot"


# ------------------------------------------------------------------ cost


def test_an_analysis_over_the_budget_is_refused_with_advice_before_it_runs(monkeypatch):
    monkeypatch.setattr(analyzers, "run_analyzer", lambda *a, **k: pytest.fail("an over-budget analysis ran"))
    params = IGParams(n_steps=1024, baseline="uniform", baseline_draws=64)
    with pytest.raises(compute.AnalysisTooLarge) as info:
        compute.run("integrated_gradients", "vit-dot", params, PIXELS)
    message = str(info.value)
    assert "65,536 model evaluations (n_steps 1,024 × baseline_draws 64)" in message
    assert "allows 16,384 per analysis" in message
    assert "n_steps to 256 or less" in message and "baseline_draws to 16 or less" in message
    monkeypatch.setenv(compute.BUDGET_ENV, "100")  # the operator's own budget
    with pytest.raises(compute.AnalysisTooLarge, match="200 model evaluations .* allows 100 per analysis"):
        compute.run("smoothgrad", "vit-dot", analyzers.SmoothGradParams(nt_samples=200), PIXELS)
    with pytest.raises(compute.AnalysisTooLarge, match=r"n_steps 64 × examples 3.*n_steps to 33 or less"):
        compute.run("integrated_gradients", "vit-dot", IGParams(), np.stack([PIXELS] * 3))


def test_within_budget_analyses_are_not_refused():
    assert compute.cost_factors(IGParams(n_steps=1024)) == {"n_steps": 1024}
    assert compute.cost_factors(analyzers.SmoothGradParams()) == {"nt_samples": 16}  # over saliency: no steps
    assert compute.cost_factors(analyzers.GradientShapParams(n_samples=1024)) == {"n_samples": 1024}
    compute.check_budget("integrated_gradients", "vit-dot", IGParams(n_steps=1024, baseline="uniform",
                                                                      baseline_draws=16), PIXELS)


def test_the_page_refuses_an_over_budget_link_with_advice_and_stays_usable():
    at = open_page("attribution", {**FAST_IG, "n_steps": "1024", "baseline": "uniform", "baseline_draws": "64"})
    assert not at.exception, [e.value for e in at.exception]
    assert any("this server allows 16,384 per analysis" in e and "n_steps to 256 or less" in e for e in errors(at))
    at.number_input(key=WidgetKeys("attribution").name("integrated_gradients.n_steps")).set_value(16)
    at.number_input(key=WidgetKeys("attribution").name("integrated_gradients.baseline_draws")).set_value(1).run()
    assert not at.exception and not at.error, errors(at)
    assert "Prediction" in numbers(at)


# ------------------------------------------------------------------ time


def test_a_long_analysis_is_stopped_the_lock_released_and_the_next_request_works(monkeypatch):
    model = cache.loaded_model("vit-dot").model
    monkeypatch.setenv(compute.TIMEOUT_ENV, "0.3")
    with pytest.raises(compute.AnalysisTimeout) as info:  # 1024 steps one at a time: far beyond 0.3 s
        compute.run("integrated_gradients", "vit-dot", IGParams(n_steps=1024, internal_batch_size=1, seed=105), PIXELS)
    assert "was stopped after 0.3 s" in str(info.value) and "Lower n_steps" in str(info.value)
    assert lock_is_free("vit-dot") and hook_count(model) == 0
    assert all(not m._forward_pre_hooks for m in model.modules())
    monkeypatch.delenv(compute.TIMEOUT_ENV)
    result = compute.run("integrated_gradients", "vit-dot", IGParams(n_steps=8, seed=105), PIXELS)
    assert np.isfinite(result.attributions).all()


def test_a_request_waiting_for_the_model_is_not_charged_for_the_wait(monkeypatch):
    monkeypatch.setenv(compute.TIMEOUT_ENV, "1")
    entry = cache.loaded_model("vit-dot")
    with ThreadPoolExecutor(1) as pool:
        with entry.lock:  # another session holds the model for longer than the limit
            waiting = pool.submit(compute.run, "saliency", "vit-dot", SaliencyParams(abs=True, target=7), PIXELS)
            threading.Event().wait(1.3)
        assert waiting.result().attributions.shape[0] == 1


@pytest.mark.parametrize("raw, expected", [("", 60.0), ("5", 5.0), ("0", None), ("nan", 60.0), ("-3", 60.0),
                                           ("soon", 60.0)])
def test_the_time_limit_comes_from_the_environment(monkeypatch, raw, expected):
    monkeypatch.setenv(compute.TIMEOUT_ENV, raw)
    assert compute.timeout_s() == expected


def test_the_page_says_an_analysis_was_stopped_and_the_session_stays_usable(monkeypatch):
    monkeypatch.setenv(compute.TIMEOUT_ENV, "0.05")
    at = open_page("attribution", {**FAST_IG, "n_steps": "1000", "seed": "106"})
    assert not at.exception, [e.value for e in at.exception]
    assert any("was stopped after 0.05 s" in e for e in errors(at)), errors(at)
    assert lock_is_free("vit-dot")
    monkeypatch.delenv(compute.TIMEOUT_ENV)
    at.number_input(key=WidgetKeys("attribution").name("integrated_gradients.n_steps")).set_value(16).run()
    assert not at.exception and not at.error, errors(at)
    assert "Prediction" in numbers(at) and "Relative error" in numbers(at)


# ------------------------------------------------------------------ one shared model, many sessions


PAIRS = [("A cat sat on the mat.", "A dog sat on the rug."), ("The sky is blue.", "Grass is green.")]


def test_concurrent_layer_attributions_with_hooks_equal_a_sequential_run():
    """MiniLM's LayerIntegratedGradients hooks the word embeddings: sessions must not see each other's hooks."""
    from model_zoo import get_spec

    jobs = [(PAIRS[0], 3), (PAIRS[1], 3), (PAIRS[0], 4)]
    run = lambda job: compute.run("integrated_gradients", "minilm", IGParams(n_steps=job[1]), [job[0]])  # noqa: E731
    cache.results()._items.clear()
    sequential = [run(job) for job in jobs]
    shared = cache.loaded_model("minilm").model
    hooks_before = hook_count(shared)  # transformers' own capturing hooks, installed on the first forward
    cache.results()._items.clear()
    with ThreadPoolExecutor(len(jobs) + 2) as pool:
        concurrent = list(pool.map(run, jobs))
        loaded = list(pool.map(lambda _: cache.loaded_model("minilm"), range(6)))
    for a, b in zip(sequential, concurrent):
        assert a is not b  # really computed twice
        np.testing.assert_array_equal(a.attributions, b.attributions)
        np.testing.assert_array_equal(a.delta, b.delta)
    assert all(entry.model is shared for entry in loaded)  # loaded once, shared by every session
    assert hook_count(shared) == hooks_before  # no session left a hook behind (nor the time guard)
    alone = analyzers.run_analyzer("integrated_gradients", shared, get_spec("minilm"), [jobs[0][0]], IGParams(n_steps=3))
    np.testing.assert_array_equal(alone.attributions, sequential[0].attributions)  # the guards change no number


# ------------------------------------------------------------------ a store that cannot save




def _read_only_home(monkeypatch):
    folder = Path(tempfile.mkdtemp(prefix="zooscope-ro-"))  # /tmp: reachable by an ordinary user
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR | stat.S_IROTH | stat.S_IXOTH)
    monkeypatch.setenv("ZOOSCOPE_HOME", str(folder))
    return folder  # removed by the test


def _store_full(monkeypatch):
    """A real SQLITE_FULL: every connection may not grow the file beyond the pages it has."""
    real_open = Store._open

    def capped(self):
        conn = real_open(self)
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
        return conn
    monkeypatch.setattr(Store, "_open", capped)


def _store_bug(monkeypatch):
    monkeypatch.setattr(Store, "save", lambda self, *a, **k: (_ for _ in ()).throw(OSError(5, "I/O error")))


@pytest.mark.parametrize("failure, reason", [
    (_read_only_home, "read-only"),
    (_store_full, "the analysis store is full"),
    (_store_bug, "could not be stored (OSError)"),
])
def test_a_store_that_cannot_save_says_not_saved_and_keeps_the_analysis_on_screen(monkeypatch, request, failure,
                                                                                 reason):
    at = open_page("attribution", FAST_IG)
    shown = numbers(at)
    assert "Σ attributions" in shown and not at.error
    folder = failure(monkeypatch)
    if folder is not None:
        request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    share = next(b for b in at.button if b.label == "Share")
    with unprivileged() if failure is _read_only_home else contextlib.nullcontext():
        share.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(e.startswith("Not saved") and reason in e for e in errors(at)), errors(at)
    assert numbers(at) == shown  # the analysis is still on screen
    assert len(at.get("vega_lite_chart")) >= 2  # heatmap and scores
    assert "id" not in at.query_params and not any("?id=" in m.value.replace("\\", "") for m in at.markdown)


# ------------------------------------------------------------------ tampered links


@pytest.mark.parametrize("query, expected", [
    ({"model": "resnet-9000"}, "Unknown model 'resnet-9000'"),
    ({"method": "magic"}, "Unknown method for vit-dot 'magic'"),
    ({"n_steps": "-1"}, "n_steps='-1' is not allowed"),
    ({"n_steps": "0"}, "n_steps='0' is not allowed"),
    ({"n_steps": "nan"}, "n_steps='nan' is not allowed"),
    ({"n_steps": "5.5"}, "n_steps='5.5' is not allowed"),
    ({"n_steps": "1025"}, "n_steps must be an integer from 2 to 1024"),
    ({"internal_batch_size": "4096"}, "internal_batch_size must be an integer from 0 to 1024"),
    ({"baseline_draws": "65"}, "baseline_draws must be an integer from 1 to 64"),
    ({"target": "5000"}, "target='5000' is not allowed"),
    ({"n_steps": ["8", "16"]}, "'n_steps' appears 2 times"),
    ({"foo": "1", "javascript:alert(1)": "<b>"}, "Ignored unknown link parameters"),
    ({"id": "A" * 5000}, "is not a zooscope link id"),
    ({"id": "'; DROP TABLE analyses;--"}, "is not a zooscope link id"),
    ({"id": "<script>alert(1)</script>"}, "is not a zooscope link id"),
    ({"id": "AAAAAAAAAAAAAAAAAAAAA\x00"}, "is not a zooscope link id"),
], ids=lambda v: re.sub(r"\W+", "_", str(v))[:40])
def test_each_bad_link_parameter_gets_a_clear_message_above_a_usable_page(monkeypatch, query, expected):
    opened: list[str] = []
    real_load = Store.load
    monkeypatch.setattr(Store, "load", lambda self, link: opened.append(link) or real_load(self, link))
    base = {} if "id" in query else {k: v for k, v in FAST_IG.items() if k not in query}
    at = open_page("attribution", {**base, **query})
    assert not at.exception, [e.value for e in at.exception]
    shown = errors(at)
    assert shown and expected in shown[0], shown
    assert len(shown[0]) < 1200  # overlong values are cut short
    assert "Prediction" in numbers(at)  # the page still works
    if "id" in query:
        assert opened == []  # rejected by its shape before the store is touched


def test_a_target_beyond_the_models_classes_gets_a_message():
    at = open_page("attribution", {**FAST_IG, "target": "10"})
    assert not at.exception
    assert any("target" in e for e in errors(at)), errors(at)


# ------------------------------------------------------------------ Pillow and HTML


def test_pillow_limits_are_set_at_start_up(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with warnings.catch_warnings():
        warnings.resetwarnings()  # no DecompressionBombWarning filter either
        at = open_page("home")
        assert not at.exception
        assert Image.MAX_IMAGE_PIXELS == inputs.MAX_PIXELS
        assert ImageFile.LOAD_TRUNCATED_IMAGES is False
        assert ("error", Image.DecompressionBombWarning) in [(f[0], f[2]) for f in warnings.filters]


UNSAFE = re.compile(r"unsafe_allow_html\s*=\s*True|\bst\.html\(|components\.v1\.html|components\.html\(|"
                    r"\.markdown\([^)]*\b(file\.name|upload_names|text_b?|raw|title)\b")


def test_no_page_renders_html_or_user_text_as_markdown():
    offenders = [f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
                 for folder in ("app", "pages") for path in sorted((ROOT / folder).glob("*.py"))
                 for i, line in enumerate(path.read_text().splitlines(), 1)
                 if UNSAFE.search(line) and "messages.escape" not in line]
    assert offenders == []
