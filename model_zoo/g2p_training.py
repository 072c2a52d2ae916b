"""The G2P recipe: teacher-forced cross-entropy on CMUdict, batches of similar length, held-out PER/WER.

``zooscope train g2p-soft`` reaches ``train_g2p`` through ``model_zoo.training.train``. The run is
deterministic under the recipe's seed (one CPU thread by default), writes the safetensors
checkpoint with its config, metrics, recipe and split hash in the header, and records the same
facts in the manifest, including the metrics on the fixed first ``SUBSET`` held-out words that the
tests re-measure.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import build, config_dict, save_checkpoint
from .g2p import BOS, EOS, PAD, G2P, G2PSplit, encode_word, load_g2p_split, phone_ids
from .spec import CHECKPOINT_DIR, ModelSpec, TrainRecipe
from .training import TrainResult, _schedule, code_version, update_manifest

SUBSET = 1000  # held-out words re-measured by the checkpoint test


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance between two token sequences."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def score(predictions: Sequence[Sequence[int]], references: Sequence[Sequence[Sequence[int]]]) -> dict[str, float]:
    """PER (edits to the closest reference / its length, summed over words) and WER (words matching no reference)."""
    edits = length = wrong = 0
    for pred, refs in zip(predictions, references):
        d, ref = min((edit_distance(pred, r), r) for r in refs)
        edits, length, wrong = edits + d, length + len(ref), wrong + (d > 0)
    return {"per": round(edits / max(1, length), 4), "wer": round(wrong / max(1, len(predictions)), 4)}


def _pad(rows: list[list[int]]) -> torch.Tensor:
    n = max(len(r) for r in rows)
    return torch.tensor([r + [PAD] * (n - len(r)) for r in rows], dtype=torch.long)


def batches(words: Sequence[tuple[str, Sequence[str]]], batch_size: int, gen: torch.Generator) -> list[list[int]]:
    """Indices grouped into batches of words of similar length (random order inside a length), shuffled."""
    noise = torch.rand(len(words), generator=gen).tolist()
    order = sorted(range(len(words)), key=lambda i: (len(words[i][0]), noise[i]))
    groups = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    perm = torch.randperm(len(groups), generator=gen).tolist()
    return [groups[i] for i in perm]


def make_batch(words: Sequence[tuple[str, Sequence[str]]], idx: list[int]) -> tuple[torch.Tensor, ...]:
    x = _pad([encode_word(words[i][0]) for i in idx])
    y = [phone_ids(words[i][1]) for i in idx]
    return x, _pad([[BOS] + p for p in y]), _pad([p + [EOS] for p in y])


def loss_on(model: G2P, x: torch.Tensor, y_in: torch.Tensor, y_out: torch.Tensor, gen: torch.Generator | None,
            noise: bool = True) -> torch.Tensor:
    logits = model(x, y_in, noise=noise, generator=gen)
    return F.cross_entropy(logits.flatten(0, 1), y_out.flatten(), ignore_index=PAD)


def fit_g2p(spec: ModelSpec, split: G2PSplit, recipe: TrainRecipe, progress: bool = True,
            max_steps: int | None = None, words: Sequence | None = None,
            init: G2P | None = None) -> tuple[G2P, list[float]]:
    """Train a fresh G2P model (or go on training ``init``); return it (eval mode) and the per-epoch mean losses."""
    from tqdm.auto import tqdm

    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    model = (init if init is not None else build(spec)).train().requires_grad_(True)
    data = words if words is not None else split.train
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    per_epoch = math.ceil(len(data) / recipe.batch_size)
    total = max_steps or recipe.epochs * per_epoch
    sched, losses, step = _schedule(opt, total, recipe.lr), [], 0
    bar = tqdm(total=total, desc=f"train {spec.name}", disable=not progress, unit="step", mininterval=5)
    while step < total:
        epoch = []
        for idx in batches(data, recipe.batch_size, gen):
            loss = loss_on(model, *make_batch(data, idx), gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step(), sched.step()
            epoch.append(loss.item())
            step += 1
            bar.update(1), bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            if step >= total:
                break
        losses.append(sum(epoch) / len(epoch))
    bar.close()
    return model.eval(), losses


@torch.no_grad()
def evaluate_g2p(model: G2P, split: G2PSplit, limit: int | None = None, batch_size: int = 500) -> dict[str, float]:
    """PER and WER of greedy (hard, for monotonic) decoding on the held-out words (the first ``limit``)."""
    model.eval()
    items = split.heldout[:limit]
    order = sorted(range(len(items)), key=lambda i: len(items[i][0]))
    preds: dict[int, list[int]] = {}
    for k in range(0, len(order), batch_size):
        idx = order[k: k + batch_size]
        x = _pad([encode_word(items[i][0]) for i in idx]).to(model.s0.device)
        for i, p in zip(idx, model.decode_batch(x)):
            preds[i] = p
    refs = [[phone_ids(v) for v in variants] for _, variants in items]
    return score([preds[i] for i in range(len(items))], refs)


def train_g2p(spec: ModelSpec, out_dir=None, progress: bool = True, epochs: int | None = None,
              max_steps: int | None = None, threads: int = 1, stage1: str | None = None) -> TrainResult:
    """Train, measure on the held-out words, write the checkpoint and its manifest entry.

    A spec with ``extra["finetune"] = {"epochs": E, "lr": LR}`` goes on after the recipe for E more
    epochs from that model, with a fresh warm-up and cosine schedule at LR and seed + 1. ``stage1``
    (a checkpoint this recipe's first stage wrote, with its seconds) skips re-running that stage.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        recipe = dataclasses.replace(spec.recipe, epochs=epochs or spec.recipe.epochs)
        split = load_g2p_split()
        t0 = time.perf_counter()
        if stage1 is None:
            model, losses = fit_g2p(spec, split, recipe, progress=progress, max_steps=max_steps)
            before = 0.0
        else:
            from safetensors.torch import load_file

            from .checkpoint import read_metadata
            model = build(spec)
            model.load_state_dict(load_file(stage1))
            meta1 = read_metadata(Path(stage1))
            losses, before = list(meta1["losses"]), float(meta1["seconds"])
        stages = [{"epochs": recipe.epochs, "lr": recipe.lr, "seed": recipe.seed}]
        tune = spec.extra.get("finetune")
        if tune and max_steps is None:
            stages.append({"epochs": tune["epochs"], "lr": tune["lr"], "seed": recipe.seed + 1})
            more = dataclasses.replace(recipe, epochs=tune["epochs"], lr=tune["lr"], seed=recipe.seed + 1)
            model, extra_losses = fit_g2p(spec, split, more, progress=progress, init=model)
            losses += extra_losses
        seconds = round(before + time.perf_counter() - t0, 1)
        metrics = evaluate_g2p(model, split)
        subset = evaluate_g2p(model, split, limit=SUBSET)
    finally:
        torch.set_num_threads(old)
    meta = {
        "name": spec.name, "config": config_dict(spec), "metrics": metrics, "recipe": dataclasses.asdict(recipe),
        "epochs": len(losses), "seconds": seconds, "split": split.name, "split_sha256": split.sha256,
        "source_sha256": split.source_sha256, "heldout_words": len(split.heldout), "train_words": len(split.train),
        f"metrics_first_{SUBSET}": subset, "losses": [round(x, 4) for x in losses], "stages": stages,
        "code_version": code_version(spec), "torch": torch.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    directory = out_dir or CHECKPOINT_DIR
    sha = save_checkpoint(model, directory / spec.checkpoint, meta)
    update_manifest(spec.name, {**meta, "sha256": sha, "checkpoint": spec.checkpoint}, directory)
    return TrainResult(spec.name, str(directory / spec.checkpoint), sha, metrics, len(losses), seconds,
                       losses[0], losses[-1])
