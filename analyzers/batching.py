"""How many inputs go through the model in one pass: chosen from the memory the device has.

Batch params (``internal_batch_size``, ``perturbations_per_eval``) default to :data:`AUTO`.
On a CUDA device an automatic batch is as many inputs as fit in :data:`MEMORY_SHARE` of the
memory free right now, by a cost per input measured on the model itself: the same call is
run once with one and once with :data:`PROBE_SIZE` inputs and the peak memory of each read
from torch's allocator. The two peaks give a fixed part and a part per input; both are kept
per model, input shape and kind of call, so the probe runs once. On other devices the batch
is a fixed size measured to be fast on the CPU (``bench/batch.py``). A value a person sets is
used as it is. Either way an out-of-memory error halves the batch (:func:`analyzers.run.halving_on_oom`).

The peaks are the device's, not the call's: an analysis running at the same time on another
thread can only make a measured cost larger, so the batch smaller, never too large.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

AUTO = 0  # a batch param's value meaning "chosen from the device's memory"
MEMORY_SHARE = 0.5  # of the free memory one analysis plans to fill (other sessions run too)
PROBE_SIZE = 4  # inputs in the second probe; the first has one
MAX_BATCH = 1 << 16  # no pass larger than this, whatever the memory

_log = logging.getLogger(__name__)
_costs: dict[Hashable, tuple[float, float]] = {}  # key -> (fixed bytes, bytes per input)
_costs_lock = threading.Lock()


@dataclass(frozen=True)
class Batching:
    """Batch sizes for one analysis: its device, and what measured memory costs belong to."""

    device: torch.device
    model_key: Hashable  # e.g. (model name, input shape): calls with the same key cost the same

    def size(self, requested: int, items: int, probe: Callable[[int], object], *, kind: str, cpu: int) -> int:
        """Inputs per pass for a call over ``items`` inputs.

        Args:
            requested: the param's value; anything but :data:`AUTO` is returned as it is.
            items: inputs the call goes through in all (no batch larger is ever needed).
            probe: ``probe(n)`` runs the call's work with ``n`` inputs in one pass (used on CUDA only).
            kind: names the call (e.g. "integrated_gradients"): part of the cost's key.
            cpu: the automatic batch on devices other than CUDA.
        """
        if requested != AUTO:
            return requested
        items = max(1, int(items))
        if self.device.type != "cuda":
            return min(items, cpu)
        fixed, per_input = self.cost(probe, kind)
        free = free_bytes(self.device)
        batch = fit(free * MEMORY_SHARE - fixed, per_input, items)
        _log.debug("%s on %s: %d of %d inputs per pass (%.0f MiB free, %.0f KiB per input, %.0f MiB fixed)",
                   kind, self.model_key, batch, items, free / 2**20, per_input / 2**10, fixed / 2**20)
        return batch

    def cost(self, probe: Callable[[int], object], kind: str) -> tuple[float, float]:
        """(fixed bytes, bytes per input) of ``probe`` on this device, measured once per key."""
        key = (self.model_key, kind, str(self.device))
        with _costs_lock:  # one probe at a time: probes do not inflate each other's peaks
            if key not in _costs:
                one, more = (peak_bytes(self.device, lambda n=n: probe(n)) for n in (1, PROBE_SIZE))
                per_input = max((more - one) / (PROBE_SIZE - 1), 1.0)
                _costs[key] = (max(one - per_input, 0.0), per_input)
            return _costs[key]


def fit(budget: float, per_input: float, items: int) -> int:
    """The largest batch of inputs costing ``per_input`` bytes each within ``budget`` bytes, in [1, items]."""
    return int(max(1, min(items, MAX_BATCH, budget // per_input)))


def free_bytes(device: torch.device) -> int:
    """Memory a new allocation on a CUDA device can have: the driver's free memory plus what torch's
    caching allocator holds but does not use."""
    free, _total = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def peak_bytes(device: torch.device, work: Callable[[], object]) -> int:
    """Peak memory ``work()`` allocates on a CUDA device beyond what was allocated before it."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    work()
    torch.cuda.synchronize(device)
    return max(int(torch.cuda.max_memory_allocated(device)) - before, 0)


def forget_costs() -> None:
    """Drop every measured cost (tests; a model whose memory use changed)."""
    with _costs_lock:
        _costs.clear()
