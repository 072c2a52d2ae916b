"""``zooscope analyze``: run one analyzer on one input from the command line and print its summary.

    zooscope analyze --model vit-dot --analyzer integrated_gradients --input sample:0 --json
    zooscope analyze --model vit-dot --analyzer integrated_gradients --input digit.png \
        --param n_steps=256 --param baseline=blur --out ig.npz
    zooscope analyze --model vae-16d --analyzer latent_interpolation --input sample:3,7
    zooscope analyze --model minilm --analyzer integrated_gradients --input "text:A cat sat.||A dog sat."

    zooscope analyze --model ./my-vit --analyzer integrated_gradients --input image:cat.jpg --json
    zooscope analyze --model ./my-bert --analyzer integrated_gradients --input "text:A fine film." --json
    zooscope analyze --model ./my-bert --analyzer attention --input "text:A fine film." --json

``--model`` takes a zoo name or a Hugging Face model folder. ``--input`` takes an image file
(``image:FILE`` or the path; decoded by its content, then framed like MNIST for the zoo's digit
models or prepared by the folder's own image processor), ``sample:N[,M,...]`` for held-out
images of the built-in split, or for text models ``text:SENTENCE`` (several sentences or one
A/B pair separated by ``||``; text classifiers take sentences). ``--analyzer attention`` is
``attention_maps``: the JSON then holds the attention of the first input per layer and head. The analysis runs through the same guards as on the server
(:func:`app.runtime.compute.run`: budget, time limit, out-of-memory fallback) and imports no
streamlit. Exit status: 0 done, 2 bad arguments, params or input (or over the budget), 1 the
model could not be loaded or the analysis failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analyzers import ParamError, compatible, get_analyzer, params_from_mapping, to_record
from analyzers.generation import is_generative
from analyzers.text_classification import is_text_classifier, params_class_for
from analyzers.tokens import merge
from app.runtime import compute
from app.runtime.guards import AnalysisError, AnalysisTooLarge
from app.runtime.images import decode_for_model, decode_image
from app.runtime.inputs import InputError, uses_model_preprocessing, validate_text
from app.runtime.models import heldout_split, loaded_model, sample_pixels

SAMPLE_PREFIX, TEXT_PREFIX, IMAGE_PREFIX = "sample:", "text:", "image:"
ALIASES = {"attention": "attention_maps"}
# G2P (text:WORD): attention = output tokens + alignment (hard for monotonic, soft weights for soft);
# integrated_gradients = one attribution row and one rel_error per output token.
SEQUENCE_ALIASES = {"attention": "sequence_alignment", "integrated_gradients": "sequence_attribution"}
GENERATIVE = ("seq2seq", "causal-lm")
# the user's seq2seq / causal-LM folders (text:STRING): attention = generated tokens + encoder/decoder/cross-attention
# per layer and head; integrated_gradients = one attribution row and one rel_error per generated token.
GENERATION_ALIASES = {"attention": "generation_attention", "integrated_gradients": "generation_attribution",
                      "contrast": "generation_contrast"}
TEXT_MAX_CHARS = 20_000  # a text classifier's input: long enough for 512 tokens and more (it is truncated)
MAX_JSON_ATTENTION = 2_000_000  # attention weights written into the JSON (layers x heads x T x T); more: --out


class _Refused(Exception):
    """Something the person gave cannot be used; the message says what to do."""


def analyze_command(args: argparse.Namespace) -> int:
    """Run ``args.analyzer`` on ``args.model`` for ``args.input`` and print the summary; return the exit code."""
    logging.getLogger("model_zoo").addHandler(logging.NullHandler())  # a refused folder: said once, below
    try:
        spec, entry, params, inputs = _prepare(args)
    except (ParamError, _Refused) as e:
        return _fail(str(e), 2)
    try:
        result = compute.run(entry.name, spec.name, params, inputs)
    except AnalysisTooLarge as e:
        return _fail(str(e), 2)
    except AnalysisError as e:  # the checkpoint, the time limit, out of memory on every device, ...
        return _fail(str(e), 1)
    summary = summarise(result, args.model, entry.name)
    print(json.dumps(summary, indent=2) if args.json else _human(summary))
    if args.out:
        save_npz(result, Path(args.out))
    return 0


def _prepare(args: argparse.Namespace):
    """Validate everything a person typed before any model is loaded."""
    spec = resolve_spec(args.model)
    aliases = SEQUENCE_ALIASES if "sequence" in spec.capabilities else ALIASES
    if is_generative(spec):  # the user's seq2seq / causal-LM folders and SmolLM2 (issue 18)
        aliases = GENERATION_ALIASES
    if "routing" in spec.capabilities and spec.input.modality == "text":  # the user's MoE folders (issue 19)
        aliases = {**aliases, "routing": "token_routing"}
    entry = get_analyzer(aliases.get(args.analyzer, args.analyzer))
    if not entry.fits(spec):
        raise _Refused(f"{entry.label} does not fit {spec.name}; it fits: {', '.join(compatible(spec))}")
    params = params_from_mapping(params_class_for(entry.name, spec, entry.params), parse_param_pairs(args.param))
    return spec, entry, params, load_inputs(args.input, spec, entry.name)


def resolve_spec(model: str):
    """The spec of a zoo name, a registered user model, or a Hugging Face folder (registered on the way)."""
    import model_zoo

    try:
        resolver = getattr(model_zoo, "resolve_model", None)
        if resolver is not None:
            found = resolver(model)
            return found if hasattr(found, "input") else model_zoo.get_spec(found)
        if Path(model).is_dir() and hasattr(model_zoo, "register_folders"):
            names = model_zoo.register_folders([model])
            return model_zoo.get_spec(list(names)[0] if names else Path(model).name)
        return model_zoo.get_spec(model)
    except KeyError as e:
        raise _Refused(str(e.args[0]) if e.args else f"unknown model {model!r}") from None
    except (ValueError, OSError) as e:  # a folder refused: the message names the file and what to do
        raise _Refused(" ".join(str(e).split())) from None


def _fail(message: str, code: int) -> int:
    print(f"zooscope analyze: {message}", file=sys.stderr)
    return code


def parse_param_pairs(pairs: Sequence[str]) -> dict[str, str | list[str]]:
    """``["k=v", ...]`` -> mapping; a key given twice maps to a list (which params_from_mapping refuses)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise _Refused(f"--param {pair!r} is not KEY=VALUE, e.g. --param n_steps=128")
        key = key.strip()
        out[key] = [*out[key], value] if isinstance(out.get(key), list) else ([out[key], value] if key in out else value)
    return out


def load_inputs(text: str, spec, analyzer: str = ""):
    """The model inputs an ``--input`` names: an image file, held-out samples, or text.

    Text attributions take one pair ``text:A||B``; other text analyzers a list of sentences.
    """
    if spec.input.modality == "word":  # G2P: one word, text:WORD
        return [_word_input(text)]
    if spec.input.modality == "text":
        parts = _text_inputs(text, TEXT_MAX_CHARS if is_text_classifier(spec) else 1000)
        if analyzer != "integrated_gradients" or is_text_classifier(spec):
            return parts
        if len(parts) != 2:
            raise _Refused('text attributions compare two sentences: --input "text:SENTENCE A||SENTENCE B"')
        return [(parts[0], parts[1])]
    if text.startswith(TEXT_PREFIX):
        raise _Refused(f"{spec.name} takes images: --input image:FILE")
    if uses_model_preprocessing(spec):
        if text.startswith(SAMPLE_PREFIX):
            raise _Refused(f"{spec.name} is not a digit model: give it an image, --input image:FILE")
        return _model_image_file(Path(text.removeprefix(IMAGE_PREFIX)), spec)
    if text.startswith(SAMPLE_PREFIX):
        return _samples(text[len(SAMPLE_PREFIX):])
    return _image_file(Path(text.removeprefix(IMAGE_PREFIX)))


def _word_input(text: str) -> str:
    """One word for a G2P model from ``text:WORD``, checked before the model loads."""
    from model_zoo.g2p import G2PInputError, encode_word

    if not text.startswith(TEXT_PREFIX):
        raise _Refused('G2P models read one word: --input "text:WORD", e.g. text:zooscope')
    word = text[len(TEXT_PREFIX):].strip()
    try:
        encode_word(word)
    except G2PInputError as e:
        raise _Refused(str(e)) from None
    return word.lower()


def _samples(indices: str) -> np.ndarray:
    n = len(heldout_split().y_heldout)
    try:
        picks = [int(i) for i in indices.split(",")]
    except ValueError:
        raise _Refused(f"sample:{indices} is not sample:N with N a whole number from 0 to {n - 1}") from None
    if any(not 0 <= i < n for i in picks):
        raise _Refused(f"sample:{indices} is out of range: the held-out split has images 0 to {n - 1}")
    return np.stack([sample_pixels(i) for i in picks])  # (B, 28, 28) in [0, 1]


def _image_file(path: Path) -> np.ndarray:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _Refused(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return np.asarray(decode_image(data).pixels, dtype=np.float32)  # (28, 28) in [0, 1]
    except InputError as e:
        raise _Refused(f"{path.name}: {e}") from None


def _model_image_file(path: Path, spec) -> np.ndarray:
    """An image file prepared by the model's own preprocessing: (1, C, H, W) in [0, 1]."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise _Refused(f"cannot read {path}: {e.strerror or e}") from None
    try:
        model = loaded_model(spec.name).model
    except (KeyError, ValueError, OSError) as e:
        raise _Refused(" ".join(str(e).split())) from None
    try:
        return decode_for_model(data, model.preprocess).pixels[None]
    except InputError as e:
        raise _Refused(f"{path.name}: {e}") from None


def _text_inputs(text: str, max_chars: int = 1000) -> list:
    if not text.startswith(TEXT_PREFIX):
        raise _Refused('text models take --input "text:SENTENCE" or "text:SENTENCE A||SENTENCE B"')
    try:
        parts = [validate_text(p.strip(), max_chars=max_chars) for p in text[len(TEXT_PREFIX):].split("||")]
    except InputError as e:
        raise _Refused(str(e)) from None
    return parts


def summarise(result, model: str, analyzer: str) -> dict[str, Any]:
    """The JSON summary: model, analyzer, the result's own summary (scalars for one example), seconds."""
    per_token = hasattr(result, "outputs") or hasattr(result, "prefix")  # per output token, even of one
    body = {k: (v[0] if isinstance(v, list) and len(v) == 1 and not per_token else v)
            for k, v in result.summary().items()}
    return {"model": model, "analyzer": analyzer, **body, **_readable(result), "device": result.info.device,
            "seconds": result.info.seconds, "params": result.info.params}


def _one(values: list) -> Any:
    return values[0] if len(values) == 1 else values


def _readable(result) -> dict[str, Any]:
    """Label names of the prediction and target, the tokens and words of texts, attention per layer and head."""
    out: dict[str, Any] = {}
    labels = tuple(getattr(result, "labels", ()) or ())
    preds = getattr(result, "predictions", None)
    if preds is not None and labels and (np.asarray(preds) >= 0).all():
        out["prediction_label"] = _one([labels[int(p)] for p in preds])
        targets = getattr(result, "targets", None)
        if targets is not None and (np.asarray(targets) >= 0).all():
            out["target_name"] = _one([labels[int(t)] for t in targets])
        out["labels"] = list(labels)
    tokens = tuple(getattr(result, "tokens", ()) or ())
    if tokens:
        out["tokens"] = _one([list(t) for t in tokens])
        out["words"] = _one([[w.text for w in merge(t)] for t in tokens])
        attr = getattr(result, "attributions", None)
        if attr is not None and np.ndim(attr) == 2:
            out["token_attributions"] = _one([[round(float(a), 8) for a in row[:len(t)]] for row, t in zip(attr, tokens)])
    attn = getattr(result, "attentions", None)
    if attn is not None and np.ndim(attn) == 5:
        L, _, H, T, _ = attn.shape
        n = len(tokens[0]) if tokens else T
        if L * H * n * n <= MAX_JSON_ATTENTION:
            out["attention"] = [[np.round(attn[layer, 0, h, :n, :n], 6).tolist() for h in range(H)] for layer in range(L)]
        else:
            out["attention_note"] = (f"{L} layers x {H} heads x {n} x {n} weights are too many for JSON: "
                                     "write them with --out FILE.npz")
    return out


def _human(summary: dict[str, Any]) -> str:
    return "\n".join(f"{k:>12}: {v}" for k, v in summary.items())


def save_npz(result, path: Path) -> None:
    """Write the result's arrays and its JSON metadata (as a string array, no pickle) to ``path``."""
    meta, arrays = to_record(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, __meta__=np.array(json.dumps(meta)), **{k.replace("/", "__"): v for k, v in arrays.items()})
