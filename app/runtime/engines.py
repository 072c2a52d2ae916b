"""Where whole-dataset chunks run: a process pool on this machine, or Ray (a local instance or a cluster).

Both engines do the same thing: ``workers`` processes, each loading the model once (the pool's
initializer; a Ray actor's constructor) and then analysing chunk after chunk with
:func:`analyzers.dataset.analyse_chunk`, one torch thread each. ``submit`` returns a
``concurrent.futures.Future`` either way, so the job above does not care which ran it.

- ``local`` (the default): ``ProcessPoolExecutor`` with the spawn context (no forked torch state).
- ``ray``: ``ZOOSCOPE_RAY_ADDRESS`` connects to an existing cluster; otherwise a Ray instance is
  started in this process on 127.0.0.1 with no dashboard, and shut down again by :meth:`close`.
  One actor per worker holds the model; actors ask for ``num_gpus=1`` when the cluster reports GPUs.

No streamlit here.
"""

from __future__ import annotations

import os
import socket
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import numpy as np

ENGINES = ("local", "ray")
RAY_ADDRESS_ENV = "ZOOSCOPE_RAY_ADDRESS"
MAX_WORKERS = 64
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": ray keeps a single-machine instance on 127.0.0.1


class EngineError(RuntimeError):
    """An engine could not start (Ray missing or unreachable, a model that will not load); the message says why."""


# --------------------------------------------------------------------------- the worker's side

_worker: dict[str, Any] = {}


def _load(model_name: str, device: str | None) -> tuple[Any, Any]:
    import torch

    import model_zoo

    torch.set_num_threads(1)
    resolve = getattr(model_zoo, "resolve_model", None)  # zoo, user and plugin models by name or folder
    spec = model_zoo.get_spec(resolve(model_name) if resolve else model_name)
    return spec, model_zoo.load_spec(spec, device)


def _init_worker(model_name: str, device: str | None) -> None:
    """Pool initializer: load the model once for this worker process."""
    _worker["spec"], _worker["model"] = _load(model_name, device)


def _ready(pause: float) -> bool:
    import time

    time.sleep(pause)  # long enough that each worker takes one of these, so all of them start
    return "model" in _worker


def _run_chunk(images: np.ndarray, labels: np.ndarray, index: np.ndarray, params: Any) -> Any:
    from dataclasses import replace

    from analyzers.dataset import analyse_chunk

    out = analyse_chunk(_worker["model"], _worker["spec"], images, labels, index, params)
    return replace(out, worker=f"{socket.gethostname()}:{os.getpid()}")


# --------------------------------------------------------------------------- engines


class LocalEngine:
    """A spawn-context process pool of ``workers`` processes, each holding the model once."""

    name = "local"

    def __init__(self, model: str, workers: int = 2, device: str | None = None) -> None:
        import multiprocessing

        self.workers = _check_workers(workers)
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init_worker, initargs=(model, device or "cpu"))
        try:  # start every worker now (the pool spawns them on demand), so the model loads before any chunk
            for f in [self._pool.submit(_ready, 0.3) for _ in range(self.workers)]:
                f.result()
        except Exception as e:  # noqa: BLE001 - BrokenProcessPool: the initializer failed in a worker
            self.close()
            raise EngineError(f"a local worker could not load {model}: {type(e).__name__}: {e}") from None

    def submit(self, images: np.ndarray, labels: np.ndarray, index: np.ndarray, params: Any) -> Future:
        return self._pool.submit(_run_chunk, images, labels, index, params)

    def describe(self) -> str:
        return f"local process pool, {self.workers} worker{'s' if self.workers != 1 else ''}"

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayEngine:
    """``workers`` Ray actors, each holding the model once; a local Ray on loopback unless an address is set."""

    name = "ray"

    def __init__(self, model: str, workers: int = 2, address: str | None = None) -> None:
        address = address or os.environ.get(RAY_ADDRESS_ENV) or None
        if not address:  # a local instance on loopback: ray maps 127.0.0.1 to a routable address unless told
            os.environ.setdefault(LOOPBACK_ENV, "0")  # not to (read when ray is first imported)
        try:
            import ray
        except ImportError:
            raise EngineError("the ray engine needs the ray package: pip install ray") from None
        self.workers = _check_workers(workers)
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, include_dashboard=False, log_to_driver=False,
                             runtime_env=_runtime_env())
                else:
                    ray.init(address="local", num_cpus=self.workers, include_dashboard=False, _node_ip_address="127.0.0.1",
                             log_to_driver=False, runtime_env=_runtime_env())
            except Exception as e:  # noqa: BLE001 - ray raises many kinds; the message names the address
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise EngineError(f"could not start {where}: {type(e).__name__}: {e}") from None
            self._started = True
        self.gpus = int(ray.cluster_resources().get("GPU", 0))
        actor = ray.remote(num_cpus=1, num_gpus=1 if self.gpus else 0)(_RayWorker)
        self._actors = [actor.remote(model, "cuda" if self.gpus else "cpu") for _ in range(self.workers)]
        try:
            ray.get([a.ready.remote() for a in self._actors])
        except Exception as e:  # noqa: BLE001 - an actor that could not load the model
            self.close()
            raise EngineError(f"a Ray worker could not load {model}: {_ray_message(e)}") from None
        self._next = 0

    def submit(self, images: np.ndarray, labels: np.ndarray, index: np.ndarray, params: Any) -> Future:
        actor = self._actors[self._next % len(self._actors)]
        self._next += 1
        return actor.run.remote(images, labels, index, params).future()

    def describe(self) -> str:
        gpu = f", {self.gpus} GPU{'s' if self.gpus != 1 else ''}" if self.gpus else ""
        return f"Ray, {self.workers} actor{'s' if self.workers != 1 else ''}{gpu}"

    def close(self) -> None:
        for a in getattr(self, "_actors", []):
            try:
                self._ray.kill(a)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._actors = []
        if self._started:
            self._ray.shutdown()
            self._started = False


class _RayWorker:
    """One Ray actor: the model loaded once, then chunk after chunk."""

    def __init__(self, model: str, device: str) -> None:
        _init_worker(model, device)

    def ready(self) -> bool:
        return True

    def run(self, images, labels, index, params):
        return _run_chunk(images, labels, index, params)


def _runtime_env() -> dict[str, Any]:
    """Workers import zooscope from this checkout (and skip ray's own thread count per worker)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"}}


def _ray_message(e: BaseException) -> str:
    cause = getattr(e, "cause", None) or e
    return f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}"


def _check_workers(workers: int) -> int:
    if not isinstance(workers, int) or not 1 <= workers <= MAX_WORKERS:
        raise EngineError(f"workers must be a whole number from 1 to {MAX_WORKERS}, not {workers!r}")
    return workers


def make_engine(name: str, model: str, workers: int = 2) -> LocalEngine | RayEngine:
    """The engine called ``name`` ("local" or "ray") with ``workers`` workers holding ``model``."""
    if name == "local":
        return LocalEngine(model, workers)
    if name == "ray":
        return RayEngine(model, workers)
    raise EngineError(f"unknown engine {name!r}; choose {' or '.join(ENGINES)}")
