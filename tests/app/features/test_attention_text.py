"""The Attention page for sentences at real lengths: maps that fit their column up to MiniLM's 128 tokens with
every token reachable, a labelled layer x head grid, and each head's statistics."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import numpy as np
import pytest

from tests.app.apptest import open_page

from app.charts import attention as ac
from app.charts.export import chart_json
from app.features.attention_text import (
    COLUMN_GAP, GRID_BLOCKS, TEXT_WIDTH, grid_panel, sentence_head_stats, token_blocks, token_map_layout,
)
from app.links import catalogue

vlc = pytest.importorskip("vl_convert")

WORDS = "I saw a cat on the mat so we ran to it and he sat by me you go up if we do".split()
SENTENCE_60 = " ".join((WORDS * 5)[:58])  # 60 MiniLM tokens with [CLS] and [SEP]
SENTENCE_128 = ",".join((WORDS * 5)[:70])  # 139 tokens: MiniLM reads the first 128


def _tokens(n: int, word: str = "extraordinarily") -> list[str]:
    """[CLS], n - 2 long word pieces, [SEP]: labels as wide as a sentence gives."""
    return ["[CLS]", *[f"{word}{i}" for i in range(n - 2)], "[SEP]"]


def _rows(n: int, seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).random((n, n)) ** 4
    return a / a.sum(-1, keepdims=True)


def _svg(chart) -> str:
    return vlc.vegalite_to_svg(json.loads(chart_json(chart)))


def _width(svg: str) -> float:
    return float(re.search(r'<svg[^>]*width="([\d.]+)"', svg).group(1))


def _texts(svg: str) -> set[str]:
    return set(re.findall(r"<text[^>]*>([^<]*)</text>", svg))


# --------------------------------------------------------------------------- the chosen head's maps


@pytest.mark.parametrize("counts, side_by_side", [((15, 15), True), ((11, 4), True), ((60, 128), False),
                                                  ((128, 128), False), ((15, 128), False)])
def test_two_sentences_maps_fit_their_column_side_by_side_or_stacked(counts, side_by_side):
    layout = token_map_layout(counts)
    assert layout.side_by_side is side_by_side
    room = (TEXT_WIDTH - COLUMN_GAP) / 2 if layout.side_by_side else TEXT_WIDTH
    for n, side in zip(counts, layout.sides):
        chart = ac.attention_map_chart(_rows(n), ac.token_labels(n, _tokens(n)), "Sentence A: layer 5, head 11",
                                       token_axes=True, size=side)
        width = _width(_svg(chart))
        assert width <= room, f"{n} tokens: {width} px in a place {room} px wide"
        assert side >= min(n, 128) * 4, "a 128-token map keeps 4 px per token"


@pytest.mark.parametrize("n", [15, 60, 128])
def test_every_token_is_in_the_tooltip_and_the_axis_labels_never_crowd(n):
    tokens = _tokens(n, "w")
    labels = ac.token_labels(n, tokens)
    side = token_map_layout((n, n)).sides[0]
    spec = json.loads(chart_json(ac.attention_map_chart(_rows(n), labels, token_axes=True, size=side)))
    rows = spec["datasets"][spec["data"]["name"]]
    assert {r["query"] for r in rows} == {r["key"] for r in rows} == set(labels)
    assert {t["field"] for t in spec["encoding"]["tooltip"]} >= {"query", "key", "weight"}
    cell = side / n
    for axis in ("x", "y"):
        shown = spec["encoding"][axis]["axis"]["values"]
        assert shown[0] == labels[0] and shown[-1] == labels[-1], "[CLS] and [SEP] are always named"
        gaps = np.diff([labels.index(s) for s in shown]) * cell
        assert gaps.min() >= ac.LABEL_PX, f"labels {gaps.min()} px apart"
        assert len(shown) == n or gaps.min() < ac.LABEL_PX + cell, "thinned no more than needed"


# --------------------------------------------------------------------------- the layer x head grid


def test_the_grid_names_every_layer_and_head():
    grid, labels = token_blocks(np.random.default_rng(0).random((6, 12, 60, 60)), ac.token_labels(60, _tokens(60)))
    texts = _texts(_svg(ac.head_grid_chart(grid, labels=labels, cell=40, selected=(2, 3))))
    assert {f"layer {i}" for i in range(6)} | {f"head {i}" for i in range(12)} <= texts


@pytest.mark.parametrize("n", [4, 12, 15, 16, 22, 23, 60, 128])
def test_the_grid_fits_the_column_and_stays_light_at_any_length(n):
    maps = np.stack([np.stack([_rows(n, seed=12 * layer + head) for head in range(12)]) for layer in range(6)])
    grid, labels = token_blocks(maps, ac.token_labels(n, _tokens(n)))
    chart = ac.head_grid_chart(grid, labels=labels, cell=grid_panel(len(labels)), selected=(0, 0))
    assert _width(_svg(chart)) <= TEXT_WIDTH
    assert len(chart.data) <= 6 * 12 * GRID_BLOCKS**2, "at most 22 x 22 blocks a head, whatever the length"


def test_token_blocks_keep_each_rows_attention_and_name_their_tokens():
    maps = np.stack([_rows(60, seed) for seed in range(3)])  # (3, 60, 60)
    pooled, names = token_blocks(maps, ac.token_labels(60, _tokens(60, "w")))
    assert pooled.shape == (3, 20, 20) and np.allclose(pooled.sum(-1), 1.0)
    assert names[0] == "0:[CLS] … 2:w1" and names[-1] == "57:w56 … 59:[SEP]"
    assert np.isclose(pooled[1, 0, 0], maps[1, :3, :3].sum(-1).mean())
    same, kept = token_blocks(maps[:, :9, :9], ["x"] * 9)
    assert same.shape == (3, 9, 9) and kept == ["x"] * 9


# --------------------------------------------------------------------------- head statistics


def test_head_statistics_of_a_sentence_agree_with_the_analyzer():
    import torch

    from analyzers.attention import entropy, mean_distance

    tokens = ["[CLS]", "a", "cat", "sat", "[SEP]"]
    maps = np.stack([np.stack([_rows(8, seed=3 * layer + head) for head in range(3)]) for layer in range(2)])
    maps[..., 5:] = 0.0  # padding keys (the other sentence is 8 tokens long)
    maps /= maps.sum(-1, keepdims=True)
    stats = sentence_head_stats(maps, tokens)
    cut = torch.from_numpy(maps[:, None, :, :5, :5])  # (L, B=1, H, 5, 5)
    mask = torch.ones(1, 5, dtype=torch.bool)
    text = SimpleNamespace(input=SimpleNamespace(modality="text"))
    assert np.allclose(stats["entropy (nats)"], entropy(cut, mask).numpy())
    assert np.allclose(stats["distance (tokens)"], mean_distance(cut, mask, text).numpy())
    assert np.allclose(stats["share on [CLS]"], maps[..., :5, 0].mean(-1))
    assert np.allclose(stats["share on [SEP]"], maps[..., :5, 4].mean(-1))


def test_a_head_that_only_looks_at_sep_is_seen_as_such():
    tokens = ["[CLS]", "hi", "there", "[SEP]"]
    maps = np.zeros((1, 1, 4, 4))
    maps[..., 3] = 1.0
    stats = sentence_head_stats(maps, tokens)
    assert stats["share on [SEP]"][0, 0] == 1.0 and stats["share on [CLS]"][0, 0] == 0.0
    assert stats["entropy (nats)"][0, 0] == pytest.approx(0.0, abs=1e-12)
    assert stats["distance (tokens)"][0, 0] == pytest.approx((2 + 1 + 0) / 3)  # queries 1..3 to key 3


# --------------------------------------------------------------------------- the page


def test_the_page_shows_long_sentences_stacked_with_every_heads_statistics():
    if not catalogue.has_weights("minilm"):
        pytest.skip("no minilm weights")
    at = open_page("attention", {"model": "minilm", "a": SENTENCE_60, "b": SENTENCE_128})
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert any(c.value.startswith("Tokens: sentence A 60, sentence B 128") for c in at.caption)
    assert "Head statistics" in {s.value for s in at.subheader}
    table = next(d.value for d in at.dataframe if "entropy (nats)" in d.value.columns)
    assert list(table.columns) == ["sentence", "layer", "head", "entropy (nats)", "distance (tokens)",
                                   "share on [CLS]", "share on [SEP]"]
    assert len(table) == 2 * 6 * 12 and set(table["sentence"]) == {"A", "B"}
    assert table["share on [CLS]"].between(0, 1).all() and (table["entropy (nats)"] >= 0).all()
    assert _column_rows(at) == [], "long sentences' maps are not side by side"


def _column_rows(at):
    """Every horizontal block of the main area holding two columns with a chart each."""
    found = []

    def walk(node):
        children = list(node.children.values()) if isinstance(getattr(node, "children", None), dict) else []
        columns = [c for c in children if getattr(c, "type", "") == "column"]
        if len(columns) == 2 and all(_has_chart(c) for c in columns):
            found.append(node)
        for c in children:
            walk(c)

    walk(at.main)
    return found


def _has_chart(node) -> bool:
    children = list(node.children.values()) if isinstance(getattr(node, "children", None), dict) else []
    return getattr(node, "type", "") == "vega_lite_chart" or any(_has_chart(c) for c in children)
