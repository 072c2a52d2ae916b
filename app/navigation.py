"""The app's pages in one table: title, icon, file and URL path.

``app/main.py`` registers every page whose file exists, so pages still being written simply
do not appear yet. Share links and the Home gallery find pages here by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"


@dataclass(frozen=True)
class PageInfo:
    """One page: its name (= URL path and file stem), title, Material icon and one-line purpose."""

    name: str
    title: str
    icon: str
    purpose: str

    @property
    def file(self) -> Path:
        return PAGES_DIR / f"{self.name}.py"

    @property
    def url_path(self) -> str:
        return "" if self.name == "home" else self.name


PAGES: tuple[PageInfo, ...] = (
    PageInfo("home", "Home", ":material/home:", "What zooscope is, curated analyses, your shares and the gallery."),
    PageInfo("attribution", "Attribution", ":material/gradient:",
             "Which pixels made the model decide: Integrated Gradients and friends, with their checks and a sanity check."),
    PageInfo("attention", "Attention", ":material/visibility:",
             "Attention maps per layer and head, rollout, and MiniLM's token attention."),
    PageInfo("synthesizers", "Synthesizers", ":material/grid_view:",
             "One digit through five attention kinds, side by side, with input-dependence per head."),
    PageInfo("latent", "Latent space", ":material/scatter_plot:",
             "VAE latent spaces: scatter, manifold grid, traversals, interpolation, KL per dimension."),
    PageInfo("capsules", "Capsules", ":material/bubble_chart:",
             "Capsule lengths, routing per iteration, and the 16 pose dimensions."),
    PageInfo("routing", "Routing", ":material/alt_route:",
             "Mixture of experts: which expert each patch goes to, expert load and balance, and why."),
    PageInfo("sequence", "Sequence", ":material/text_rotation_none:",
             "A word in, its phones out: soft and monotonic alignment, decoding step by step, attribution per phone."),
    PageInfo("generation", "Generation", ":material/edit_note:",
             "A text in, a continuation or translation out: attribution of every generated token, why this token "
             "rather than that one, encoder/decoder/cross-attention."),
    PageInfo("compare", "Compare", ":material/view_column:",
             "One digit, 2-4 models or methods side by side, on a colour scale chosen openly, and how much they agree."),
    PageInfo("dataset", "Dataset", ":material/dataset:",
             "A classifier over a whole dataset: accuracy, slices, per-class IG maps and faithfulness per method."),
    PageInfo("models", "Models", ":material/menu_book:", "The model cards: metrics measured again here, size, training, paper."),
)


def available() -> tuple[PageInfo, ...]:
    """The pages whose file exists, in menu order."""
    return tuple(p for p in PAGES if p.file.is_file())


def page_info(name: str) -> PageInfo | None:
    """The page called ``name`` if it exists."""
    return next((p for p in available() if p.name == name), None)


def page_file(name: str) -> Path | None:
    """The file of page ``name`` if it exists (for ``st.page_link`` / ``st.switch_page``)."""
    info = page_info(name)
    return info.file if info else None
