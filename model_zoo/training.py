"""Training recipes as code: ``train(spec) -> TrainResult``, deterministic under a seed.

Each run trains on the named split's training part, measures on its held-out part,
writes the checkpoint (safetensors with its config, metrics, recipe and split hash in the
header) and records the same facts in the checkpoint manifest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import capsnet as capsnet_mod
from . import moe as moe_mod
from . import vae as vae_mod
from .checkpoint import build, config_dict, save_checkpoint
from .data import Split, load_split
from .spec import CHECKPOINT_DIR, MANIFEST, ModelSpec, TrainRecipe

VERSION = "0.1.0"
CAPSNET_RECON_WEIGHT = 0.0005  # the paper's scale-down of the reconstruction SSE


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced: where, how well, how long."""

    name: str
    checkpoint: str
    sha256: str
    metrics: dict[str, float]
    epochs: int
    seconds: float
    first_loss: float
    last_loss: float


def code_version(spec: ModelSpec) -> str:
    """Package version plus a hash of the model family's source file."""
    src = inspect.getsource(inspect.getmodule(spec.builder)).encode()
    return f"{VERSION}+{hashlib.sha256(src).hexdigest()[:12]}"


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by a random integer offset in [-max_shift, max_shift] pixels."""
    if max_shift <= 0:
        return x
    B, _, H, W = x.shape
    s = torch.randint(-max_shift, max_shift + 1, (B, 2), generator=gen).to(x.dtype)
    theta = torch.zeros(B, 2, 3, dtype=x.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2], theta[:, 1, 2] = -2 * s[:, 0] / W, -2 * s[:, 1] / H
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _tensors(split: Split, part: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = (split.x_train, split.y_train) if part == "train" else (split.x_heldout, split.y_heldout)
    return torch.from_numpy(x).float().div(255).unsqueeze(1), torch.from_numpy(y).long()  # (N, 1, 28, 28)


def _loss_fn(spec: ModelSpec) -> Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]:
    if spec.family == "vae":
        return lambda m, x, y, g: vae_mod.negative_elbo(x, m(x, generator=g)).mean()
    if spec.family == "moe":  # cross-entropy plus the MoE layers' importance and load losses
        return lambda m, x, y, g: moe_mod.moe_loss(m, x, y)
    if spec.family == "capsule":
        def caps_loss(m, x, y, g):
            out = m(x)
            recon = m.reconstruct(out.poses, y)
            sse = (recon - x).pow(2).flatten(1).sum(1).mean()
            return capsnet_mod.margin_loss(out.lengths, y) + CAPSNET_RECON_WEIGHT * sse
        return caps_loss
    return lambda m, x, y, g: F.cross_entropy(m(x), y, label_smoothing=0.05)


@torch.no_grad()
def evaluate(spec: ModelSpec, model: nn.Module, split: Split, batch_size: int = 250) -> dict[str, float]:
    """Held-out metrics: accuracy for classifiers; negative ELBO (nats/image), KL and active units for VAEs."""
    model.eval()
    if spec.family != "vae":
        predicted = heldout_predictions(model, split, batch_size)
        return {"accuracy": round(float(np.mean(predicted == split.y_heldout)), 4)}
    device = next(model.parameters()).device
    x_all, _ = _tensors(split, "heldout")
    gen = torch.Generator(device="cpu").manual_seed(0)
    total, nelbo, kl = 0, 0.0, 0.0
    for i in range(0, len(x_all), batch_size):
        x = x_all[i : i + batch_size].to(device)
        total += len(x)
        mu, logvar = model.encode(x)
        eps = torch.randn(mu.shape, generator=gen).to(device)
        out = vae_mod.VAEOutput(model.decode_logits(mu + (0.5 * logvar).exp() * eps), mu, logvar, mu)
        nelbo += vae_mod.negative_elbo(x, out).sum().item()
        kl += vae_mod.kl_per_dim(mu, logvar).sum().item()
    return {"neg_elbo_nats": round(nelbo / total, 3), "kl_nats": round(kl / total, 3)}


def heldout_predictions(model: nn.Module, split: Split, batch_size: int = 250) -> np.ndarray:
    """The class a classifier predicts for every held-out image, (N,) int64 in split order (no gradients)."""
    device = next(model.parameters()).device
    x_all, _ = _tensors(split, "heldout")
    with torch.no_grad():
        return torch.cat([model.scores(x_all[i: i + batch_size].to(device)).argmax(1).cpu()
                          for i in range(0, len(x_all), batch_size)]).numpy()


def _schedule(opt: torch.optim.Optimizer, total_steps: int, lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, total_steps // 20)
    f = lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total_steps)))
    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def fit(spec: ModelSpec, split: Split, recipe: TrainRecipe, progress: bool = True,
        max_steps: int | None = None) -> tuple[nn.Module, list[float]]:
    """Train a fresh model for the spec with the recipe; return it and the per-epoch mean losses."""
    from tqdm.auto import tqdm

    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    model = build(spec).train()
    x_all, y_all = _tensors(split, "train")
    loss_fn = _loss_fn(spec)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = math.ceil(len(x_all) / recipe.batch_size)
    total = max_steps or recipe.epochs * steps_per_epoch
    sched, losses, step = _schedule(opt, total, recipe.lr), [], 0
    bar = tqdm(total=total, desc=f"train {spec.name}", disable=not progress, unit="step")
    while step < total:
        perm, epoch_loss = torch.randperm(len(x_all), generator=gen), []
        for i in range(0, len(x_all), recipe.batch_size):
            idx = perm[i : i + recipe.batch_size]
            x = random_shift(x_all[idx], recipe.max_shift, gen)
            loss = loss_fn(model, x, y_all[idx], gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step(), sched.step()
            epoch_loss.append(loss.item())
            step += 1
            bar.update(1), bar.set_postfix(loss=f"{loss.item():.4f}")
            if step >= total:
                break
        losses.append(sum(epoch_loss) / len(epoch_loss))
    bar.close()
    return model.eval(), losses


def update_manifest(name: str, entry: dict[str, Any], directory: Path = CHECKPOINT_DIR) -> None:
    """Record one model's checkpoint facts in the manifest (sorted JSON, rewritten atomically)."""
    path = directory / MANIFEST
    manifest = json.loads(path.read_text()) if path.exists() else {}
    manifest[name] = entry
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def train(spec: ModelSpec, data_dir: str | None = None, out_dir: Path | None = None, progress: bool = True,
          epochs: int | None = None, max_steps: int | None = None) -> TrainResult:
    """Train a zoo model, measure it on the held-out split, and write its checkpoint and manifest entry."""
    if spec.recipe is None:
        raise ValueError(f"{spec.name} is pretrained; there is nothing to train")
    if spec.family == "seq2seq":  # G2P on CMUdict has its own data, batching and metrics
        from .g2p_training import train_g2p
        return train_g2p(spec, out_dir=out_dir, progress=progress, epochs=epochs, max_steps=max_steps)
    if spec.family == "text-classifier":  # minilm-sentiment: a delta over the shipped MiniLM, on sentences
        from .sentiment_training import train as train_sentiment
        return train_sentiment(spec, out_dir=out_dir, progress=progress, epochs=epochs, max_steps=max_steps)
    recipe = dataclasses.replace(spec.recipe, epochs=epochs or spec.recipe.epochs)
    split = load_split(data_dir)
    t0 = time.perf_counter()
    model, losses = fit(spec, split, recipe, progress=progress, max_steps=max_steps)
    seconds = round(time.perf_counter() - t0, 1)
    metrics = evaluate(spec, model, split)
    meta = {
        "name": spec.name, "config": config_dict(spec), "metrics": metrics, "recipe": dataclasses.asdict(recipe),
        "epochs": len(losses), "seconds": seconds, "split": split.name, "split_sha256": split.sha256,
        "code_version": code_version(spec), "torch": torch.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    directory = out_dir or CHECKPOINT_DIR
    sha = save_checkpoint(model, directory / spec.checkpoint, meta)
    update_manifest(spec.name, {**meta, "sha256": sha, "checkpoint": spec.checkpoint}, directory)
    return TrainResult(spec.name, str(directory / spec.checkpoint), sha, metrics, len(losses), seconds,
                       losses[0], losses[-1])
