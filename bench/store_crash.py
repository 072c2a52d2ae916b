"""Kill saving processes with SIGKILL again and again; check every acknowledged save survives.

A writer process saves analyses in a loop and prints each link id once
``Store.save`` has returned it (the acknowledgement). We SIGKILL the writers
mid-stream, reopen the store and check that every acknowledged id loads with
exactly the content that was saved, and that SQLite's integrity check is "ok".

    python -m bench.store_crash                 # 20 rounds, 2 writers, ~1 s each
    python -m bench.store_crash --rounds 5 --writers 4 --seconds 0.5
    ZOOSCOPE_STORE_URL=postgresql://... python -m bench.store_crash --backend postgresql

Exit status 0 when nothing acknowledged was lost and the file is intact.
Note: SIGKILL tests process crashes, not power loss (the OS still holds
unflushed pages); ``synchronous=FULL`` is what covers the latter. With
``--backend postgresql`` the writers save to the database of ``ZOOSCOPE_STORE_URL``
(the URL reaches them through their environment, never their command line) and
the check is the same; PostgreSQL acknowledges a COMMIT once its WAL is flushed.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.runtime.store import Store

_KIND = "crash-test"
_REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RoundResult:
    """What one round of kills left behind."""

    acknowledged: int
    found: int
    intact: int
    integrity: str

    @property
    def ok(self) -> bool:
        """Whether every acknowledged save was found intact and the file checks ok."""
        return self.acknowledged == self.found == self.intact and self.integrity == "ok"


def expected_record(writer: int, index: int) -> tuple[dict, dict[str, np.ndarray]]:
    """The meta and arrays writer ``writer`` saves as its ``index``-th analysis."""
    rng = np.random.default_rng([writer, index])
    arrays = {
        "attributions": rng.standard_normal((28, 28)).astype(np.float32),  # (28, 28)
        "labels": rng.integers(0, 10, size=64, dtype=np.int64),  # (64,)
        "mask": rng.random(100) > 0.5,  # (100,)
    }
    return {"writer": writer, "index": index, "note": "é✓"}, arrays


_LOCATION_ENV = "ZOOSCOPE_CRASH_STORE"  # the store a writer saves to: a SQLite path or a store URL


def write_forever(location: str | Path, writer: int) -> None:
    """Save analyses in a loop, printing "<link id> <index>" after each save returns."""
    store = Store(location)
    index = 0
    while True:
        meta, arrays = expected_record(writer, index)
        link_id = store.save(_KIND, meta, arrays, title=f"w{writer} #{index}")
        sys.stdout.write(f"{link_id} {index}\n")
        sys.stdout.flush()
        index += 1


def _start_writer(location: str | Path, writer: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(_REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    env[_LOCATION_ENV] = str(location)
    command = [sys.executable, "-m", "bench.store_crash", "--child", "--writer", str(writer)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, cwd=_REPO_ROOT, env=env)


def _collect(proc: subprocess.Popen, acks: list[tuple[str, int]], first: threading.Event) -> None:
    """Read acknowledgements until the pipe closes; a half-written last line is not one."""
    for line in proc.stdout:
        if not line.endswith(b"\n"):
            break
        link_id, index = line.decode().split()
        acks.append((link_id, int(index)))
        first.set()


def run_round(path: str | Path, *, seconds: float = 1.0, writers: int = 1, start_timeout: float = 30.0) -> RoundResult:
    """Start writers on ``path`` (a SQLite file or a store URL), SIGKILL them ``seconds`` after their first save,
    then verify."""
    acks: list[list[tuple[str, int]]] = [[] for _ in range(writers)]
    procs, readers, started = [], [], []
    for writer in range(writers):
        procs.append(_start_writer(path, writer))
        started.append(threading.Event())
        readers.append(threading.Thread(target=_collect, args=(procs[-1], acks[writer], started[-1]), daemon=True))
        readers[-1].start()
    try:
        for event in started:
            event.wait(start_timeout)
        time.sleep(seconds)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    for proc, reader in zip(procs, readers):
        reader.join()
        proc.stdout.close()
    return verify(path, acks)


def verify(path: str | Path, acks: list[list[tuple[str, int]]]) -> RoundResult:
    """Reopen the store and check each acknowledged save is there with its exact content."""
    store = Store(path)
    found = intact = 0
    for writer, writer_acks in enumerate(acks):
        for link_id, index in writer_acks:
            saved = store.load(link_id)
            found += saved is not None
            intact += saved is not None and _matches(saved.meta, saved.arrays, writer, index)
    integrity = store.integrity_check()
    store.close()
    return RoundResult(sum(map(len, acks)), found, intact, integrity)


def _matches(meta: dict, arrays: dict[str, np.ndarray], writer: int, index: int) -> bool:
    want_meta, want_arrays = expected_record(writer, index)
    return meta == want_meta and arrays.keys() == want_arrays.keys() and all(
        arrays[k].dtype == want_arrays[k].dtype and np.array_equal(arrays[k], want_arrays[k]) for k in want_arrays
    )


def main(argv: list[str] | None = None) -> int:
    """Run the SIGKILL experiment and print acknowledged vs found for every round."""
    args = _parse_args(argv)
    if args.child:
        write_forever(os.environ[_LOCATION_ENV], args.writer)
        return 0
    if args.backend == "postgresql" and not os.environ.get("ZOOSCOPE_STORE_URL", "").startswith("postgres"):
        print("--backend postgresql saves to the database of ZOOSCOPE_STORE_URL=postgresql://...; it is not set",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="zooscope-crash-") as tmp:
        path = (os.environ["ZOOSCOPE_STORE_URL"] if args.backend == "postgresql"
                else Path(args.path or Path(tmp) / "analyses.sqlite3"))
        rng = np.random.default_rng(args.seed)
        results = [_report(i, run_round(path, seconds=_jitter(rng, args.seconds), writers=args.writers))
                   for i in range(args.rounds)]
    return _summary(results)


def _jitter(rng: np.random.Generator, seconds: float) -> float:
    return float(seconds * rng.uniform(0.3, 1.0))


def _report(round_index: int, result: RoundResult) -> RoundResult:
    verdict = "ok" if result.ok else "LOST DATA"
    print(f"round {round_index + 1:3d}: acknowledged {result.acknowledged:5d}  found {result.found:5d}  "
          f"intact {result.intact:5d}  integrity {result.integrity!r}  {verdict}", flush=True)
    return result


def _summary(results: list[RoundResult]) -> int:
    acknowledged = sum(r.acknowledged for r in results)
    found = sum(r.intact for r in results)
    bad = [i + 1 for i, r in enumerate(results) if not r.ok]
    print(f"total: {acknowledged} acknowledged, {found} found intact over {len(results)} rounds; "
          f"{'all ok' if not bad else f'failed rounds: {bad}'}")
    return 0 if not bad else 1


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.store_crash", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="how many times to kill the writers")
    parser.add_argument("--writers", type=int, default=2, help="writer processes per round")
    parser.add_argument("--seconds", type=float, default=1.0, help="longest run before a kill (jittered)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the kill times")
    parser.add_argument("--path", help="store file to use (default: a fresh temporary one)")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                        help="sqlite: a fresh file (or --path); postgresql: the database of ZOOSCOPE_STORE_URL")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--writer", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
