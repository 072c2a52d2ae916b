"""The user's own Hugging Face model folders: discover, check, describe as a ModelSpec, load (issue 17).

A folder is ``config.json`` + ``model.safetensors`` (or a sharded index) + its tokenizer or
``preprocessor_config.json``. The task comes from ``config.architectures``. Everything in
``model_zoo.safety`` runs before anything is allocated; loading then goes through ``from_pretrained``
with ``use_safetensors=True``, ``local_files_only=True``, never ``trust_remote_code``, eager attention.

Folders are named by whoever runs the server (``zooscope serve --model PATH``, ``ZOOSCOPE_MODELS``),
never by a browser visitor. This module keeps the table of registered folders; ``model_zoo.registry``
looks names up across the zoo, these folders and plugins.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import safety
from .safety import ModelSourceError, model_view, weight_files  # noqa: F401 - weight_files is API here too
from .spec import InputSpec, ModelSpec

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

log = logging.getLogger(__name__)

TASKS = {  # family -> (task sentence, the transformers auto class)
    "image-classifier": ("image classification", "AutoModelForImageClassification"),
    "text-classifier": ("text classification", "AutoModelForSequenceClassification"),
    "sentence-encoder": ("sentence embedding", "AutoModel"),
    "seq2seq": ("sequence-to-sequence generation", "AutoModelForSeq2SeqLM"),
    "causal-lm": ("causal language modelling", "AutoModelForCausalLM"),
}
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")
README_CHARS = 20_000
MAX_TEXT_TOKENS = 512


@dataclass(frozen=True)
class FolderConfig:
    """What a spec's builder needs to load a folder: where, which task, and the weights' hash when registered."""

    path: str
    task: str
    sha256: str = ""


def task_of(config: dict) -> str:
    """The zoo family for a config, from ``architectures`` (e.g. *ForImageClassification -> image-classifier)."""
    archs = " ".join(config.get("architectures") or [])
    if "ForImageClassification" in archs:
        return "image-classifier"
    if "ForSequenceClassification" in archs:
        return "text-classifier"
    if "ForConditionalGeneration" in archs or "Seq2SeqLM" in archs:
        return "seq2seq"
    if "ForCausalLM" in archs or "LMHeadModel" in archs:
        return "causal-lm"
    if config.get("is_encoder_decoder"):
        return "seq2seq"
    return "sentence-encoder"


def experts_of(config: dict) -> int:
    """How many experts a mixture-of-experts config declares (0 for a dense model)."""
    n = config.get("num_local_experts") or config.get("num_experts") or 0
    return n if isinstance(n, int) else 0


def _auto(task: str):
    import transformers

    return getattr(transformers, TASKS[task][1])


_HASHES: dict[tuple, str] = {}


def weights_sha256(files: list[Path]) -> str:
    """sha256 over the weights files' bytes, in name order (cached by path, size and mtime)."""
    files = sorted(files, key=lambda p: p.name)
    key = tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if key not in _HASHES:
        h = hashlib.sha256()
        for p in files:
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def _meta_model(task: str, hf_config: Any):
    cls = _auto(task)
    with torch.device("meta"):
        try:
            return cls.from_config(hf_config, attn_implementation="eager")
        except (TypeError, ValueError):  # an architecture without an eager attention switch (ResNet, ConvNeXt)
            return cls.from_config(hf_config)


def _hf_config(folder: Path):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except (ValueError, KeyError, OSError, TypeError, AttributeError) as e:
        raise ModelSourceError(f"{folder}: config.json is not a model config transformers knows ({safety.one_line(e, 200)}); "
                               "it needs a model_type such as vit, bert or gpt2, as save_pretrained writes it") from None


@dataclass
class Inspection:
    """What checking a folder found, without loading any weights."""

    folder: Path
    config: dict
    task: str
    files: list[Path]
    headers: dict
    parameters: int
    float32_bytes: int
    has_attention: bool


def inspect_folder(folder: str | Path) -> Inspection:
    """Run every safety check on a folder and build its model on the meta device; allocate nothing."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ModelSourceError(f"{folder}: not a folder; pass a folder with config.json and model.safetensors")
    folder = folder.resolve()
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ModelSourceError(f"{folder}: no config.json; save the model with save_pretrained (it writes config.json)")
    safety.check_files(folder)
    config = safety.read_json(cfg_path, folder)
    if not isinstance(config, dict) or "model_type" not in config:
        raise ModelSourceError(f"{folder}: config.json is not a model config (no model_type); "
                               "write it with the model's save_pretrained")
    task = task_of(config)
    hf_config = _hf_config(folder)
    files = weight_files(folder)
    headers: dict = {}
    for f in files:
        try:
            headers.update(safety.read_header(f))
        except ModelSourceError as e:
            raise ModelSourceError(f"{folder}: {e}") from None
    file_bytes = sum(t.nbytes for t in headers.values())
    safety.check_memory(file_bytes, "its weights", folder)
    safety.check_config_scale(config, folder)
    if task in ("image-classifier",) and not (folder / "preprocessor_config.json").is_file():
        raise ModelSourceError(f"{folder}: an image classifier needs preprocessor_config.json (how to resize and "
                               "normalise images); save the image processor with save_pretrained into the folder")
    if task != "image-classifier" and not any((folder / n).is_file() for n in TOKENIZER_FILES):
        raise ModelSourceError(f"{folder}: a text model needs its tokenizer (one of {', '.join(TOKENIZER_FILES[:3])}); "
                               "save the tokenizer with tokenizer.save_pretrained into the folder")
    try:
        meta = _meta_model(task, hf_config)
    except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as e:
        raise ModelSourceError(f"{folder}: config.json does not describe a {TASKS[task][0]} model transformers can "
                               f"build ({type(e).__name__}: {safety.one_line(e, 200)})") from None
    state = meta.state_dict()
    fp32 = sum(t.numel() * 4 for t in state.values())
    safety.check_memory(fp32, f"the model in config.json ({sum(t.numel() for t in state.values()):,} numbers)",
                        folder)
    archs = config.get("architectures") or []
    # a sentence encoder never uses BERT's pooler (sentence-transformers folders often lack it)
    safety.check_against_headers(meta, model_view(meta, headers), folder, strict_extra=type(meta).__name__ in archs,
                                 may_lack=r"(^|\.)pooler\." if task == "sentence-encoder" else "")
    from .adapters import has_attention

    params = sum(p.numel() for p in meta.parameters())
    return Inspection(folder, config, task, files, headers, params, fp32, has_attention(meta))


def image_prep(folder: Path, config: dict):
    """How the folder's preprocessor_config.json resizes, crops and normalises images."""
    from .adapters import ImagePrep

    pp = safety.read_json(folder / "preprocessor_config.json", folder)
    if not isinstance(pp, dict):
        raise ModelSourceError(f"{folder}: preprocessor_config.json is not an object; save the image processor again")
    channels = int(config.get("num_channels", 3) or 3)

    def hw(v) -> tuple[int, int] | int | None:
        if isinstance(v, int):
            return (v, v)
        if isinstance(v, dict) and "height" in v and "width" in v:
            return (int(v["height"]), int(v["width"]))
        if isinstance(v, dict) and "shortest_edge" in v:
            return int(v["shortest_edge"])
        return None

    resize = hw(pp.get("size")) if pp.get("do_resize", True) else None
    crop = hw(pp.get("crop_size")) if pp.get("do_center_crop", False) else None
    crop = crop if isinstance(crop, tuple) else ((crop, crop) if isinstance(crop, int) else None)
    if isinstance(resize, int) and pp.get("crop_pct") is not None:  # ConvNeXt: resize by 1/crop_pct, crop back
        edge = resize
        if edge < 384:
            resize, crop = int(edge / float(pp["crop_pct"])), (edge, edge)
        else:
            resize = (edge, edge)
    size = crop or (resize if isinstance(resize, tuple) else None)
    if size is None:
        s = config.get("image_size", resize if isinstance(resize, int) else 224)
        size = tuple(s) if isinstance(s, (list, tuple)) else (int(s), int(s))
    normalise = pp.get("do_normalize", True)
    mean = pp.get("image_mean") if normalise else None
    std = pp.get("image_std") if normalise else None
    mean = [float(m) for m in (mean if isinstance(mean, (list, tuple)) else [mean or 0.0] * channels)]
    std = [float(s) for s in (std if isinstance(std, (list, tuple)) else [std or 1.0] * channels)]
    if len(mean) != channels:
        mean, std = (mean * channels)[:channels], (std * channels)[:channels]
    resample = pp.get("resample", 2)
    return ImagePrep(channels, (int(size[0]), int(size[1])), tuple(mean), tuple(std), resize, crop,
                     int(resample) if isinstance(resample, int) and 0 <= resample <= 5 else 2)


def _labels(config: dict) -> tuple[str, ...]:
    id2label = config.get("id2label") or {}
    try:
        return tuple(str(v) for _, v in sorted(((int(k), v) for k, v in id2label.items())))
    except (TypeError, ValueError, AttributeError):
        return ()


def _tokenizer_class(folder: Path) -> str:
    path = folder / "tokenizer_config.json"
    data = safety.read_json(path, folder) if path.is_file() else {}
    return str((data or {}).get("tokenizer_class") or "tokenizer files of the folder") if isinstance(data, dict) else ""


def _readme(folder: Path) -> str:
    path = folder / "README.md"
    if not path.is_file():
        return ""
    text = path.read_bytes()[: README_CHARS * 4].decode("utf-8", errors="replace")
    return text[:README_CHARS]


def folder_spec(folder: str | Path, name: str | None = None) -> ModelSpec:
    """A ModelSpec for a folder after every check; its builder loads the weights (safetensors only)."""
    ins = inspect_folder(folder)
    folder = ins.folder
    sha = weights_sha256(ins.files)
    name = name or folder.name
    task, config = ins.task, ins.config
    generative = task in ("seq2seq", "causal-lm")  # their attention is drawn per generated token (generation)
    caps = {"text", "generation"} if generative else {"gradients"}
    if task in ("image-classifier", "text-classifier"):
        caps.add("classifier")
    if task in ("text-classifier", "sentence-encoder"):
        caps.add("text")
    if ins.has_attention and not generative:
        caps.add("attention")
    if experts_of(config) > 1:  # Mixtral (num_local_experts), Qwen2-MoE and Switch (num_experts): router logits
        caps.update({"routing", "text"})
    labels = _labels(config) if task in ("image-classifier", "text-classifier") else ()
    if task == "image-classifier":
        prep = image_prep(folder, config)
        inp = InputSpec(modality="image", shape=(prep.channels, *prep.image_size), normalisation=prep.describe(),
                        labels=labels)
    else:
        tok = _tokenizer_class(folder)
        inp = InputSpec(modality="text", shape=(), labels=labels, tokenizer=tok,
                        normalisation=f"tokens from {tok}, at most {max_tokens_of(config, None)} tokens")
    arch = ", ".join(config.get("architectures") or [config.get("model_type", "?")])
    extra = {"source": "folder", "path": str(folder), "sha256": sha, "readme": _readme(folder), "architecture": arch,
             "parameters": int(ins.parameters), "model_type": config.get("model_type", ""),
             "weights_bytes": int(sum(p.stat().st_size for p in ins.files)),
             "card": {"sha256": sha, "parameters": int(ins.parameters)}}
    return ModelSpec(
        name=name, family=task, task=TASKS[task][0],
        description=f"{arch} ({ins.parameters:,} parameters) from {folder}",
        paper="", input=inp, config=FolderConfig(str(folder), task, sha), builder=load_folder,
        capabilities=frozenset(caps), extra=extra,
    )


def max_tokens_of(config: dict, tokenizer: Any) -> int:
    """The most tokens the model takes: the tokenizer's and the position table's limit, at most 512."""
    limit = MAX_TEXT_TOKENS
    positions = config.get("max_position_embeddings") or config.get("n_positions")
    if isinstance(positions, int) and positions > 0:
        offset = 2 if config.get("model_type") in ("roberta", "xlm-roberta", "camembert", "longformer") else 0
        limit = min(limit, positions - offset)
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        limit = min(limit, tok_max)
    return max(1, limit)


def _pooling(folder: Path) -> tuple[str, bool]:
    """(pooling mode, L2-normalise) from a sentence-transformers folder; (mean, False) for a plain encoder."""
    modules = folder / "modules.json"
    if not modules.is_file():
        return "mean", False
    mods = safety.read_json(modules, folder)
    mods = mods if isinstance(mods, list) else []
    normalize = any(isinstance(m, dict) and str(m.get("type", "")).endswith("Normalize") for m in mods)
    mode = "mean"
    for m in mods:
        if isinstance(m, dict) and str(m.get("type", "")).endswith("Pooling"):
            sub = (folder / str(m.get("path", ""))).resolve()
            cfg = sub / "config.json"
            if folder in sub.parents and cfg.is_file():
                pc = safety.read_json(cfg, folder)
                if isinstance(pc, dict):
                    mode = "cls" if pc.get("pooling_mode_cls_token") else ("max" if pc.get("pooling_mode_max_tokens") else "mean")
    return mode, normalize


def load_folder(cfg: FolderConfig):
    """Check the folder again (it may have changed since it was registered) and load it into its adapter."""
    from . import adapters

    ins = inspect_folder(cfg.path)
    folder = ins.folder
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kw = dict(local_files_only=True, use_safetensors=True, trust_remote_code=False, dtype=torch.float32)
    cls = _auto(ins.task)
    try:
        try:
            hf = cls.from_pretrained(str(folder), attn_implementation="eager", **kw)
        except (TypeError, ValueError) as e:
            if "attn" not in str(e).lower() and "attention" not in str(e).lower():
                raise
            hf = cls.from_pretrained(str(folder), **kw)
    except (OSError, ValueError, TypeError, RuntimeError, KeyError) as e:
        raise ModelSourceError(f"{folder}: transformers could not load the weights ({type(e).__name__}: "
                               f"{safety.one_line(e)})") from None
    if ins.task == "image-classifier":
        return adapters.HFImageClassifier(hf, image_prep(folder, ins.config))
    tokenizer = _tokenizer(folder)
    max_tokens = max_tokens_of(ins.config, tokenizer)
    if ins.task == "text-classifier":
        return adapters.HFTextClassifier(hf, tokenizer, max_tokens)
    if ins.task == "sentence-encoder":
        mode, normalize = _pooling(folder)
        return adapters.HFSentenceEncoder(hf, tokenizer, max_tokens, mode, normalize)
    return adapters.HFGenerative(hf, tokenizer, max_tokens, ins.task)


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, ImportError) as e:
        raise ModelSourceError(f"{folder}: the tokenizer files cannot be loaded ({type(e).__name__}: {safety.one_line(e, 200)}); "
                               "save the tokenizer with tokenizer.save_pretrained into the folder") from None
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok


# ---- the table of registered folders -------------------------------------------------------------------

_LOCK = threading.RLock()
_FOLDERS: dict[str, ModelSpec] = {}  # name -> spec, in registration order
_PROBLEMS: dict[str, str] = {}  # folder path -> the message that refused it


def unique_name(base: str, taken: set[str]) -> str:
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name


def register(paths: list[str | Path], reserved: set[str]) -> list[str]:
    """Register folders under their basenames (suffixed when taken); return their names. Refusals are kept
    in ``problems()`` and logged, never raised: one bad folder does not stop the others."""
    names = []
    with _LOCK:
        for raw in paths:
            path = Path(raw).expanduser()
            key = str(path.resolve()) if path.exists() else str(path)
            known = next((n for n, s in _FOLDERS.items() if s.extra.get("path") == key), None)
            if known:
                names.append(known)
                continue
            try:
                name = unique_name(path.resolve().name, set(reserved) | set(_FOLDERS))
                spec = folder_spec(path, name)
            except ModelSourceError as e:
                _PROBLEMS[key] = str(e)
                log.info("model folder refused: %s", e)
                continue
            except Exception as e:  # noqa: BLE001 - a folder must never take the server down
                _PROBLEMS[key] = f"{path}: could not be read ({type(e).__name__}: {safety.one_line(e, 200)})"
                log.info("model folder refused: %s", _PROBLEMS[key])
                continue
            _PROBLEMS.pop(key, None)
            _FOLDERS[name] = spec
            names.append(name)
    return names


def registered() -> dict[str, ModelSpec]:
    with _LOCK:
        return dict(_FOLDERS)


def problems() -> dict[str, str]:
    """Folder path -> why it was refused."""
    with _LOCK:
        return dict(_PROBLEMS)


def forget_all() -> None:
    """Drop every registered folder (tests)."""
    with _LOCK:
        _FOLDERS.clear()
        _PROBLEMS.clear()


def expand_env(value: str) -> list[Path]:
    """ZOOSCOPE_MODELS: os.pathsep-separated entries, each a model folder or a folder of model folders."""
    out: list[Path] = []
    for entry in filter(None, (v.strip() for v in value.split(os.pathsep))):
        p = Path(entry).expanduser()
        if p.is_dir() and not (p / "config.json").exists():
            out.extend(sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith(".")))
        else:
            out.append(p)
    return out
