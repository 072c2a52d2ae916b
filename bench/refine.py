"""Progressive Integrated Gradients against the fixed-steps run, in the same sitting.

Three figures per model, each beside the fixed default (64 Gauss-Legendre steps, one shot):
time to the first heatmap (the first refinement level; the fixed run shows nothing before it ends),
time to the result that passes completeness (relative error <= 5 %), and the gradient evaluations
spent. Models: ViT-B/16 at 224x224 and BERT-base at 128 tokens (transformers, random weights, eager
attention) and the zoo's image models on held-out digits, where it also gives the distribution of
the steps each digit needed, for every refinement rule.

    zooscope bench refine [--models vit-dot,capsnet] [--digits 50] [--big vit-b16,bert-base] [--threads 1]
                          [--rules trapezoid,midpoint,gausslegendre]
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np
import torch

FIXED_STEPS = 64  # today's default: IGParams().n_steps, gausslegendre


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zooscope bench refine", description=__doc__.splitlines()[0])
    p.add_argument("--models", default="", help="comma-separated zoo image models (default: every one)")
    p.add_argument("--digits", type=int, default=50, help="held-out digits per zoo model, one at a time")
    p.add_argument("--rules", default="midpoint,trapezoid,gausslegendre")
    p.add_argument("--big", default="vit-b16,bert-base", help="transformers models (random weights); '' for none")
    p.add_argument("--big-batch", type=int, default=4, help="path points per pass on the big models")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op CPU threads")
    return p


# --------------------------------------------------------------------------- the zoo, held-out digits


def zoo_rows(name: str, digits: int, rules: list[str]) -> tuple[list[dict], dict[str, collections.Counter]]:
    """Per rule (and the fixed run): evaluations, passing share and times over ``digits`` held-out digits."""
    from analyzers import IGParams
    from analyzers.attribution import attribute_with_targets
    from analyzers.refine import refine
    from model_zoo import get_spec, load, load_split

    spec, model = get_spec(name), load(name)
    x_all = torch.from_numpy(load_split().x_heldout[:digits].astype(np.float32) / 255.0).unsqueeze(1)
    params = IGParams()
    with torch.no_grad():
        scores = model.scores(x_all) if spec.family != "vae" else model.encode(x_all)[0]
    targets = scores.argmax(1) if spec.family != "vae" else scores.abs().argmax(1)
    stats = {r: collections.defaultdict(list) for r in ["fixed", *rules]}
    steps = {r: collections.Counter() for r in rules}
    for i in range(digits):
        x = x_all[i:i + 1]
        t0 = time.perf_counter()
        fixed = attribute_with_targets(model, spec, x, "integrated_gradients", params, targets[i:i + 1])
        s = stats["fixed"]
        s["time"].append(time.perf_counter() - t0)
        s["first"].append(s["time"][-1])
        s["evals"].append(FIXED_STEPS)
        s["passed"].append(float(fixed.rel_error[0]) <= 0.05)
        for rule in rules:
            t0, first = time.perf_counter(), None
            for step in refine(model, spec, x, "integrated_gradients", params, rule=rule):
                first = first if first is not None else time.perf_counter() - t0
            s = stats[rule]
            s["time"].append(time.perf_counter() - t0)
            s["first"].append(first)
            s["evals"].append(step.evaluations)
            s["passed"].append(step.passed)
            steps[rule][step.steps if step.passed else f">{step.steps} (cap)"] += 1
    rows = []
    for rule, s in stats.items():
        rows.append({"model": name, "rule": rule, "digits": digits, "passed": float(np.mean(s["passed"])),
                     "evals": float(np.sum(s["evals"])), "median_evals": float(np.median(s["evals"])),
                     "first_s": float(np.median(s["first"])), "done_s": float(np.median(s["time"]))})
    fixed_evals = rows[0]["evals"]
    for r in rows:
        r["ratio"] = r["evals"] / fixed_evals
    return rows, steps


def zoo_table(rows: list[dict]) -> str:
    head = ("| model | run | digits passing (<= 5 %) | evaluations (all digits) | x fixed | median per digit | "
            "first heatmap (median s) | done (median s) |\n|---|---|---:|---:|---:|---:|---:|---:|")
    lines = [f"| {r['model']} | {'fixed 64 GL' if r['rule'] == 'fixed' else 'refined, ' + r['rule']} | "
             f"{r['passed']:.0%} | {r['evals']:.0f} | {r['ratio']:.2f} | {r['median_evals']:.0f} | "
             f"{r['first_s']:.3f} | {r['done_s']:.3f} |" for r in rows]
    return "\n".join([head, *lines])


def steps_table(name: str, steps: dict[str, collections.Counter]) -> str:
    lines = []
    for rule, counts in steps.items():
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=lambda kv: (isinstance(kv[0], str),
                                                                                          str(kv[0]).zfill(6))))
        lines.append(f"- {name}, {rule}: steps needed -> digits: {parts} (fixed default: {FIXED_STEPS} for every digit)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- transformers at real sizes


def _vit_b16():
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    model = ViTForImageClassification(ViTConfig(attn_implementation="eager")).eval().requires_grad_(False)
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    return (lambda v: model(pixel_values=v * 2 - 1).logits), x, torch.zeros_like(x)


def _bert_base():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(attn_implementation="eager")
    model = BertForSequenceClassification(cfg).eval().requires_grad_(False)
    ids = torch.randint(1000, cfg.vocab_size, (1, 128), generator=torch.Generator().manual_seed(0))
    ids[0, 0], ids[0, -1] = 101, 102  # [CLS] ... [SEP]
    base_ids = torch.full_like(ids, cfg.pad_token_id)
    base_ids[0, 0], base_ids[0, -1] = 101, 102
    emb = model.bert.embeddings.word_embeddings
    return (lambda e: model(inputs_embeds=e).logits), emb(ids).detach(), emb(base_ids).detach()


def big_rows(name: str, rules: list[str], batch: int) -> list[dict]:
    """The same figures on one input of a transformers model: IG in its input (or word-embedding) space."""
    from captum.attr import IntegratedGradients

    from analyzers.refine import path_integral

    f, x, b = {"vit-b16": _vit_b16, "bert-base": _bert_base}[name]()
    with torch.no_grad():
        t = f(x).argmax(1)
    rows = []
    for rule in rules:
        t0, first = time.perf_counter(), None
        for lv in path_integral(f, x, b, t, rule=rule, batch=batch):
            first = first if first is not None else time.perf_counter() - t0
        total, err = time.perf_counter() - t0, float(lv["rel"].max())
        rows.append({"model": name, "rule": rule, "first_s": first, "pass_s": total if err <= 0.05 else float("nan"),
                     "evals": lv["points"], "steps": lv["steps"], "error": err})
        print(big_table(rows[-1:]).splitlines()[-1], flush=True)
    t0 = time.perf_counter()
    fixed = IntegratedGradients(f).attribute(x, b, target=t, n_steps=FIXED_STEPS, internal_batch_size=batch)
    done = time.perf_counter() - t0
    with torch.no_grad():
        gap = float(f(x)[0, t] - f(b)[0, t])
    rel = abs(float(fixed.sum()) - gap) / max(abs(gap), 1e-4)
    rows.insert(0, {"model": name, "rule": "fixed", "first_s": done, "pass_s": done if rel <= 0.05 else float("nan"),
                    "evals": FIXED_STEPS, "steps": FIXED_STEPS, "error": rel})
    return rows


def big_table(rows: list[dict]) -> str:
    head = ("| model | run | first heatmap (s) | passing result (s) | evaluations | x fixed | steps | completeness "
            "error |\n|---|---|---:|---:|---:|---:|---:|---:|")
    lines = [f"| {r['model']} | {'fixed 64 GL' if r['rule'] == 'fixed' else 'refined, ' + r['rule']} | "
             f"{r['first_s']:.2f} | {r['pass_s']:.2f} | {r['evals']} | {r['evals'] / FIXED_STEPS:.2f} | {r['steps']} | "
             f"{r['error']:.2%} |" for r in rows]
    return "\n".join([head, *lines])


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables; returns the exit code."""
    import os

    from model_zoo import REGISTRY

    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rules = [r for r in args.rules.split(",") if r]
    print(f"cpu ({torch.get_num_threads()} threads), torch {torch.__version__}; load average "
          f"{' / '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} cores at the start\n", flush=True)
    big = [n for n in args.big.split(",") if n]
    if big:
        rows = [r for name in big for r in big_rows(name, rules, args.big_batch)]
        print(big_table(rows) + "\n", flush=True)
    names = [n for n in args.models.split(",") if n] or [
        n for n, s in REGISTRY.items() if s.input.modality == "image" and "gradients" in s.capabilities
        and s.checkpoint_path is not None and s.checkpoint_path.exists()]
    rows, dists = [], []
    for name in names if args.digits > 0 else []:
        r, steps = zoo_rows(name, args.digits, rules)
        rows += r
        dists.append(steps_table(name, steps))
        print(zoo_table(r), flush=True)
    print("\n" + zoo_table(rows) + "\n\n" + "\n".join(dists))
    print(f"\nload average {' / '.join(f'{v:.2f}' for v in os.getloadavg())} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
