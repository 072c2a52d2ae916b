"""The Latent space page's panels: the scatter (a clicked digit becomes the input or the path's other end),
the manifold grid, traversals with a labelled row per dimension, interpolation, and KL per dimension.

Each panel takes results (and what it needs of the view), never the view class itself, so that
:mod:`app.features.latent` (the link and the settings) imports this module and not the other way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app.charts.base import curves_chart
from app.charts.images import digit_uri, mosaic
from app.charts.latent import BRUSH, POINT, kl_chart, scatter_chart, scatter_frame, traversal_chart, traversal_frame
from app.links.catalogue import latent_dim
from app.runtime.memo import once_per_process
from app.runtime.models import heldout_split, sample_pixels
from app.ui import session
from app.ui.figures import digit, picture, show, show_built
from app.ui.pickers import SOURCES

METHOD_LABELS = {"identity": "none (the 2-D latent itself)", "pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}

MAX_SHOWN = 60  # selected digits drawn at once

FIT = 660  # px: pictures shrink to fit the page's output column

USE_AS_INPUT, USE_AS_OTHER_END = "Use as input", "Use as the path's other end"


# --------------------------------------------------------------------------- scatter


@once_per_process()
def heldout_uris() -> tuple[str, ...]:
    """Every held-out digit as a small PNG data URI, for the scatter's image tooltips (once per process)."""
    x = heldout_split().x_heldout.astype(np.float32) / 255.0
    return tuple(digit_uri(d) for d in x)


def _selected(selection: Any, coords: np.ndarray) -> tuple[list[int], list[int]]:
    """Indices clicked (point selection) and inside the dragged box (interval selection)."""
    clicked = [int(p["index"]) for p in (selection.get(POINT) or []) if "index" in p]
    box = selection.get(BRUSH) or {}
    inside: list[int] = []
    if "x" in box and "y" in box:
        (x0, x1), (y0, y1) = sorted(box["x"]), sorted(box["y"])
        mask = (coords[:, 0] >= x0) & (coords[:, 0] <= x1) & (coords[:, 1] >= y0) & (coords[:, 1] <= y1)
        inside = [int(i) for i in np.flatnonzero(mask)]
    return clicked, inside


def scatter(results: dict[str, Any], model: str, marked: list[int], keys: session.WidgetKeys,
            ends: tuple[int | None, int]) -> None:
    """The held-out set in latent space, coloured by class; click or drag to see the digits.

    ``ends`` are the held-out indices of the input (None for an upload) and of the path's other end:
    a clicked digit that is not already one of them gets a button to become it.
    """
    proj = results["projection"]
    d = proj.mu.shape[1]
    names = ("z₀", "z₁") if proj.method == "identity" else (f"{METHOD_LABELS[proj.method]} 1",
                                                            f"{METHOD_LABELS[proj.method]} 2")
    uris = heldout_uris() if len(proj.coords) == len(heldout_uris()) else None
    title = f"{len(proj.coords):,} held-out digits, {d}-D posterior means" + (
        "" if proj.method == "identity" else f" through {METHOD_LABELS[proj.method]}")
    st.caption("Hover for the digit, click a point to show it (and use it as the input or the path's other end), "
               "drag a box to show every digit inside (double-click clears). Diamonds: the two ends of the "
               "interpolation." + (" Read from the disk cache." if proj.cached else ""))
    selection = show_built(proj, f"scatter-{marked}", "Latent scatter", lambda: (
        scatter_chart(proj.coords, proj.labels, uris, title, *names, marked=marked),
        scatter_frame(proj.coords, proj.labels)), select=f"scatter-{model}-{proj.method}")
    clicked, inside = _selected(selection, proj.coords)
    _selection_digits(clicked, inside, proj.labels, keys, ends)


def _selection_digits(clicked: list[int], inside: list[int], labels: np.ndarray, keys: session.WidgetKeys,
                      ends: tuple[int | None, int]) -> None:
    if clicked:
        i = clicked[0]
        digit(sample_pixels(i), f"held-out #{i}, labelled {int(labels[i])}")
        use_buttons(keys, i, ends)
    if inside:
        shown = inside[:MAX_SHOWN]
        counts = pd.Series(labels[inside]).value_counts().sort_index()
        st.caption(f"{len(inside)} digits in the box" + (f" (the first {MAX_SHOWN} shown)" if len(inside) > MAX_SHOWN
                                                         else "") + ": " +
                   ", ".join(f"{n}× {c}" for c, n in counts.items()))
        per_row = 12
        images = np.zeros((-(-len(shown) // per_row) * per_row, 28, 28), dtype=np.float32)
        images[: len(shown)] = [sample_pixels(i) for i in shown]
        st.image(mosaic(images.reshape(-1, per_row, 28, 28), scale=2), output_format="PNG")
    if not clicked and not inside:
        st.caption("Nothing selected yet.")


def use_buttons(keys: session.WidgetKeys, index: int, ends: tuple[int | None, int]) -> None:
    """Two buttons under a clicked digit: make it the input, or the far end of the interpolation."""
    left, right, _ = st.columns([1, 1.5, 1.2])
    left.button(USE_AS_INPUT, key=keys.name("use-as-input"), on_click=use_as_input, args=(keys, index),
                disabled=ends[0] == index, icon=":material/input:",
                help="Analyse this digit: the traversal, the path's start and the KL readouts follow it.")
    right.button(USE_AS_OTHER_END, key=keys.name("use-as-other-end"), on_click=use_as_other_end,
                 args=(keys, index), disabled=ends[1] == index, icon=":material/timeline:",
                 help="Interpolate from the input to this digit.")


def use_as_input(keys: session.WidgetKeys, index: int) -> None:
    """Make held-out digit ``index`` the input (a button's callback: it runs before the pickers are drawn)."""
    st.session_state[keys.name("source")] = SOURCES[0]
    _pick(keys, "", index)


def use_as_other_end(keys: session.WidgetKeys, index: int) -> None:
    """Make held-out digit ``index`` the far end of the interpolation (a button's callback)."""
    _pick(keys, "other.", index)


def _pick(keys: session.WidgetKeys, prefix: str, index: int) -> None:
    """Set a held-out picker (its class, then its example) and leave a shared link's report for the controls."""
    st.session_state[keys.name(f"{prefix}digit")] = int(heldout_split().y_heldout[index])
    st.session_state[keys.name(f"{prefix}sample")] = int(index)
    session.current().reading.discard(keys.page)  # the view changes: show the controls, not the link's settings


# --------------------------------------------------------------------------- panels


def grid_panel(result: Any, model: str, note: str = "") -> None:
    """Digits decoded from a grid over two latent dimensions (Kingma & Welling 2014, fig. 4)."""
    dx, dy = result.dims
    q = result.quantiles
    others = "" if latent_dim(model) == 2 else " Every other dimension is 0 (the prior mean)."
    caption = (f"Columns: z{dx} from {q[0]:.2f} to {q[-1]:.2f}; rows: z{dy} from {q[-1]:.2f} (top) to {q[0]:.2f}. "
               f"Values are N(0, 1) quantiles.{others}{note}")
    picture(mosaic(result.images, pad=1, scale=3, max_width=FIT), caption, key="manifold-grid")


def row_labels(dims: int, stats: Any | None) -> list[str]:
    """A traversal row's label: its dimension, and (with the KL statistics) its KL and whether it is inactive."""
    if stats is None:
        return [f"z{k}" for k in range(dims)]
    return [f"z{k} · KL {float(stats.kl_per_dim[k]):.2f}" + ("" if stats.active[k] else " · inactive")
            for k in range(dims)]


def traversal_panel(result: Any, stats: Any | None) -> None:
    """Every latent dimension swept around the digit's posterior mean, a row per dimension labelled with its KL."""
    offsets, images = result.offsets, result.images[0]  # (S,), (D, S, 28, 28)
    labels = row_labels(images.shape[0], stats)
    kl = None if stats is None else stats.kl_per_dim
    cell = int(max(14, min(36, (FIT - 160) // max(1, offsets.size) - 2)))
    owners = result if stats is None else (result, stats)
    show_built(owners, "traversal", "Traversals", lambda: (
        traversal_chart(images, offsets, labels, kl, cell=cell), traversal_frame(images, offsets, labels, kl)))
    st.caption(f"Row z_k: z_k moved from {offsets[0]:+.1f} to {offsets[-1]:+.1f} prior standard deviations around "
               "the digit's posterior mean (middle column: no change), every other dimension kept. "
               + ("KL: the dimension's mean KL(q(z_k|x) ‖ N(0, 1)) over the held-out digits, in nats; rows of "
                  "inactive dimensions (Burda et al. 2016) barely change: the decoder ignores them."
                  if stats is not None else "The KL per dimension could not be computed, so rows carry no KL."))


def interpolation_panel(result: Any, start: str, end: int) -> None:
    """Linear and spherical interpolation between the two digits' posterior means, and the norm along each."""
    st.caption(f"From {start} to held-out #{end}, {result.t.size} steps.")
    for name, images in (("Linear", result.images_linear), ("Spherical (slerp, White 2016)", result.images_slerp)):
        picture(mosaic(images[None], pad=1, scale=3, max_width=FIT), name,
                key=f"interpolation-{name.split()[0].lower()}")
    norms = {"linear": np.linalg.norm(result.z_linear, axis=1), "slerp": np.linalg.norm(result.z_slerp, axis=1)}
    chart = curves_chart(result.t, norms, title="Distance from the origin along the path", x_title="t",
                         y_title="‖z‖")
    show(chart, "Norm along the path", key="interpolation-norm")


def statistics_panel(result: Any) -> None:
    """KL per dimension, active units and linear-probe accuracy."""
    cols = st.columns(3)
    cols[0].metric("KL, all dimensions", f"{float(result.kl_per_dim.sum()):.2f} nats",
                   help="Mean over the held-out digits of KL(q(z|x) ‖ N(0, I))")
    cols[1].metric("Active units", f"{int(result.active.sum())} of {result.active.size}",
                   help=f"Dimensions whose posterior mean varies across digits: Cov_x(E_q[z_k]) > {result.threshold:g}")
    acc = float(result.probe_accuracy)
    cols[2].metric("Linear probe", "n/a" if not np.isfinite(acc) else f"{acc:.1%}",
                   help=f"Logistic regression on the posterior means, {result.probe_folds}-fold cross-validated "
                        f"accuracy (± {result.probe_std:.1%}) on {result.n_inputs} held-out digits")
    show(kl_chart(result.kl_per_dim, result.mu_variance, result.active, result.threshold), "KL per dimension",
         key="kl")
