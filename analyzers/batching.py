"""How many inputs go through the model in one pass: as many as the memory one analysis may use holds.

Every analysis has a memory budget, ``ZOOSCOPE_ANALYSIS_MAX_MB`` (default
:data:`DEFAULT_BUDGET_MB`; 0: none), on the device it runs on. What a pass costs is measured on
the model itself: the same call runs with 1, :data:`PROBE_SIZE` and 2 x :data:`PROBE_SIZE`
inputs and the peak memory of each is read from torch's allocator (on CUDA its statistics; on
the CPU, which has none, the allocations and frees torch's profiler records for the probing
thread, :func:`cpu_peak_bytes`). The two larger peaks give the cost per input, and the fixed
cost is what the line leaves over at either end: one input alone can take kernels of its own
(capsnet's gradient peaks at 3.0 MB for one input, 1.65 MB each for 2 to 256). Both are kept
per model, input shape, kind of call and device, so the probes run once.

Batch params (``internal_batch_size``, ``perturbations_per_eval``) default to :data:`AUTO`: as
many inputs per pass as fit in the budget, and on a CUDA device in :data:`MEMORY_SHARE` of the
memory free right now too; on the CPU at most a fixed size measured to be fast
(``bench/batch.py``). A batch a person sets is used as it is unless the budget cannot hold it;
then it is lowered (the numbers stay the same, a pass holds fewer inputs). An analysis of which
not even one input fits is refused with :class:`MemoryBudgetError`. An out-of-memory error still
halves the batch (:func:`analyzers.run.halving_on_oom`).

On the CPU a pass's tensors are planned to fill :data:`CPU_TENSOR_SHARE` of the budget: the
process's resident memory peaks above what torch's tensors hold (allocator pages, the
interpreter). On CUDA the peak is the device's: an analysis running at the same time on another
thread can only make a measured cost larger, so the batch smaller.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch
from torch.autograd import DeviceType
from torch.autograd import profiler as autograd_profiler

from .params import ParamError

AUTO = 0  # a batch param's value meaning "chosen from the device's memory"
MEMORY_SHARE = 0.5  # of the free memory one analysis plans to fill (other sessions run too)
# Of the budget a CPU pass's tensors may fill: the process's resident memory peaked 9-27 % above the tensors
# torch counted (capsnet, IG and GradientSHAP, passes of 128 to 620 inputs; bench/memory.py).
CPU_TENSOR_SHARE = 0.8
PROBE_SIZE = 4  # inputs in the second probe; the first has one, the third twice as many
MAX_BATCH = 1 << 16  # no pass larger than this, whatever the memory
BUDGET_ENV = "ZOOSCOPE_ANALYSIS_MAX_MB"
DEFAULT_BUDGET_MB = 1024.0  # megabytes (2**20 bytes) one analysis may fill; 0 in the environment: no budget
_MB = 2**20
# Kineto, behind torch's profiler, prints two lines per profiled window to stderr at its highest level
# (USDT, above ERROR); 6 is above every level. Read once, when the profiler is first used.
_KINETO_LOG_ENV, _KINETO_QUIET = "KINETO_LOG_LEVEL", "6"

_log = logging.getLogger(__name__)
_costs: dict[Hashable, tuple[float, float]] = {}  # key -> (fixed bytes, bytes per input)
_costs_lock = threading.Lock()


class MemoryBudgetError(ParamError):
    """Not even one input of an analysis fits in the memory one analysis may use; the message is for people."""


def budget_bytes() -> float:
    """Bytes one analysis may fill: ``ZOOSCOPE_ANALYSIS_MAX_MB`` (read at each call), ``inf`` when it is 0."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    try:
        mb = float(raw) if raw else DEFAULT_BUDGET_MB
    except ValueError:
        mb = math.nan
    if not math.isfinite(mb) or mb < 0:
        _log.warning("%s=%r is not a non-negative number of megabytes; using %g", BUDGET_ENV, raw, DEFAULT_BUDGET_MB)
        mb = DEFAULT_BUDGET_MB
    return mb * _MB if mb > 0 else math.inf


@dataclass(frozen=True)
class Batching:
    """Batch sizes for one analysis: its device, and what measured memory costs belong to."""

    device: torch.device
    model_key: Hashable  # e.g. (model name, input shape): calls with the same key cost the same

    def size(self, requested: int, items: int, probe: Callable[[int], object], *, kind: str, cpu: int) -> int:
        """Inputs per pass for a call over ``items`` inputs.

        Args:
            requested: the param's value; anything but :data:`AUTO` is used as it is if the budget holds it.
            items: inputs the call goes through in all (no batch larger is ever needed).
            probe: ``probe(n)`` runs the call's work with ``n`` inputs in one pass (to measure its memory).
            kind: names the call (e.g. "integrated_gradients"): part of the cost's key.
            cpu: the largest automatic batch on devices other than CUDA (larger is not faster there).

        Raises:
            MemoryBudgetError: one input alone needs more than the budget.
        """
        items, budget, cuda = max(1, int(items)), budget_bytes(), self.device.type == "cuda"
        most = requested if requested != AUTO else (MAX_BATCH if cuda else cpu)
        if math.isinf(budget) and (requested != AUTO or not cuda):
            return requested if requested != AUTO else min(items, cpu)  # nothing to plan against
        cost = self.cost(probe, kind)
        if cost is None:
            return min(items, most)
        share = 1.0 if cuda else CPU_TENSOR_SHARE
        fixed, per_input = cost[0] / share, cost[1] / share  # what the process needs, tensors and the rest
        if fixed + per_input > budget:
            raise MemoryBudgetError(_too_large(kind, self.model_key, fixed + per_input, budget))
        room = budget
        if cuda and requested == AUTO:
            room = min(room, free_bytes(self.device) * MEMORY_SHARE)
        batch = min(fit(room - fixed, per_input, items), most)
        if cuda or batch < min(items, most):  # on the CPU, said only when the budget lowered the batch
            _log.debug("%s on %s: %d of %d inputs per pass (%.0f MiB room, %.0f KiB per input, %.0f MiB fixed)",
                       kind, self.model_key, batch, items, room / _MB, per_input / 2**10, fixed / _MB)
        return batch

    def cost(self, probe: Callable[[int], object], kind: str) -> tuple[float, float] | None:
        """(fixed bytes, bytes per input) of ``probe`` on this device, measured once per key.

        None when it cannot be measured now (another profiler is running on the CPU); nothing is kept then.
        """
        key = (self.model_key, kind, str(self.device))
        with _costs_lock:  # one probe at a time: probes do not inflate each other's peaks
            if key not in _costs:
                peaks = [peak_bytes(self.device, lambda n=n: probe(n)) for n in (1, PROBE_SIZE, 2 * PROBE_SIZE)]
                if None in peaks:
                    return None
                one, some, more = peaks
                per_input = max((more - some) / PROBE_SIZE, 1.0)
                _costs[key] = (max(one - per_input, some - PROBE_SIZE * per_input, 0.0), per_input)
            return _costs[key]


def fit(budget: float, per_input: float, items: int) -> int:
    """The largest batch of inputs costing ``per_input`` bytes each within ``budget`` bytes, in [1, items]."""
    return int(max(1, min(items, MAX_BATCH, budget // per_input)))


def _too_large(kind: str, model_key: Hashable, need: float, budget: float) -> str:
    model = model_key[0] if isinstance(model_key, tuple) and model_key else model_key
    return (f"{kind.replace('_', ' ').capitalize()} on {model} needs about {_megabytes(need)} MB for a single "
            f"input, more than the {_megabytes(budget)} MB one analysis may use on this server ({BUDGET_ENV}). "
            "Choose another model or method, or run it where more memory may be used.")


def _megabytes(n_bytes: float) -> str:
    mb = n_bytes / _MB
    return f"{mb:,.0f}" if mb >= 10 else f"{mb:.2g}"


def free_bytes(device: torch.device) -> int:
    """Memory a new allocation on a CUDA device can have: the driver's free memory plus what torch's
    caching allocator holds but does not use."""
    free, _total = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


def peak_bytes(device: torch.device, work: Callable[[], object]) -> int | None:
    """Peak memory ``work()`` allocates on ``device`` beyond what was allocated before it (None: not measurable now)."""
    if device.type == "cuda":
        return _cuda_peak_bytes(device, work)
    return cpu_peak_bytes(work)


def _cuda_peak_bytes(device: torch.device, work: Callable[[], object]) -> int:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    work()
    torch.cuda.synchronize(device)
    return max(int(torch.cuda.max_memory_allocated(device)) - before, 0)


def cpu_peak_bytes(work: Callable[[], object]) -> int | None:
    """Peak bytes torch's CPU allocator holds for ``work()`` on this thread beyond what it held before.

    torch has no CPU counterpart of ``torch.cuda.max_memory_allocated``; its profiler, with
    ``profile_memory``, records every CPU allocation and free of the thread that runs it (a
    tensor freed in ``work`` that was made before it counts as negative). The running sum of
    those records, in order, peaks at the answer. The process's RSS would not do: memory freed
    by one probe stays in the process and the next one reuses it unseen, and other threads'
    work would count too.
    """
    if autograd_profiler._is_profiler_enabled:  # someone is profiling: do not disturb them
        return None
    os.environ.setdefault(_KINETO_LOG_ENV, _KINETO_QUIET)  # a level the operator set stands
    with autograd_profiler.profile(profile_memory=True) as prof:
        work()
    records = sorted((e.start_ns(), -e.nbytes()) for e in prof.kineto_results.events()
                     if e.name() == "[memory]" and e.device_type() == DeviceType.CPU)  # ties: allocations first
    running = peak = 0
    for _, minus_nbytes in records:
        nbytes = -minus_nbytes
        running += nbytes
        peak = max(peak, running)
    return peak


def forget_costs() -> None:
    """Drop every measured cost (tests; a model whose memory use changed)."""
    with _costs_lock:
        _costs.clear()
