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
from app.runtime import compute, guards, images, models
from app.runtime.results import results
from app.runtime.store import Store
from app.ui.session import WidgetKeys
from tests.app.apptest import errors, numbers, open_page
from tests.app.runtime.test_store import unprivileged  # root ignores permissions: the block runs as nobody

ROOT = Path(__file__).resolve().parents[2]
FAST_IG = {"model": "vit-dot", "method": "integrated_gradients", "sample": "17", "n_steps": "16"}
PIXELS = np.zeros((28, 28), dtype=np.float32)
PIXELS[6:22, 12:16] = 1.0  # a rough "1"
OOM = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total capacity)"


@pytest.fixture(autouse=True)
def default_limits(monkeypatch):
    """Every test runs with the default time and cost limits."""
    monkeypatch.delenv(guards.TIMEOUT_ENV, raising=False)
    monkeypatch.delenv(guards.BUDGET_ENV, raising=False)


def lock_is_free(name: str) -> bool:
    """Whether another thread can take the model's lock right now."""
    lock = models.loaded_model(name).lock
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


@contextlib.contextmanager
def memory_for(name: str, rows: int, *, after: int = 1):
    """ViT ``name`` runs out of memory on any forward pass of more than ``rows`` inputs (0: on every pass),
    from its ``after``-th pass on (the first one, the prediction of a single digit, goes through).

    Yields the batch sizes it was asked to run, in order. The fault is in the model, below the
    analyzers, so the real out-of-memory path is what is tested.
    """
    seen = []

    def check(_module, args):
        seen.append(int(args[0].shape[0]))  # (B, 49, 16): the batch's patches
        if len(seen) > after and seen[-1] > rows:
            raise torch.cuda.OutOfMemoryError(OOM)

    handle = guarded_model(name).patch.register_forward_pre_hook(check)  # the first layer the pixels reach
    try:
        yield seen
    finally:
        handle.remove()


def guarded_model(name: str):
    return models.loaded_model(name).model


def test_out_of_memory_halves_the_batch_in_the_analyzer_and_the_numbers_stay_the_same(monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_ANALYSIS_MAX_MB", "0")  # no probe passes: these count the halving's
    params = IGParams(n_steps=32, internal_batch_size=32, seed=101)
    with memory_for("vit-dot", 8) as seen:
        result = compute.run("integrated_gradients", "vit-dot", params, PIXELS)
    assert seen[:4] == [1, 32, 16, 8] and max(seen[4:]) <= 8, seen  # halved until it fits, then run in 8s
    results().clear()
    expected = compute.run("integrated_gradients", "vit-dot", params, PIXELS)
    np.testing.assert_allclose(result.attributions, expected.attributions, rtol=1e-5, atol=1e-7)
    assert lock_is_free("vit-dot") and hook_count(guarded_model("vit-dot")) == 0


def test_out_of_memory_at_a_batch_of_one_on_the_cpu_is_a_clear_message(monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_ANALYSIS_MAX_MB", "0")  # no probe passes: these count the halving's
    with memory_for("vit-dot", 0) as seen, pytest.raises(guards.AnalysisOutOfMemory) as info:
        compute.run("integrated_gradients", "vit-dot", IGParams(n_steps=64, internal_batch_size=64, seed=102), PIXELS)
    assert seen == [1, 64, 32, 16, 8, 4, 2, 1]
    message = str(info.value)
    assert message.startswith("Integrated Gradients on vit-dot ran out of memory, even with the smallest batch.")
    assert "Lower n_steps" in message and "Traceback" not in message
    assert lock_is_free("vit-dot") and hook_count(guarded_model("vit-dot")) == 0
    assert compute.run("integrated_gradients", "vit-dot", IGParams(n_steps=8, seed=102), PIXELS).attributions.shape


def test_out_of_memory_without_a_batch_to_halve_is_a_message_at_once(monkeypatch):
    monkeypatch.setenv("ZOOSCOPE_ANALYSIS_MAX_MB", "0")  # no probe passes: these count the halving's
    with memory_for("vit-dot", 0, after=0) as seen, pytest.raises(guards.AnalysisOutOfMemory,
                                                                  match=r"^Saliency on vit-dot ran out of memory"):
        compute.run("saliency", "vit-dot", SaliencyParams(abs=True, target=3), PIXELS)
    assert seen == [1]


@pytest.mark.parametrize("batch", [64, 0])  # as asked, and automatic: the CPU copy gets the same request
def test_out_of_memory_on_an_accelerator_falls_back_to_a_cpu_copy(monkeypatch, batch):
    from model_zoo import get_spec, load

    shared = guarded_model("vit-dot")
    cpu = models.LoadedModel("vit-dot", load("vit-dot", "cpu"), threading.RLock(), get_spec("vit-dot").sha256, "cpu")
    real_device = guards.model_device
    monkeypatch.setattr(guards, "model_device",  # pretend the shared model lives on a GPU
                        lambda m: torch.device("cuda", 0) if m is shared else real_device(m))
    monkeypatch.setattr(models, "cpu_model", lambda name: cpu)
    fake = FailingAnalyzer(k=10**6, only_on=shared)  # the "GPU" never has room (even at a batch of 1), the CPU does
    monkeypatch.setattr(analyzers, "run_analyzer", fake)
    result = compute.run("integrated_gradients", "vit-dot", IGParams(n_steps=8, internal_batch_size=batch, seed=103),
                         PIXELS)
    assert [m for m, _ in fake.calls] == [shared, cpu.model] and fake.batches() == [batch, batch]
    expected = analyzers.run_analyzer("integrated_gradients", load("vit-dot", "cpu"), get_spec("vit-dot"),
                                      compute.model_inputs(PIXELS), IGParams(n_steps=8, seed=103))
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
    with pytest.raises(guards.AnalysisTooLarge) as info:
        compute.run("integrated_gradients", "vit-dot", params, PIXELS)
    message = str(info.value)
    assert "65,536 model evaluations (n_steps 1,024 × baseline_draws 64)" in message
    assert "allows 16,384 per analysis" in message
    assert "n_steps to 256 or less" in message and "baseline_draws to 16 or less" in message
    monkeypatch.setenv(guards.BUDGET_ENV, "100")  # the operator's own budget
    with pytest.raises(guards.AnalysisTooLarge, match="200 model evaluations .* allows 100 per analysis"):
        compute.run("smoothgrad", "vit-dot", analyzers.SmoothGradParams(nt_samples=200), PIXELS)
    with pytest.raises(guards.AnalysisTooLarge, match=r"n_steps 64 × examples 3.*n_steps to 33 or less"):
        compute.run("integrated_gradients", "vit-dot", IGParams(), np.stack([PIXELS] * 3))


def test_within_budget_analyses_are_not_refused():
    assert guards.cost_factors(IGParams(n_steps=1024)) == {"n_steps": 1024}
    assert guards.cost_factors(analyzers.SmoothGradParams()) == {"nt_samples": 16}  # over saliency: no steps
    assert guards.cost_factors(analyzers.GradientShapParams(n_samples=1024)) == {"n_samples": 1024}
    guards.check_budget("Integrated Gradients on vit-dot", IGParams(n_steps=1024, baseline="uniform",
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
    model = models.loaded_model("vit-dot").model
    monkeypatch.setenv(guards.TIMEOUT_ENV, "0.3")
    with pytest.raises(guards.AnalysisTimeout) as info:  # 1024 steps one at a time: far beyond 0.3 s
        compute.run("integrated_gradients", "vit-dot", IGParams(n_steps=1024, internal_batch_size=1, seed=105), PIXELS)
    assert "was stopped after 0.3 s" in str(info.value) and "Lower n_steps" in str(info.value)
    assert lock_is_free("vit-dot") and hook_count(model) == 0
    assert all(not m._forward_pre_hooks for m in model.modules())
    monkeypatch.delenv(guards.TIMEOUT_ENV)
    result = compute.run("integrated_gradients", "vit-dot", IGParams(n_steps=8, seed=105), PIXELS)
    assert np.isfinite(result.attributions).all()


def test_a_request_waiting_for_the_model_is_not_charged_for_the_wait(monkeypatch):
    monkeypatch.setenv(guards.TIMEOUT_ENV, "1")
    entry = models.loaded_model("vit-dot")
    with ThreadPoolExecutor(1) as pool:
        with entry.lock:  # another session holds the model for longer than the limit
            waiting = pool.submit(compute.run, "saliency", "vit-dot", SaliencyParams(abs=True, target=7), PIXELS)
            threading.Event().wait(1.3)
        assert waiting.result().attributions.shape[0] == 1


@pytest.mark.parametrize("raw, expected", [("", 60.0), ("5", 5.0), ("0", None), ("nan", 60.0), ("-3", 60.0),
                                           ("soon", 60.0)])
def test_the_time_limit_comes_from_the_environment(monkeypatch, raw, expected):
    monkeypatch.setenv(guards.TIMEOUT_ENV, raw)
    assert guards.timeout_s() == expected


def test_the_page_says_an_analysis_was_stopped_and_the_session_stays_usable(monkeypatch):
    monkeypatch.setenv(guards.TIMEOUT_ENV, "0.05")
    at = open_page("attribution", {**FAST_IG, "n_steps": "1000", "seed": "106"})
    assert not at.exception, [e.value for e in at.exception]
    assert any("was stopped after 0.05 s" in e for e in errors(at)), errors(at)
    assert lock_is_free("vit-dot")
    monkeypatch.delenv(guards.TIMEOUT_ENV)
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
    results().clear()
    sequential = [run(job) for job in jobs]
    shared = models.loaded_model("minilm").model
    hooks_before = hook_count(shared)  # transformers' own capturing hooks, installed on the first forward
    results().clear()
    with ThreadPoolExecutor(len(jobs) + 2) as pool:
        concurrent = list(pool.map(run, jobs))
        loaded = list(pool.map(lambda _: models.loaded_model("minilm"), range(6)))
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
    from app.runtime.store_sqlite import SqliteBackend  # the SQLite file behind the Store front

    real_open = SqliteBackend._open

    def capped(self):
        conn = real_open(self)
        conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
        return conn
    monkeypatch.setattr(SqliteBackend, "_open", capped)


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
        assert Image.MAX_IMAGE_PIXELS == images.MAX_PIXELS
        assert ImageFile.LOAD_TRUNCATED_IMAGES is False
        assert ("error", Image.DecompressionBombWarning) in [(f[0], f[2]) for f in warnings.filters]


UNSAFE = re.compile(r"unsafe_allow_html\s*=\s*True|\bst\.html\(|components\.v1\.html|components\.html\(|"
                    r"\.markdown\([^)]*\b(file\.name|upload_names|text_b?|raw|title)\b")


def test_no_page_renders_html_or_user_text_as_markdown():
    offenders = [f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
                 for folder in ("app", "pages") for path in sorted((ROOT / folder).rglob("*.py"))
                 for i, line in enumerate(path.read_text().splitlines(), 1)
                 if UNSAFE.search(line) and "messages.escape" not in line]
    assert offenders == []
