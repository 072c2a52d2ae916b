"""User models at realistic sizes: Integrated Gradients and the attention view against one forward+backward.

Issue 17, "Performance at realistic sizes". ViT-B/16 at 224x224 (``ViTForImageClassification(ViTConfig())``)
and BERT-base (``BertForSequenceClassification(BertConfig(num_labels=2))``), random weights under a fixed
seed, are saved with ``save_pretrained(..., safe_serialization=True)`` into temporary folders with a
``ViTImageProcessor()`` and a WordPiece tokenizer over a small vocabulary written here (nothing is
downloaded), then loaded through zooscope's folder loader (``model_zoo.register_folders`` +
``model_zoo.load``), eager attention, as ``zooscope serve --model PATH`` loads them.

Cases: ViT-B/16 on one 224x224 image, BERT-base on one text of 128 and of 512 tokens. For each,
in a fresh Python process per (case, analysis):

- ``integrated_gradients`` (the zoo's analyzer, ``--steps`` Gauss-Legendre steps, automatic internal
  batch; black image / [PAD] text baseline) against its floor: one forward+backward over the same
  ``steps`` path points in one batch (images: alpha * x; text: the interpolated word embeddings);
- ``attention_maps`` (every layer's and head's probabilities, rollout, gradient-weighted rollout)
  against one forward+backward over the same single input.

The ratio analysis / floor is what the analyzer costs above the work it cannot avoid (goal: at
most 1.3). The analyzer's first call in a process also measures its memory cost per path point
(``analyzers.batching``; a server does that once per model and input size): it is reported as
"first call", the ratio uses the best of ``--repeat`` calls after it (at least 5 when a call takes under
3 s), each right after a floor pass, and the best of those floor passes. "evaluations" counts the inputs
the model ran on (rows through its forward pass) in the timed call, against the floor's.

Peak memory: the peak resident set (VmHWM) above the RSS just before the call, after freed memory
was handed back (``malloc_trim``) and the peak reset (``/proc/self/clear_refs``); where the reset
is refused, the growth of ``getrusage(RUSAGE_SELF).ru_maxrss``. It is given for the timed call and,
apart, for the first call, whose memory probe runs 8 path points in one pass whatever the budget.
tracemalloc does not see torch's buffers, and torch has no CPU counterpart of
``torch.cuda.max_memory_allocated`` (its profiler's memory records, which ``analyzers.batching``
reads, would slow the timed call down).

    zooscope bench user [--cases vit-b16,bert-128,bert-512] [--steps 16] [--steps-512 8] [--repeat 1]
                        [--threads N] [--json] [--tiny]

``--tiny`` runs the same path on 2-layer, hidden-32 models (seconds; the smoke test uses it).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

CASES = ("vit-b16", "bert-128", "bert-512")
ANALYSES = ("integrated_gradients", "attention_maps")
GOAL = 1.3
CHEAP_S, CHEAP_REPEAT = 3.0, 5  # calls shorter than this many seconds are timed this many times at least
MB = 2**20
WORDS = ("the", "film", "was", "a", "delight", "from", "start", "to", "finish", "and", "dull", "lifeless", "movie",
         "that", "never", "ends", "great", "acting", "clever", "plot", "worst", "picture", "of", "year", "sadly", "i",
         "loved", "every", "minute", "it", "boring", "slow", "far", "too", "long")


# --------------------------------------------------------------------------- the model folders


def _tokens(case: str, tiny: bool) -> int:
    return {"bert-128": 16, "bert-512": 32}[case] if tiny else int(case.split("-")[1])


def write_vit(folder: Path, tiny: bool = False) -> Path:
    """ViT-B/16 at 224x224 (or a 2-layer one at 32x32), random weights, saved with its image processor."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    kw = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
          "intermediate_size": 37} if tiny else {}
    ViTForImageClassification(ViTConfig(**kw)).save_pretrained(folder, safe_serialization=True)
    side = 32 if tiny else 224
    ViTImageProcessor(size={"height": side, "width": side}).save_pretrained(folder)
    return folder


def write_bert(folder: Path, tiny: bool = False) -> Path:
    """BERT-base (or a 2-layer one) for 2 classes, random weights, with a WordPiece tokenizer over WORDS."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = list(dict.fromkeys(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *"abcdefghijklmnopqrstuvwxyz",
                                *("##" + c for c in "abcdefghijklmnopqrstuvwxyz")]))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tok.model_max_length = 64 if tiny else 512
    torch.manual_seed(0)
    kw = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37,
          "max_position_embeddings": 64} if tiny else {}
    BertForSequenceClassification(BertConfig(num_labels=2, **kw)).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def text_of(tokens: int) -> str:
    """A text the WordPiece tokenizer above turns into exactly ``tokens`` tokens ([CLS] and [SEP] included)."""
    return " ".join(WORDS[i % len(WORDS)] for i in range(tokens - 2))


# --------------------------------------------------------------------------- one case, in a child process


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _trim() -> None:
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def measured(fn: Callable[[], object]) -> tuple[float, int, str]:
    """(seconds, peak bytes above the RSS before, how the peak was read) of one call of ``fn``."""
    _trim()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM starts again from the RSS now
        how = "VmHWM after clear_refs"
    except OSError:
        how = "ru_maxrss growth"
    before = _rss("VmRSS")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    if how.startswith("VmHWM"):
        return seconds, max(_rss("VmHWM") - before, 0), how
    return seconds, max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - maxrss, 0), how


class RowCounter:
    """Counts the inputs (batch rows) that go through a module's forward pass while installed."""

    def __init__(self, module):
        self.module, self.rows, self.passes, self.handle = module, 0, 0, None

    def __enter__(self):
        def hook(_m, args, kwargs):
            x = next((v for v in (*args, *kwargs.values()) if hasattr(v, "shape") and v.dim() > 0), None)
            self.rows += int(x.shape[0]) if x is not None else 0
            self.passes += 1
        self.handle = self.module.register_forward_pre_hook(hook, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self.handle.remove()


def _floor(model, spec, x, steps: int) -> Callable[[], None]:
    """One forward+backward over ``steps`` path points of ``x`` in one batch (an image tensor or a text)."""
    import torch

    if spec.input.modality == "image":
        x = x.unsqueeze(0) if x.dim() == 3 else x  # (1, C, H, W)
        with torch.no_grad():
            t = model.scores(x).argmax(1)
        alphas = torch.linspace(0, 1, steps + 2)[1:-1] if steps > 1 else torch.ones(1)

        def run() -> None:
            path = (alphas[:, None, None, None] * x).requires_grad_(True)  # (steps, C, H, W)
            torch.autograd.grad(model.scores(path)[:, int(t)].sum(), path)
        return run
    enc = model.tokenize([x])
    ids, mask = enc["input_ids"], enc["attention_mask"]  # (1, T)
    emb_layer = model.embedding_layer
    with torch.no_grad():
        t = int(model.scores(ids, mask).argmax(1))
        emb, base = emb_layer(ids), emb_layer(torch.zeros_like(ids))
    alphas = torch.linspace(0, 1, steps + 2)[1:-1] if steps > 1 else torch.ones(1)

    def run_text() -> None:
        path = (base + alphas[:, None, None] * (emb - base)).requires_grad_(True)  # (steps, T, D)
        logits = model(inputs_embeds=path, attention_mask=mask.expand(steps, -1)).logits
        torch.autograd.grad(logits[:, t].sum(), path)
    return run_text


def run_case(folder: str, case: str, analysis: str, steps: int, repeat: int, tiny: bool) -> dict:
    """Load the folder through the zoo's loader and time ``analysis`` and its floor; one row of the table."""
    import torch

    import model_zoo
    from analyzers import IGParams, attention_maps, integrated_gradients
    from analyzers.attention import AttentionParams

    start = time.perf_counter()
    names = model_zoo.register_folders([folder])
    if not names:
        raise RuntimeError(f"the folder was refused: {model_zoo.model_problems()}")
    model, spec = model_zoo.load(names[0], "cpu"), model_zoo.get_spec(names[0])
    load_s = time.perf_counter() - start
    if case == "vit-b16":
        side = spec.input.shape[-1]
        x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    else:
        x = text_of(_tokens(case, tiny))
    inputs = x if case == "vit-b16" else [x]
    if analysis == "integrated_gradients":
        points = steps
        def call():
            return integrated_gradients(model, spec, inputs, IGParams(n_steps=steps))
    else:
        points = 1
        def call():
            return attention_maps(model, spec, inputs, AttentionParams())
    floor_fn = _floor(model, spec, x, points)
    _floor(model, spec, x, 1)()  # warm-up: the first pass of a process sets up kernels and transformers' hooks
    with RowCounter(model.hf) as counter:
        first_s, first_peak, how = measured(call)  # also measures the memory one path point costs (once)
    first_rows = counter.rows
    times, peaks, floor_times, floor_peaks, rows, passes = [], [], [], [], 0, 0
    runs = repeat
    while len(times) < runs:  # floor and analysis in turn, so that both see the same neighbours
        f_s, f_peak, _ = measured(floor_fn)
        with RowCounter(model.hf) as counter:
            s, p, _ = measured(call)
        floor_times.append(f_s)
        floor_peaks.append(f_peak)
        times.append(s)
        peaks.append(p)
        rows, passes = counter.rows, counter.passes
        if max(s, f_s) < CHEAP_S:  # a short call on a shared CPU: one slice lost to a neighbour doubles it
            runs = max(runs, CHEAP_REPEAT)
    if case == "vit-b16":
        tokens = (spec.input.shape[-1] // model.hf.config.patch_size) ** 2 + 1  # patches + [CLS]
    else:
        tokens = int(model.tokenize([x])["input_ids"].shape[1])
    return {"case": case, "analysis": analysis, "tokens": tokens, "path_points": points,
            "parameters": int(spec.extra.get("parameters", 0)), "load_s": load_s,
            "first_s": first_s, "first_evaluations": first_rows, "analysis_s": min(times),
            "evaluations": rows, "passes": passes, "runs": len(times), "floor_s": min(floor_times), "floor_evaluations": points,
            "ratio": min(times) / min(floor_times), "analysis_peak_mb": max(peaks) / MB, "first_peak_mb": first_peak / MB,
            "floor_peak_mb": max(floor_peaks) / MB, "memory": how, "threads": torch.get_num_threads()}


# --------------------------------------------------------------------------- the parent


class CaseFailed(RuntimeError):
    """A case's child process failed; the message says which case and the child's last error line."""


def _child(folder: Path, case: str, analysis: str, steps: int, repeat: int, tiny: bool, threads: int | None) -> dict:
    args = [sys.executable, "-m", "bench.user_models", "--child",
            json.dumps([str(folder), case, analysis, steps, repeat, tiny, threads])]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run(args, cwd=Path(__file__).resolve().parent.parent, env=env, capture_output=True, text=True,
                         check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        last = next((ln for ln in reversed(out.stderr.splitlines()) if ln.strip()), "no message")
        killed = " (killed: out of memory?)" if out.returncode < 0 else ""
        raise CaseFailed(f"{case} / {analysis} failed with exit code {out.returncode}{killed}: {last.strip()[:500]}; "
                         f"run it alone with --cases {case} --analyses {analysis} to see all of its output")
    return json.loads(lines[-1])


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} on {os.cpu_count()} cores"


def table(rows: list[dict]) -> str:
    """The rows as a markdown table."""
    head = ("| model | tokens | analysis | path points | analysis (s) | first call (s) | floor fwd+bwd (s) | ratio | "
            "goal <= 1.3 | evaluations in passes (floor: 1 pass) | peak MB analysis | first call | floor |\n"
            "|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    lines = [f"| {r['case']} | {r['tokens']} | {r['analysis']} | {r['path_points']} | {r['analysis_s']:.2f} | "
             f"{r['first_s']:.2f} | {r['floor_s']:.2f} | {r['ratio']:.2f} | {'yes' if r['ratio'] <= GOAL else 'no'} | "
             f"{r['evaluations']} in {r['passes']} ({r['floor_evaluations']}) | {r['analysis_peak_mb']:.0f} | "
             f"{r['first_peak_mb']:.0f} | {r['floor_peak_mb']:.0f} |"
             for r in rows]
    return "\n".join([head, *lines])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zooscope bench user", description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    p.add_argument("--analyses", default=",".join(ANALYSES), help=f"comma-separated, of {', '.join(ANALYSES)}")
    p.add_argument("--steps", type=int, default=16, help="Integrated Gradients steps (path points)")
    p.add_argument("--steps-512", type=int, default=8, help="steps on the 512-token text (its passes are 5x dearer)")
    p.add_argument("--repeat", type=int, default=1, help="timed calls after the first (the fastest is reported)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op CPU threads (default: torch's own)")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    p.add_argument("--tiny", action="store_true", help="2-layer, hidden-32 models: the same path in seconds")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table (or JSON); returns the exit code."""
    args = _parser().parse_args(argv)
    if args.child:
        folder, case, analysis, steps, repeat, tiny, threads = json.loads(args.child)
        import torch

        if threads:
            torch.set_num_threads(threads)
        print(json.dumps(run_case(folder, case, analysis, steps, repeat, tiny)), flush=True)
        return 0
    cases = [c for c in args.cases.split(",") if c]
    analyses = [a for a in args.analyses.split(",") if a]
    bad = [c for c in cases if c not in CASES] + [a for a in analyses if a not in ANALYSES]
    if bad or args.steps < 2 or args.steps_512 < 2 or args.repeat < 1:
        print(f"zooscope bench user: unknown case or analysis {', '.join(bad)}; cases: {', '.join(CASES)}; analyses: "
              f"{', '.join(ANALYSES)}" if bad else
              "zooscope bench user: --steps and --steps-512 must be at least 2 and --repeat at least 1",
              file=sys.stderr)
        return 2
    started, load_start = time.perf_counter(), load_line()
    rows = []
    with tempfile.TemporaryDirectory(prefix="zooscope-bench-user-") as tmp:
        folders: dict[str, Path] = {}
        for case in cases:
            kind = "vit" if case == "vit-b16" else "bert"
            if kind not in folders:
                writer = write_vit if kind == "vit" else write_bert
                folders[kind] = writer(Path(tmp) / ("vit-b16" if kind == "vit" else "bert-base"), args.tiny)
            for analysis in analyses:
                steps = args.steps_512 if case == "bert-512" else args.steps
                try:
                    rows.append(_child(folders[kind], case, analysis, steps, args.repeat, args.tiny, args.threads))
                except CaseFailed as e:
                    print(f"zooscope bench user: {e}", file=sys.stderr)
                    return 1
                if not args.json:
                    print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    report = {"rows": rows, "load_start": load_start, "load_end": load_line(), "loadavg_end": os.getloadavg(),
              "seconds": time.perf_counter() - started, "tiny": args.tiny, "goal": GOAL}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    threads = rows[0]["threads"] if rows else "?"
    print(f"cpu, {threads} torch threads; {'tiny models; ' if args.tiny else ''}IG: gausslegendre, black image / "
          f"[PAD] baseline, internal batch automatic; peak memory: {rows[0]['memory'] if rows else '?'}")
    print(f"{load_start} at the start, {report['load_end']} at the end; {report['seconds']:.0f} s in all\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
