"""Thin wrappers that give Hugging Face models the zoo's analysis interface (issue 17).

Each adapter holds the ``transformers`` model as ``.hf`` in eval mode with its parameters frozen, and
exposes what the analyzers need explicitly: scores (logits) from inputs the zoo's way (images in
[0, 1], normalised inside; token ids with their mask), attention probabilities when the model has
them (eager attention, so they are materialised), and the embedding layer for layer attributions.
Nothing here reads a file: ``model_zoo.sources`` checks a folder and hands the loaded parts in.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .minilm import MiniLMOutput


@dataclass
class ClassifierOutput:
    """Class scores and the attention probabilities of every layer when asked (() for models without)."""

    logits: torch.Tensor  # (B, K)
    attentions: tuple[torch.Tensor, ...] = ()  # each (B, heads, T, T)


def has_attention(hf: nn.Module) -> bool:
    """True when a transformers model can return attention probabilities (ViT, BERT; not ResNet, ConvNeXt)."""
    recorded = getattr(hf, "_can_record_outputs", None) or {}
    if "attentions" in recorded:
        return True
    return "output_attentions" in inspect.signature(hf.forward).parameters and any(
        "attention" in type(m).__name__.lower() for m in hf.modules())


def _freeze(hf: nn.Module) -> nn.Module:
    return hf.eval().requires_grad_(False)


def _accepts(hf: nn.Module, name: str) -> bool:
    params = inspect.signature(hf.forward).parameters
    return name in params


@dataclass(frozen=True)
class ImagePrep:
    """How the folder's image processor prepares a picture: resize, centre crop, then mean/std."""

    channels: int
    image_size: tuple[int, int]  # (H, W) the model sees
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: tuple[int, int] | int | None = None  # (H, W), or an int: the shortest edge
    crop: tuple[int, int] | None = None  # centre crop (H, W) after the resize
    resample: int = 2  # PIL's code (2 = bilinear, 3 = bicubic)

    def describe(self) -> str:
        steps = []
        if isinstance(self.resize, int):
            steps.append(f"shortest edge resized to {self.resize} px")
        elif self.resize:
            steps.append(f"resized to {self.resize[0]}x{self.resize[1]}")
        if self.crop:
            steps.append(f"centre-cropped to {self.crop[0]}x{self.crop[1]}")
        mode = "RGB" if self.channels == 3 else ("grey" if self.channels == 1 else f"{self.channels} channels")
        mean = ", ".join(f"{m:.3g}" for m in self.mean)
        std = ", ".join(f"{s:.3g}" for s in self.std)
        return (f"{mode} {self.image_size[0]}x{self.image_size[1]}: " + (", ".join(steps) + "; " if steps else "")
                + f"pixels in [0, 1], then (x - mean) / std with mean ({mean}), std ({std}) inside the model "
                "(from preprocessor_config.json)")


class HFImageClassifier(nn.Module):
    """Any AutoModelForImageClassification: scores(x) on (B, C, H, W) in [0, 1] at image_size."""

    def __init__(self, hf: nn.Module, prep: ImagePrep):
        super().__init__()
        self.hf = _freeze(hf)
        self.prep = prep
        self.channels = prep.channels
        self.image_size = tuple(prep.image_size)
        self.mean = tuple(prep.mean)
        self.std = tuple(prep.std)
        self.has_attention = has_attention(hf)
        self.register_buffer("_mean", torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._mean.to(x.dtype)) / self._std.to(x.dtype)

    def forward(self, x: torch.Tensor, output_attentions: bool = False) -> ClassifierOutput:
        """x (B, C, H, W) in [0, 1] -> logits (B, K) and, when asked and present, attentions per layer."""
        kw = {"output_attentions": True} if output_attentions and self.has_attention else {}
        out = self.hf(pixel_values=self.normalise(x), **kw)
        return ClassifierOutput(out.logits, tuple(getattr(out, "attentions", None) or ()))

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, K) for images (B, C, H, W) in [0, 1]."""
        return self.hf(pixel_values=self.normalise(x)).logits

    def preprocess(self, image: Any) -> torch.Tensor:
        """A PIL image -> (C, H, W) float in [0, 1] at image_size, the way the folder's processor resizes/crops."""
        from PIL import Image

        p = self.prep
        img = image.convert("RGB" if p.channels == 3 else "L")
        if isinstance(p.resize, int):
            w, h = img.size
            s = p.resize / min(w, h)
            img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling(p.resample))
        elif p.resize:
            img = img.resize((p.resize[1], p.resize[0]), Image.Resampling(p.resample))
        if p.crop:
            w, h = img.size
            ch, cw = min(p.crop[0], h), min(p.crop[1], w)
            left, top = (w - cw) // 2, (h - ch) // 2
            img = img.crop((left, top, left + cw, top + ch))
        if img.size != (self.image_size[1], self.image_size[0]):
            img = img.resize((self.image_size[1], self.image_size[0]), Image.Resampling(p.resample))
        data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        x = data.view(img.size[1], img.size[0], -1).permute(2, 0, 1).float() / 255.0
        if x.shape[0] != p.channels:  # a processor for a model with an unusual channel count: repeat grey
            x = x[:1].expand(p.channels, -1, -1).clone()
        return x


class _TextBase(nn.Module):
    def __init__(self, hf: nn.Module, tokenizer: Any, max_tokens: int):
        super().__init__()
        self.hf = _freeze(hf)
        self.tokenizer = tokenizer
        self.max_tokens = int(max_tokens)
        self.has_attention = has_attention(hf)

    @property
    def embedding_layer(self) -> nn.Module:
        """The token embedding layer (what layer Integrated Gradients attributes through)."""
        return self.hf.get_input_embeddings()

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """input_ids and attention_mask (B, T) on the model's device, padded, truncated to max_tokens."""
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt")
        device = next(self.hf.parameters()).device
        return {k: enc[k].to(device) for k in ("input_ids", "attention_mask")}

    def _run(self, input_ids, attention_mask, output_attentions, inputs_embeds, token_type_ids):
        kw: dict[str, Any] = {"attention_mask": attention_mask}
        if inputs_embeds is not None:
            kw["inputs_embeds"] = inputs_embeds
        else:
            kw["input_ids"] = input_ids
        if token_type_ids is not None and _accepts(self.hf, "token_type_ids"):
            kw["token_type_ids"] = token_type_ids
        if output_attentions and self.has_attention:
            kw["output_attentions"] = True
        return self.hf(**kw)


class HFTextClassifier(_TextBase):
    """Any AutoModelForSequenceClassification: scores(input_ids, attention_mask) -> logits (B, K)."""

    def forward(self, input_ids=None, attention_mask=None, output_attentions=False, inputs_embeds=None,
                token_type_ids=None) -> ClassifierOutput:
        out = self._run(input_ids, attention_mask, output_attentions, inputs_embeds, token_type_ids)
        return ClassifierOutput(out.logits, tuple(getattr(out, "attentions", None) or ()))

    def scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.forward(input_ids, attention_mask).logits


def pooled(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Sentence embedding from token states (B, T, C) and mask (B, T): mean, cls or max pooling."""
    if mode == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).amax(1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class HFSentenceEncoder(_TextBase):
    """An AutoModel encoder with sentence-transformers pooling (mean when the folder says nothing): as MiniLMEncoder."""

    def __init__(self, hf: nn.Module, tokenizer: Any, max_tokens: int, pooling: str = "mean", normalize: bool = False):
        super().__init__(hf, tokenizer, max_tokens)
        self.pooling = pooling
        self.normalize = normalize

    def forward(self, input_ids=None, attention_mask=None, output_attentions=False, inputs_embeds=None,
                token_type_ids=None) -> MiniLMOutput:
        out = self._run(input_ids, attention_mask, output_attentions, inputs_embeds, token_type_ids)
        if attention_mask is None:
            ref = input_ids if input_ids is not None else inputs_embeds[..., 0]
            attention_mask = torch.ones(ref.shape[:2], dtype=torch.long, device=ref.device)
        emb = pooled(out.last_hidden_state, attention_mask, self.pooling)
        if self.normalize:
            emb = F.normalize(emb, dim=-1)
        return MiniLMOutput(emb, out.last_hidden_state, tuple(getattr(out, "attentions", None) or ()))

    def embed(self, texts: list[str]) -> torch.Tensor:
        enc = self.tokenize(texts)
        return self.forward(enc["input_ids"], enc["attention_mask"]).embeddings


class HFGenerative(_TextBase):
    """A sequence-to-sequence or causal language model: greedy generation, token by token."""

    def __init__(self, hf: nn.Module, tokenizer: Any, max_tokens: int, kind: str):
        super().__init__(hf, tokenizer, max_tokens)
        self.kind = kind  # "seq2seq" | "causal-lm"

    def forward(self, input_ids=None, attention_mask=None, output_attentions=False, inputs_embeds=None, **kw):
        """The transformers forward (logits over the vocabulary; attentions when asked and present)."""
        if output_attentions and self.has_attention:
            kw["output_attentions"] = True
        if inputs_embeds is not None:
            return self.hf(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kw)
        return self.hf(input_ids=input_ids, attention_mask=attention_mask, **kw)

    @torch.no_grad()
    def generate_ids(self, text: str, max_new_tokens: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompt ids (1, T), new token ids (N,)) by greedy decoding."""
        enc = self.tokenize([text])
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        out = self.hf.generate(**enc, max_new_tokens=int(max_new_tokens), do_sample=False, num_beams=1,
                               pad_token_id=pad)
        new = out[0] if self.kind == "seq2seq" else out[0, enc["input_ids"].shape[1]:]
        if self.kind == "seq2seq" and len(new) and int(new[0]) == self.hf.config.decoder_start_token_id:
            new = new[1:]
        return enc["input_ids"], new

    def generate(self, text: str, max_new_tokens: int = 20) -> list[str]:
        """The generated tokens as strings (greedy, at most max_new_tokens)."""
        _, new = self.generate_ids(text, max_new_tokens)
        return self.tokenizer.convert_ids_to_tokens(new.tolist())
