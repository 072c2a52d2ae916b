"""The Capsules page's pose sliders decode through the same guards and cache as every analysis."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app.runtime import guards, models, pose
from app.runtime.results import results

PIXELS = np.zeros((28, 28), dtype=np.float32)
PIXELS[6:22, 12:16] = 1.0  # a rough "1"
OFFSETS = [0.05] + [0.0] * 15


@pytest.fixture(autouse=True)
def default_limits(monkeypatch):
    monkeypatch.delenv(guards.TIMEOUT_ENV, raising=False)
    results().clear()


def test_a_reconstruction_is_cached_and_moves_with_the_pose():
    first = pose.reconstruction("capsnet", PIXELS, 1, OFFSETS)
    assert first.shape == (28, 28) and not first.flags.writeable
    assert pose.reconstruction("capsnet", PIXELS, 1, OFFSETS) is first
    moved = pose.reconstruction("capsnet", PIXELS, 1, [0.3] + [0.0] * 15)
    assert not np.allclose(moved, first)


def test_a_slow_decoder_is_stopped_at_the_servers_time_limit(monkeypatch):
    def slow(model, spec, x, target, offsets):
        time.sleep(0.3)
        return model(x)  # the next forward pass meets the deadline

    monkeypatch.setattr(pose, "reconstruct_with_offsets", slow)
    monkeypatch.setenv(guards.TIMEOUT_ENV, "0.1")
    with pytest.raises(guards.AnalysisTimeout, match="Decoding capsule 3 of capsnet was stopped after 0.1 s"):
        pose.reconstruction("capsnet", PIXELS, 3, OFFSETS)
    lock, free = models.loaded_model("capsnet").lock, []

    def probe():  # from another thread: the model's lock (reentrant) was released
        free.append(lock.acquire(blocking=False))
        if free[-1]:
            lock.release()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    assert free == [True]


def test_a_failing_decoder_is_a_message_not_a_traceback(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pose, "reconstruct_with_offsets", broken)
    with pytest.raises(guards.AnalysisError, match=r"^Decoding capsule 3 of capsnet failed \(RuntimeError\)"):
        pose.reconstruction("capsnet", PIXELS, 3, OFFSETS)
    with pytest.raises(guards.AnalysisError, match="unknown model"):
        pose.reconstruction("capsnet-xl", PIXELS, 3, OFFSETS)
