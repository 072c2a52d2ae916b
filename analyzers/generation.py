"""Generative models: greedy generation, attention of every kind, and attribution of every generated token.

For the user's sequence-to-sequence and causal-LM folders (``model_zoo.adapters.HFGenerative``) and the
zoo's SmolLM2-135M-Instruct. A text goes in; greedy decoding generates N tokens; then

- ``generation_attention``: the K likeliest tokens at every step, and from one forward pass over the
  text and the generated tokens (eager attention, ``output_attentions=True``) the encoder self-,
  decoder self- and cross-attention per layer and head (bertviz's views);
- ``generation_attribution``: every generated token's target (its log-probability, or its logit,
  given everything before it: teacher forcing on the generated prefix) attributed over the source
  tokens and the prefix with captum's Integrated Gradients, with the completeness readout per token
  (inseq's core view). Rows are generated tokens, columns the input tokens;
- ``generation_contrast``: "why token A rather than B" at one step: IG of logit(A) - logit(B).

Integrated Gradients runs on the token embeddings (what ``LayerIntegratedGradients`` on the embedding
layer interpolates), passed as ``inputs_embeds`` and, for a sequence-to-sequence model, as two
inputs: the encoder's and the decoder prefix's. That way T5's one embedding table shared by encoder
and decoder gives two attributions, and the baseline can be the pad token's embedding at every
position (``pad``), the zero embedding (``zero``), or the pad token's embedding at every position but
the first, which keeps the text's first token (``pad_keep_first``).

Why ``pad_keep_first``: a Llama-style causal LM with no BOS token (SmolLM2) uses its first position as
an attention sink. Moving that token along the straight path together with all the others makes the
integrand rough (the log-probability of " Paris" after "The capital of France is" swings by up to 5
nats within 0.5 % of the path; its total variation is 56 nats for a net change of 17), so no affordable
step count converges: completeness error 186 % / 100 % / 101 % / 85 % / 5 % at 16 / 64 / 128 / 256 / 512
Gauss-Legendre steps (gradients checked against finite differences; batched, single and cache-free
forwards agree, so this is the model, not the plumbing). With the first token held, the path is smooth:
0.1 % at 32 steps, 0.02 % at 64. The first token then gets no attribution, and each row sums to F(text)
minus F(the text's first token, then pads). Every generated token is one example of one
captum call (its own ``target``), so the N rows cost one batched path integral. The model sees no
later position (causal masks), so those columns are exactly zero. Paper: https://arxiv.org/abs/1703.01365
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from captum.attr import IntegratedGradients

from .attribution_params import IG_METHODS, IG_PAPER
from .completeness import completeness, convergence_delta
from .generation_results import ContrastResult, GenerationAttentionResult, GenerationAttributionResult
from .params import ParamError, Params, param
from .run import analysis, halving_on_oom
from .spec import Inputs, MethodSpec

GENERATIVE_FAMILIES = frozenset({"seq2seq", "causal-lm"})
BASELINES = ("pad", "zero", "pad_keep_first")
BASELINE_HELP = ("Every input embedding replaced by the pad token's, or zero; pad_keep_first keeps the text's "
                 "first token (a causal LM without BOS uses it as an attention sink: SmolLM2's rows add up only so)")
TARGETS = ("log_prob", "logit")
MAX_TEXT_CHARS = 2000
INSEQ_PAPER = ("Sarti et al. 2023, Inseq: An Interpretability Toolkit for Sequence Generation Models, "
               "https://arxiv.org/abs/2302.13942")
BERTVIZ_PAPER = "Vig 2019, A Multiscale Visualization of Attention in the Transformer Model, https://arxiv.org/abs/1906.05714"
CONTRAST_PAPER = ("Yin & Neubig 2022, Interpreting Language Models with Contrastive Explanations, "
                  "https://arxiv.org/abs/2202.10419")


def is_generative(spec: Any) -> bool:
    """True for a text-reading sequence-to-sequence or causal LM (not the zoo's G2P models, which read one word):
    model_zoo gives those, and only those, the "generation" capability."""
    return "generation" in spec.capabilities and spec.input.modality == "text"


@dataclass(frozen=True)
class GenerationParams(Params):
    """Greedy generation: how many new tokens, and how many candidates to keep per step."""

    max_new_tokens: int = param(12, min=1, max=64, help="Tokens to generate (greedy decoding)")
    top_k: int = param(5, min=1, max=10, help="Candidates kept per generation step")


@dataclass(frozen=True)
class GenerationIGParams(Params):
    """Integrated Gradients of every generated token over the source and the prefix."""

    max_new_tokens: int = param(12, min=1, max=64, help="Tokens to generate (greedy decoding)")
    target: str = param("log_prob", choices=TARGETS, help="What is explained: the token's log-probability or its logit")
    baseline: str = param("pad", choices=BASELINES, help=BASELINE_HELP)
    n_steps: int = param(32, min=2, max=512, help="Steps of the Integrated Gradients path integral")
    method: str = param("gausslegendre", choices=IG_METHODS, help="Quadrature rule for the path integral")
    internal_batch_size: int = param(32, min=1, max=1024, help="Path points per forward pass")

    def cost_factors(self) -> dict[str, int]:
        return {"n_steps": self.n_steps, "max_new_tokens": self.max_new_tokens}


@dataclass(frozen=True)
class ContrastParams(Params):
    """Why the generated token rather than another at one step: IG of logit(fact) - logit(foil)."""

    max_new_tokens: int = param(12, min=1, max=64, help="Tokens to generate (greedy decoding)")
    step: int = param(1, min=1, max=64, help="The generation step (1 = the first generated token)")
    foil: str = param("", help="The token it is contrasted with, as the tokenizer spells it ('' = the runner-up)")
    baseline: str = param("pad", choices=BASELINES, help=BASELINE_HELP)
    n_steps: int = param(32, min=2, max=512, help="Steps of the Integrated Gradients path integral")
    method: str = param("gausslegendre", choices=IG_METHODS, help="Quadrature rule for the path integral")
    internal_batch_size: int = param(32, min=1, max=1024, help="Path points per forward pass")

    def cost_factors(self) -> dict[str, int]:
        return {"n_steps": self.n_steps, "contrast": 3}


# --------------------------------------------------------------------------- generation


@dataclass
class Decoded:
    """One greedy generation: ids of the source, the decoder prefix and the generated tokens."""

    kind: str
    text: str
    source: torch.Tensor  # (S,) ids the model read
    mask: torch.Tensor  # (S,) its attention mask
    prefix: torch.Tensor  # (P,) decoder inputs after the source (see analyzers.generation_results)
    generated: torch.Tensor  # (N,)

    def pieces(self, model, ids: torch.Tensor) -> tuple[str, ...]:
        return tuple(str(t) for t in model.tokenizer.convert_ids_to_tokens(ids.tolist()))

    def inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(encoder ids (1, S), decoder ids (1, P)) for seq2seq; (ids (1, S + P), empty) for a causal LM."""
        if self.kind == "seq2seq":
            return self.source[None], self.prefix[None]
        return torch.cat([self.source, self.prefix])[None], self.prefix[None, :0]


def _text(inputs: Inputs) -> str:
    texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
    if len(texts) != 1 or not isinstance(texts[0], str):
        raise ParamError('a generative model continues one text at a time: --input "text:SOME WORDS"')
    text = texts[0]
    if not text.strip():
        raise ParamError("the text is empty: type a few words for the model to continue or translate")
    if len(text) > MAX_TEXT_CHARS:
        raise ParamError(f"the text has {len(text):,} characters; give at most {MAX_TEXT_CHARS:,}")
    return text


def _check_model(model, spec) -> None:
    if not (hasattr(model, "hf") and hasattr(model, "tokenizer") and getattr(model, "kind", "") in GENERATIVE_FAMILIES):
        raise ParamError(f"{spec.name} is not a sequence-to-sequence or causal language model")


def decode(model, spec, text: str, max_new_tokens: int) -> Decoded:
    """Greedy generation of at most ``max_new_tokens`` tokens (it stops after the end token)."""
    _check_model(model, spec)
    enc = model.tokenize([text])
    ids, mask = enc["input_ids"][0], enc["attention_mask"][0]
    if ids.numel() == 0:
        raise ParamError("the tokenizer made no tokens of the text: type some words")
    if model.kind == "causal-lm" and ids.numel() + max_new_tokens > model.max_tokens:
        raise ParamError(f"the text is {ids.numel()} tokens; with {max_new_tokens} new ones that is more than "
                         f"{spec.name} reads at once ({model.max_tokens}): shorten the text or generate fewer tokens")
    _, new = model.generate_ids(text, max_new_tokens)
    new = new.to(ids.device)
    if model.kind == "seq2seq":
        start = torch.tensor([int(model.hf.config.decoder_start_token_id)], device=ids.device)
        prefix = torch.cat([start, new[:-1]])
    else:
        prefix = new[:-1]
    return Decoded(model.kind, text, ids, mask, prefix, new)


def _forward(model, dec: Decoded, embeds: tuple[torch.Tensor, ...] | None = None, attentions: bool = False):
    """The transformers forward on the source and the prefix (ids, or embeddings for a batch of B)."""
    src, pre = dec.inputs()
    if dec.kind == "seq2seq":
        if embeds is None:
            return model.hf(input_ids=src, attention_mask=dec.mask[None], decoder_input_ids=pre,
                            output_attentions=attentions)
        b = embeds[0].shape[0]
        return model.hf(inputs_embeds=embeds[0], attention_mask=dec.mask[None].expand(b, -1),
                        decoder_inputs_embeds=embeds[1])
    if embeds is None:
        return model.hf(input_ids=src, output_attentions=attentions)
    return model.hf(inputs_embeds=embeds[0])


def _positions(dec: Decoded) -> torch.Tensor:
    """The logit positions that choose each generated token."""
    n = dec.generated.numel()
    if dec.kind == "seq2seq":
        return torch.arange(n)
    return torch.arange(n) + dec.source.numel() - 1


def _stack(layers) -> np.ndarray:
    if not layers:
        return np.zeros((0, 0, 0, 0), dtype=np.float32)
    return torch.stack([a[0] for a in layers]).float().cpu().numpy()  # (L, H, rows, cols)


def generation_attention(model, spec, inputs: Inputs, params: GenerationParams = GenerationParams()
                         ) -> GenerationAttentionResult:
    """Generate greedily, then the candidates at every step and encoder, decoder and cross-attention per layer and head.

    Paper: https://arxiv.org/abs/1906.05714
    """
    text = _text(inputs)
    with analysis(model, spec, "generation_attention", params) as run, torch.no_grad():
        dec = decode(model, spec, text, params.max_new_tokens)
        out = _forward(model, dec, attentions=True)
        probs = torch.softmax(out.logits[0, _positions(dec)].float(), -1)  # (N, V)
        k = min(params.top_k, probs.shape[-1])
        top = probs.topk(k, -1)
        if dec.kind == "seq2seq":
            self_attn, enc_attn, cross = (_stack(out.decoder_attentions), _stack(out.encoder_attentions),
                                          _stack(out.cross_attentions))
        else:
            self_attn, enc_attn, cross = _stack(out.attentions), _stack(()), _stack(())
        names = [dec.pieces(model, row) for row in top.indices]
        return GenerationAttentionResult(
            info=run.info(), kind=dec.kind, text=text, source=dec.pieces(model, dec.source),
            prefix=dec.pieces(model, dec.prefix), generated=dec.pieces(model, dec.generated),
            generated_text=model.tokenizer.decode(dec.generated.tolist()), self_attention=self_attn,
            encoder_attention=enc_attn, cross_attention=cross,
            top_tokens=np.array(names, dtype=str).reshape(-1, k), top_probs=top.values.cpu().numpy().astype(np.float32))


# --------------------------------------------------------------------------- attribution


def _embeddings(model, dec: Decoded, baseline: str) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """(input embeddings, baseline embeddings): one tensor (1, T, E) per input (encoder, decoder prefix)."""
    layer = model.hf.get_input_embeddings()
    ids = dec.inputs() if dec.kind == "seq2seq" else dec.inputs()[:1]
    embeds = tuple(layer(i).detach() for i in ids)
    if baseline == "zero":
        return embeds, tuple(torch.zeros_like(e) for e in embeds)
    tok = model.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    if pad is None:
        raise ParamError(f"baseline {baseline!r} needs a pad token and {type(tok).__name__} has none: "
                         "choose baseline zero")
    base = tuple(layer(torch.full_like(i, int(pad))).detach() for i in ids)
    if baseline == "pad_keep_first":  # the text's first token (the attention sink) stays; it gets no attribution
        first = base[0].clone()
        first[:, :1] = embeds[0][:, :1]
        base = (first, *base[1:])
    return embeds, base


def _score_fn(model, dec: Decoded, columns: torch.Tensor, tokens: torch.Tensor, target: str):
    """f(embeddings...) -> (B, C): for column c, the target (log-probability or logit) of token ``tokens[c]``
    at logit position ``columns[c]``."""

    def f(*embeds: torch.Tensor) -> torch.Tensor:
        logits = _forward(model, dec, embeds).logits[:, columns].float()  # (B, C, V)
        if target == "log_prob":
            logits = torch.log_softmax(logits, -1)
        return logits.gather(-1, tokens.view(1, -1, 1).expand(logits.shape[0], -1, -1)).squeeze(-1)

    return f


def _ig(f, embeds, base, targets: list[int], params) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IG with one example per target: (attributions (R, T) summed over embedding dims, f(x) (R,), f(base) (R,))."""
    r = len(targets)
    xs = tuple(e.expand(r, -1, -1).contiguous() for e in embeds)
    bs = tuple(b.expand(r, -1, -1).contiguous() for b in base)
    ig = IntegratedGradients(f)

    def attempt(batch: int):
        return ig.attribute(xs, baselines=bs, target=targets, n_steps=params.n_steps, method=params.method,
                            internal_batch_size=max(batch, r))

    attr = halving_on_oom(attempt, params.internal_batch_size)
    rows = torch.cat([a.detach().sum(-1) for a in attr], dim=1)  # (R, S + P)
    with torch.no_grad():
        f_x = f(*embeds)[0, targets]
        f_b = f(*base)[0, targets]
    return rows.float(), f_x.double(), f_b.double()


def generation_attribution(model, spec, inputs: Inputs, params: GenerationIGParams = GenerationIGParams()
                           ) -> GenerationAttributionResult:
    """Attribute every generated token over the source and the prefix (IG, completeness per token).

    Paper: https://arxiv.org/abs/2302.13942
    """
    text = _text(inputs)
    with analysis(model, spec, "generation_attribution", params) as run:
        with torch.no_grad():
            dec = decode(model, spec, text, params.max_new_tokens)
        embeds, base = _embeddings(model, dec, params.baseline)
        n = dec.generated.numel()
        f = _score_fn(model, dec, _positions(dec), dec.generated, params.target)
        attr, f_x, f_b = _ig(f, embeds, base, list(range(n)), params)
        delta = convergence_delta(attr.double(), f_x, f_b)
        rel = completeness(f_x, f_b, delta)[0]
        return GenerationAttributionResult(
            info=run.info(), kind=dec.kind, text=text, source=dec.pieces(model, dec.source),
            prefix=dec.pieces(model, dec.prefix), generated=dec.pieces(model, dec.generated),
            generated_text=model.tokenizer.decode(dec.generated.tolist()),
            attributions=attr.cpu().numpy().astype(np.float32), f_x=f_x.cpu().numpy().astype(np.float32),
            f_baseline=f_b.cpu().numpy().astype(np.float32), delta=delta.cpu().numpy().astype(np.float64),
            rel_error=rel.cpu().numpy().astype(np.float64), target=params.target, baseline=params.baseline)


def token_id(model, piece: str) -> int:
    """The vocabulary id of one token as the tokenizer spells it (``Ġcat``), else a ParamError saying how to pick one."""
    tok = model.tokenizer
    vocab = tok.get_vocab()
    if piece in vocab:
        return int(vocab[piece])
    spelled = tok.tokenize(piece)
    if len(spelled) == 1 and spelled[0] in vocab:
        return int(vocab[spelled[0]])
    raise ParamError(f"{piece!r} is not one token of this model's vocabulary (the tokenizer splits it into "
                     f"{' | '.join(spelled) or 'nothing'}): pick one of the candidates, or type a single token")


def generation_contrast(model, spec, inputs: Inputs, params: ContrastParams = ContrastParams()) -> ContrastResult:
    """Why this token rather than that one: IG of logit(generated) - logit(foil) at one step over the input tokens.

    Paper: https://arxiv.org/abs/2202.10419
    """
    text = _text(inputs)
    with analysis(model, spec, "generation_contrast", params) as run:
        with torch.no_grad():
            full = decode(model, spec, text, params.max_new_tokens)
        n = full.generated.numel()
        if params.step > n:
            raise ParamError(f"step {params.step} does not exist: the model generated {n} token(s); "
                             f"choose a step from 1 to {n}")
        i = params.step - 1
        dec = Decoded(full.kind, text, full.source, full.mask, full.prefix[: i + 1 if full.kind == "seq2seq" else i],
                      full.generated[: i + 1])
        pos = _positions(dec)[-1:]
        with torch.no_grad():
            logits = _forward(model, dec).logits[0, pos[0]].float()
        fact = int(dec.generated[-1])
        foil = token_id(model, params.foil) if params.foil else int(logits.topk(2).indices[1])
        if foil == fact:
            raise ParamError(f"the foil is the generated token itself ({params.foil!r}): choose another token")
        embeds, base = _embeddings(model, dec, params.baseline)

        def f(*e: torch.Tensor) -> torch.Tensor:  # (B, 3): logit(fact), logit(foil), their difference
            z = _forward(model, dec, e).logits[:, int(pos[0])].float()  # (B, V)
            return torch.stack([z[:, fact], z[:, foil], z[:, fact] - z[:, foil]], dim=1)

        attr, f_x, f_b = _ig(f, embeds, base, [0, 1, 2], params)
        delta = convergence_delta(attr[2:].double(), f_x[2:], f_b[2:])
        rel = completeness(f_x[2:], f_b[2:], delta)[0]
        probs = torch.softmax(logits, -1)
        names = dec.pieces(model, torch.tensor([fact, foil]))
        return ContrastResult(
            info=run.info(), kind=dec.kind, text=text, source=dec.pieces(model, dec.source),
            prefix=dec.pieces(model, dec.prefix), step=params.step, fact=names[0], foil=names[1],
            p_fact=float(probs[fact]), p_foil=float(probs[foil]), attributions=attr[2].cpu().numpy().astype(np.float32),
            fact_attributions=attr[0].cpu().numpy().astype(np.float32),
            foil_attributions=attr[1].cpu().numpy().astype(np.float32), f_x=float(f_x[2]), f_baseline=float(f_b[2]),
            delta=float(delta[0]), rel_error=float(rel[0]), baseline=params.baseline)


_TEXT = frozenset({"text"})
_NEEDS = frozenset({"generation"})  # a text-reading seq2seq or causal LM (model_zoo marks them)

GENERATION_ANALYZERS: dict[str, MethodSpec] = {
    "generation_attention": MethodSpec(
        "generation_attention", "Generated tokens and their attention", generation_attention, GenerationParams,
        BERTVIZ_PAPER, _NEEDS, _TEXT, "generation"),
    "generation_attribution": MethodSpec(
        "generation_attribution", "Attribution of every generated token", generation_attribution,
        GenerationIGParams, INSEQ_PAPER, _NEEDS, _TEXT, "generation"),
    "generation_contrast": MethodSpec(
        "generation_contrast", "Why this token rather than that one", generation_contrast, ContrastParams,
        CONTRAST_PAPER, _NEEDS, _TEXT, "generation"),
}

__all__ = ["GENERATION_ANALYZERS", "IG_PAPER", "ContrastParams", "GenerationIGParams", "GenerationParams",
           "decode", "generation_attention", "generation_attribution", "generation_contrast", "is_generative",
           "token_id"]
