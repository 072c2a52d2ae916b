"""The Attention page for a text model: two sentences' maps that fit their column at any length, every head, and
each head's statistics.

MiniLM reads up to 128 tokens. Short sentences' maps stand side by side; longer ones stack, one
under the other, each scaled to the output column (every token in the tooltip, every k-th on the
axes when they are dense). The every-head grid shows long sentences in blocks of consecutive
tokens, so it stays one column wide and light to send.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app.charts import attention as charts
from app.ui import messages, session
from app.ui.figures import built_once, show_built

MAX_TOKENS = 128  # MiniLM's cap (model_zoo.minilm.MiniLMConfig.max_tokens)

TEXT_WIDTH = 660  # px, the output column of a wide page in a 1440-px window (676 px measured), less a margin
COLUMN_GAP = 16  # px between two st.columns
MAX_CELL = 22  # px per token: short sentences are drawn no larger than this
SIDE_BY_SIDE_CELL = 12  # px per token at least, to stand two maps side by side with every token named

GRID_PANEL = 44  # px, side of one head's map in the every-head grid: 12 heads fit the column
GRID_BLOCKS = GRID_PANEL // 2  # at most this many token blocks a side, 2 px each or more

CLARK_PAPER = "Clark et al. 2019, What Does BERT Look At?, https://arxiv.org/abs/1906.04341"
STAT_FORMATS = {"entropy (nats)": ".2f", "distance (tokens)": ".1f", "share on [CLS]": ".0%", "share on [SEP]": ".0%"}


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class TokenMapLayout:
    """Where the sentences' maps go: side by side (each in half the column) or one under the other, and their sides."""

    side_by_side: bool
    sides: tuple[int, ...]  # px, the cells of each map (the chart adds charts.TOKEN_GUTTER for its labels)


def token_map_layout(counts: Sequence[int], width: int = TEXT_WIDTH) -> TokenMapLayout:
    """Maps for sentences of ``counts`` tokens that fit a column ``width`` px wide, with no overlap.

    Side by side while every map keeps :data:`SIDE_BY_SIDE_CELL` px per token in half the column;
    otherwise stacked, each scaled to the whole column (down to 1 px per token).
    """
    half = (width - COLUMN_GAP) // 2
    cells = [min(MAX_CELL, (half - charts.TOKEN_GUTTER) // max(n, 1)) for n in counts]
    if all(c >= SIDE_BY_SIDE_CELL for c in cells):
        return TokenMapLayout(True, tuple(n * c for n, c in zip(counts, cells)))
    full = [max(1, min(MAX_CELL, (width - charts.TOKEN_GUTTER) // max(n, 1))) for n in counts]
    return TokenMapLayout(False, tuple(n * c for n, c in zip(counts, full)))


def grid_panel(blocks: int) -> int:
    """The side (px) of one head's map in the grid, ``blocks`` cells a side: whole pixels per cell, about GRID_PANEL."""
    side = charts.fit(GRID_PANEL, blocks)
    return side if side <= GRID_PANEL + 1 else blocks * max(1, GRID_PANEL // blocks)


def sentence_map(attn: np.ndarray, tokens: Sequence[str]) -> np.ndarray:
    """Maps (..., T, T) padded to the longer sentence, cut to this sentence's tokens: (..., n, n)."""
    n = len(tokens)
    return attn[..., :n, :n]


def token_blocks(maps: np.ndarray, labels: Sequence[str], max_blocks: int = GRID_BLOCKS) -> tuple[np.ndarray, list[str]]:
    """Maps (..., n, n) in blocks of k consecutive tokens, at most ``max_blocks`` a side, and the blocks' names.

    A block's weight is the share of attention its queries give its keys (the mean over its query
    rows of the summed weight on its keys), so every row still sums to 1. Short maps come back as they are.
    """
    n = maps.shape[-1]
    k = -(-n // max_blocks)
    if k <= 1:
        return maps, list(labels)
    groups = np.array_split(np.arange(n), -(-n // k))  # sizes k or k - 1
    starts = np.array([g[0] for g in groups])
    sizes = np.array([len(g) for g in groups], dtype=np.float64)
    keys = np.add.reduceat(np.asarray(maps, dtype=np.float64), starts, axis=-1)  # (..., n, m): summed over keys
    pooled = np.add.reduceat(keys, starts, axis=-2) / sizes[:, None]  # (..., m, m): mean over queries
    return pooled, [labels[g[0]] if len(g) == 1 else f"{labels[g[0]]} … {labels[g[-1]]}" for g in groups]


# --------------------------------------------------------------------------- head statistics


def sentence_head_stats(attn: np.ndarray, tokens: Sequence[str]) -> dict[str, np.ndarray]:
    """Each head's statistics on one sentence from its maps (L, H, T, T): name -> (L, H).

    Entropy (nats) and distance (token positions; [CLS] left out as query and key, the rest of
    each row renormalised) as :func:`analyzers.attention.head_statistics` defines them; the share of
    each row's attention on [CLS] and on [SEP], averaged over the rows (Clark et al. 2019).
    """
    a = np.asarray(sentence_map(attn, tokens), dtype=np.float64)  # (L, H, n, n)
    n = a.shape[-1]
    entropy = -(a * np.log(np.clip(a, 1e-30, None))).sum(-1).mean(-1)
    inner = a[..., 1:, 1:] / np.clip(a[..., 1:, 1:].sum(-1, keepdims=True), 1e-30, None)
    pos = np.arange(1, n)
    distance = (inner * np.abs(pos[:, None] - pos[None, :])).sum(-1).mean(-1) if n > 1 else np.zeros(a.shape[:2])
    shares = {f"share on {name}": a[..., [i for i, t in enumerate(tokens) if t == name]].sum(-1).mean(-1)
              for name in ("[CLS]", "[SEP]")}
    return {"entropy (nats)": entropy, "distance (tokens)": distance, **shares}


def head_stats_table(result: Any) -> pd.DataFrame:
    """Every head's statistics on both sentences as rows (sentence, layer, head, statistics...)."""
    frames = []
    for b, name in enumerate("AB"):
        stats = sentence_head_stats(result.attentions[:, b], result.tokens[b])
        frame = charts.stat_frame({name: next(iter(stats.values()))}, "value").drop(columns="value")
        for stat, values in stats.items():
            frame[stat] = values.ravel()
        frames.append(frame.rename(columns={"model": "sentence"}))
    return pd.concat(frames, ignore_index=True)


def head_statistics(result: Any, b: int) -> None:
    """Entropy, distance and the shares on [CLS] and [SEP] of every head: a chart for one sentence, a table for both."""
    name = "AB"[b]
    st.subheader("Head statistics", divider="gray")
    st.caption(f"Per head of sentence {name}, averaged over its query rows: entropy (nats; low = focused), "
               "mean distance from query to key in token positions ([CLS] left out), and the share of attention "
               f"on [CLS] and on [SEP], where heads with nothing to do often look ({CLARK_PAPER}). "
               "Each statistic has its own colour scale; the table holds both sentences.")
    table = built_once(result, "text-stats-table", lambda: head_stats_table(result))
    mine = table[table["sentence"] == name]
    stats = {s: mine[s].to_numpy().reshape(result.attentions.shape[0], -1) for s in STAT_FORMATS}
    show_built(result, f"text-stats-{name}", "Head statistics", lambda: (
        charts.head_stats_chart(stats, STAT_FORMATS, title=f"Sentence {name}: every head"), mine))
    st.dataframe(table, hide_index=True, height=240, column_config={
        s: st.column_config.NumberColumn(format="percent" if f.endswith("%") else "%.3f")
        for s, f in STAT_FORMATS.items()})


# --------------------------------------------------------------------------- panels


def _sentence_pair(layout: TokenMapLayout, draw: Callable[[str, int, Any], None]) -> None:
    """``draw(name, b, menu)`` for sentences A and B: side by side with their Save menus on a row below, or stacked."""
    if layout.side_by_side:
        places, menus = st.columns(2), st.columns(2)  # the maps differ in height; their menus line up below
    else:
        places, menus = (st.container(), st.container()), (None, None)
    for place, menu, name, b in zip(places, menus, "AB", (0, 1)):
        with place:
            draw(name, b, menu)


def text_attention(result: Any, layer: int, head: int, keys: session.WidgetKeys) -> None:
    """Sentence attention: the chosen head per sentence with token axes, every head, head statistics, rollouts."""
    attn = result.attentions  # (L, 2, H, T, T), padded to the longer sentence
    counts = [len(t) for t in result.tokens]
    layout = token_map_layout(counts)
    st.caption(f"Tokens: sentence A {counts[0]}, sentence B {counts[1]} (with [CLS] and [SEP]; MiniLM reads at most "
               f"{MAX_TOKENS}). Rows are queries, columns keys; each row sums to 1."
               + (" Where tokens are too many to name each on the axes, every few are; hover a cell for its tokens."
                  if any(s / n < charts.LABEL_PX for n, s in zip(counts, layout.sides)) else ""))

    def chosen(name: str, b: int, menu: Any) -> None:
        labels = charts.token_labels(counts[b], result.tokens[b])
        m = sentence_map(attn[layer, b, head], result.tokens[b])
        show_built(result, f"text-map-{name}-{layer}-{head}", f"Attention map {name}", lambda: (
            charts.attention_map_chart(m, labels, f"Sentence {name}: layer {layer}, head {head}", token_axes=True,
                                       size=layout.sides[b]), charts.map_frame(m, labels)),
            slot=f"text-map-{name}", menu=menu)

    _sentence_pair(layout, chosen)
    which = every_head(result, layer, head, keys)
    head_statistics(result, "AB".index(which))
    st.subheader("Rollout", divider="gray")

    def rollout(name: str, b: int, menu: Any) -> None:
        labels = charts.token_labels(counts[b], result.tokens[b])
        m = sentence_map(result.rollout[b], result.tokens[b])
        show_built(result, f"text-rollout-{name}", f"Rollout {name}", lambda: (
            charts.attention_map_chart(m, labels, f"Rollout, sentence {name}", token_axes=True,
                                       size=layout.sides[b]), charts.map_frame(m, labels)), menu=menu)

    _sentence_pair(layout, rollout)


def every_head(result: Any, layer: int, head: int, keys: session.WidgetKeys) -> str:
    """The layer x head grid of one sentence (the chosen head outlined); returns the sentence shown, "A" or "B"."""
    st.subheader("Every layer and head", divider="gray")
    which = st.radio("Sentence", ("A", "B"), horizontal=True, key=keys.key("grid.sentence", "A", ("A", "B")))
    b = "AB".index(which)
    tokens = result.tokens[b]
    grid, labels = token_blocks(sentence_map(result.attentions[:, b], tokens),  # (L, H, m, m)
                                charts.token_labels(len(tokens), tokens))
    blocks = "" if len(labels) == len(tokens) else (
        f" With {len(tokens)} tokens, each small map shows blocks of about {-(-len(tokens) // len(labels))} "
        "consecutive tokens (a block's colour: the share of attention its queries give its keys); the maps above "
        "show the chosen head token by token.")
    st.caption(f"Sentence {which}: a row per layer, a column per head; the chosen head is outlined. One colour scale "
               "(square root, so that weak weights still show); hover a cell for its query and key tokens." + blocks)
    show_built(result, f"text-grid-{which}-{layer}-{head}", "Attention per layer and head", lambda: (
        charts.head_grid_chart(grid, labels=labels, cell=grid_panel(len(labels)), selected=(layer, head)),
        charts.grid_maps_frame(grid, labels)))
    return which


def similarity(result: Any) -> None:
    """Which tokens make the two sentences similar: LayerIG of cos(A, B) per token, as coloured tokens."""
    st.subheader("Similarity attribution", divider="gray")
    st.caption("Layer Integrated Gradients on the word embeddings of each sentence, explaining the cosine similarity "
               "of the two sentence embeddings (the other sentence held fixed; baseline: [PAD] tokens). "
               "Red tokens raise the similarity, blue ones lower it. One colour scale for both sentences.")
    st.metric("cos(A, B)", f"{float(result.f_x[0]):.4f}")
    sentences = {f"Sentence {name}": (result.tokens[i], np.asarray(result.attributions[i][: len(result.tokens[i])]))
                 for i, name in enumerate("AB")}
    show_built(result, "similarity", "Similarity attribution", lambda: (
        charts.token_attribution_chart(sentences),
        pd.concat([charts.token_attribution_frame(t, a).assign(sentence=n) for n, (t, a) in sentences.items()])))
    for i, name in enumerate("AB"):
        rel = float(result.rel_error[i])
        st.caption(f"Sentence {name}: Σ attributions {float(np.sum(result.attributions[i])):.4f}, "
                   f"cos − cos(baseline) {float(result.f_x[i] - result.f_baseline[i]):.4f}, "
                   f"completeness error {rel:.2%}.")
        if bool(result.flagged[i]):
            messages.warning(f"Sentence {name}: {result.advice[i]}")


# --------------------------------------------------------------------------- one text (a text classifier)

FULL_MAP_TOKENS = 128  # up to this many tokens the chosen head is drawn token by token; beyond, in blocks + a window
OVERVIEW_BLOCKS = 64  # blocks a side of a long text's overview map (4,096 cells, not 262,144 at 512 tokens)
WINDOW_TOKENS = 64  # tokens a side of the window on a long text, drawn token by token


def _one_map(result: Any, key: str, title: str, m: np.ndarray, labels: Sequence[str], keys: session.WidgetKeys,
             slot: str | None = None) -> None:
    """A (n, n) map that fits the column at any n: token by token up to FULL_MAP_TOKENS; longer, an overview in
    blocks of consecutive tokens and a window of WINDOW_TOKENS chosen with a slider, token by token."""
    n = m.shape[-1]
    if n <= FULL_MAP_TOKENS:
        side = token_map_layout([n]).sides[0]
        show_built(result, key, title, lambda: (charts.attention_map_chart(m, labels, title, token_axes=True, size=side),
                                                charts.map_frame(m, labels)), slot=slot)
        return
    blocks, names = token_blocks(m, labels, OVERVIEW_BLOCKS)
    side = token_map_layout([len(names)]).sides[0]  # whole pixels per block, within the column
    st.caption(f"{n} tokens: the overview shows blocks of about {-(-n // len(names))} consecutive tokens (a block's "
               f"colour: the share of attention its queries give its keys); the window below shows {WINDOW_TOKENS} "
               "tokens one by one.")
    show_built(result, key, title, lambda: (charts.attention_map_chart(blocks, names, f"{title} (blocks)",
                                                                       token_axes=True, size=side),
                                            charts.map_frame(blocks, names)), slot=slot)
    starts = list(range(0, n - WINDOW_TOKENS + 1, WINDOW_TOKENS // 2)) + ([n - WINDOW_TOKENS] if n % 32 else [])
    starts = sorted(set(starts))
    start = st.select_slider("Window (first token)", starts, key=keys.key(f"{key}.window", 0, starts))
    w = m[start:start + WINDOW_TOKENS, start:start + WINDOW_TOKENS]
    names_w = list(labels[start:start + WINDOW_TOKENS])
    wside = token_map_layout([WINDOW_TOKENS]).sides[0]
    show_built(result, f"{key}-window-{start}", f"{title}, tokens {start}–{start + WINDOW_TOKENS - 1}", lambda: (
        charts.attention_map_chart(w, names_w, f"{title}: tokens {start}–{start + WINDOW_TOKENS - 1}", token_axes=True,
                                   size=wside), charts.map_frame(w, names_w)), slot=f"{slot}-window" if slot else None)


def single_text_attention(result: Any, layer: int, head: int, keys: session.WidgetKeys) -> None:
    """One text's attention (a text classifier): the chosen head, every head, head statistics, rollout."""
    tokens = result.tokens[0]
    n = len(tokens)
    labels = charts.token_labels(n, tokens)
    pred = int(result.predictions[0])
    st.caption(f"{n} tokens (with the tokenizer's special tokens). Rows are queries, columns keys; each row sums to 1."
               + (f" The gradient rollout explains class {pred}." if pred >= 0 else ""))
    m = sentence_map(result.attentions[layer, 0, head], tokens)
    _one_map(result, f"one-map-{layer}-{head}", f"Layer {layer}, head {head}", m, labels, keys, slot="one-map")
    st.subheader("Every layer and head", divider="gray")
    grid, names = token_blocks(sentence_map(result.attentions[:, 0], tokens), labels)
    st.caption("A row per layer, a column per head; the chosen head is outlined. One colour scale (square root).")
    show_built(result, f"one-grid-{layer}-{head}", "Attention per layer and head", lambda: (
        charts.head_grid_chart(grid, labels=names, cell=grid_panel(len(names)), selected=(layer, head)),
        charts.grid_maps_frame(grid, names)))


def single_text_overview(result: Any, keys: session.WidgetKeys) -> None:
    """What no layer or head choice changes for one text: head statistics and the rollout (drawn outside the
    layer/head fragment, so another head does not send them again)."""
    tokens = result.tokens[0]
    labels = charts.token_labels(len(tokens), tokens)
    st.subheader("Head statistics", divider="gray")
    stats = sentence_head_stats(result.attentions[:, 0], tokens)
    stats = {k: v for k, v in stats.items() if k in STAT_FORMATS and (not k.startswith("share") or v.any())}
    show_built(result, "one-stats", "Head statistics", lambda: (
        charts.head_stats_chart(stats, {k: STAT_FORMATS[k] for k in stats}, title="Every head"), None))
    st.subheader("Rollout", divider="gray")
    roll = sentence_map(result.rollout[0], tokens)
    _one_map(result, "one-rollout", "Rollout (Abnar & Zuidema 2020)", roll, labels, keys)
