"""Latent-space analyses of the VAEs: projections, manifold grid, traversals, interpolation, statistics.

Projections wrap scikit-learn (PCA, t-SNE) and umap-learn (UMAP); fitted embeddings are cached
on disk as .npy files keyed by the sha256 of the data and the params, under
``$ZOOSCOPE_HOME/cache/projections`` (else the platformdirs user cache).
Active units: Burda, Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders",
https://arxiv.org/abs/1509.00519 (unit k is active when Cov_x(E_q[z_k]) > 0.01).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from model_zoo import load_split
from model_zoo.vae import kl_per_dim

from .forward import image_batch
from .params import ParamError, Params, param, params_to_mapping
from .results import GridResult, InterpolationResult, LatentStatsResult, ProjectionResult, TraversalResult
from .run import analysis
from .spec import Inputs

PROJECTIONS = ("identity", "pca", "tsne", "umap")
VAE_PAPER = "Kingma & Welling 2014, Auto-Encoding Variational Bayes, https://arxiv.org/abs/1312.6114"
BURDA_PAPER = "Burda, Grosse & Salakhutdinov 2016, Importance Weighted Autoencoders, https://arxiv.org/abs/1509.00519"
UMAP_PAPER = "McInnes, Healy & Melville 2018, UMAP, https://arxiv.org/abs/1802.03426"
SLERP_PAPER = "White 2016, Sampling Generative Networks, https://arxiv.org/abs/1609.04468"


@dataclass(frozen=True)
class ProjectionParams(Params):
    """Project the posterior means of a data set to 2-D."""

    method: str = param("pca", choices=PROJECTIONS, help="identity (2-D latents only), PCA, t-SNE or UMAP")
    n_neighbors: int = param(15, min=2, max=200, help="UMAP: size of the local neighbourhood")
    min_dist: float = param(0.1, min=0.0, max=1.0, help="UMAP: how tightly points may pack")
    perplexity: float = param(30.0, min=2.0, max=100.0, help="t-SNE: effective number of neighbours")
    seed: int = param(0, min=0, max=2**31 - 1, help="Random seed of t-SNE and UMAP")


@dataclass(frozen=True)
class GridParams(Params):
    """Decode a grid of latent codes over N(0, 1) quantiles in two dimensions (others at 0)."""

    n: int = param(15, min=2, max=40, help="Grid points per side")
    span: float = param(0.9, min=0.1, max=0.998, help="Central probability mass covered by the quantiles")
    dim_x: int = param(0, min=0, max=1023, help="Latent dimension along the columns")
    dim_y: int = param(1, min=0, max=1023, help="Latent dimension along the rows")


@dataclass(frozen=True)
class TraversalParams(Params):
    """Sweep each latent dimension around an input's posterior mean."""

    k: float = param(3.0, min=0.1, max=10.0, help="Sweep from -k to +k prior standard deviations")
    steps: int = param(9, min=2, max=31, help="Images per dimension")


@dataclass(frozen=True)
class InterpolationParams(Params):
    """Interpolate between the posterior means of two inputs."""

    steps: int = param(10, min=2, max=64, help="Images along the path, ends included")


@dataclass(frozen=True)
class LatentStatsParams(Params):
    """KL per dimension, active units and a linear probe on the posterior means."""

    threshold: float = param(0.01, min=0.0, max=10.0, help="Active when Cov_x(E_q[z_k]) exceeds this (Burda et al.)")
    probe_folds: int = param(5, min=2, max=10, help="Cross-validation folds of the linear probe")
    seed: int = param(0, min=0, max=2**31 - 1, help="Seed of the probe's fold split")


def latent_projection(model, spec, inputs: Inputs = None, params: ProjectionParams = ProjectionParams(), *,
                      labels: np.ndarray | None = None) -> ProjectionResult:
    """Encode a data set (default: the held-out split) and project its posterior means to 2-D.

    t-SNE and UMAP fits are cached on disk (see :func:`cache_dir`), keyed by the sha256 of the
    means and the params, so the second request, in any process, is instant.
    """
    with analysis(model, spec, "latent_projection", params) as run:
        x, y = _dataset(inputs, labels, spec, run.device)
        mu, logvar = encode(model, x)
        coords, cached = project(mu, params, dataset=_heldout_identity(spec) if inputs is None else None)
        return ProjectionResult(info=run.info(), mu=mu, logvar=logvar, labels=y, coords=coords,
                                method=params.method, cached=cached)


def manifold_grid(model, spec, inputs: Inputs = None, params: GridParams = GridParams()) -> GridResult:
    """Decode a 2-D grid of latent codes at N(0, 1) quantiles, other dims at 0 (Kingma & Welling 2014, fig. 4)."""
    with analysis(model, spec, "manifold_grid", params) as run:
        D = spec.config.latent_dim
        if max(params.dim_x, params.dim_y) >= D or params.dim_x == params.dim_y:
            raise ParamError(f"dim_x and dim_y must be two different latent dimensions of {spec.name}, 0 to {D - 1}")
        from statistics import NormalDist  # the standard normal's quantiles (scipy.stats alone takes ~1 s to import)

        lo = (1 - params.span) / 2
        q = np.array([NormalDist().inv_cdf(float(p)) for p in np.linspace(lo, 1 - lo, params.n)])  # (n,)
        z = np.zeros((params.n, params.n, D), dtype=np.float32)
        z[:, :, params.dim_x] = q[None, :]
        z[:, :, params.dim_y] = q[::-1, None]  # top row = highest value
        images = decode(model, z.reshape(-1, D), run.device).reshape(params.n, params.n, 28, 28)
        return GridResult(info=run.info(), z=z, images=images, quantiles=q.astype(np.float64),
                          dims=(params.dim_x, params.dim_y))


def latent_traversal(model, spec, inputs: Inputs, params: TraversalParams = TraversalParams()) -> TraversalResult:
    """Decode each latent dimension swept over +-k prior standard deviations around each input's mean."""
    with analysis(model, spec, "latent_traversal", params) as run:
        x = image_batch(inputs, spec, run.device)
        mu, _ = encode(model, x)  # (B, D)
        B, D = mu.shape
        if B * D * params.steps > MAX_DECODES:
            raise ParamError(f"a traversal of {B} images x {D} dims x {params.steps} steps is too large; "
                             f"send fewer images or steps (at most {MAX_DECODES:,} decodes)")
        offsets = np.linspace(-params.k, params.k, params.steps)  # (S,)
        z = np.repeat(mu[:, None, None, :], D, 1).repeat(params.steps, 2)  # (B, D, S, D)
        dims = np.arange(D)
        z[:, dims, :, dims] += offsets.astype(np.float32)[None, None, :]
        images = decode(model, z.reshape(-1, D), run.device).reshape(B, D, params.steps, 28, 28)
        return TraversalResult(info=run.info(), inputs=x.cpu().numpy(), mu=mu, offsets=offsets, images=images)


def latent_interpolation(model, spec, inputs: Inputs,
                         params: InterpolationParams = InterpolationParams()) -> InterpolationResult:
    """Decode linear and spherical (slerp, White 2016) interpolations between the means of two inputs."""
    with analysis(model, spec, "latent_interpolation", params) as run:
        x = image_batch(inputs, spec, run.device)
        if x.shape[0] != 2:
            raise ParamError(f"interpolation takes exactly 2 images, got {x.shape[0]}")
        mu, _ = encode(model, x)  # (2, D)
        t = np.linspace(0.0, 1.0, params.steps)
        z_lin = ((1 - t)[:, None] * mu[0] + t[:, None] * mu[1]).astype(np.float32)  # (S, D)
        z_slerp = slerp(mu[0], mu[1], t).astype(np.float32)
        return InterpolationResult(info=run.info(), inputs=x.cpu().numpy(), t=t, z_linear=z_lin, z_slerp=z_slerp,
                                   images_linear=decode(model, z_lin, run.device)[:, 0],
                                   images_slerp=decode(model, z_slerp, run.device)[:, 0])


def latent_statistics(model, spec, inputs: Inputs = None, params: LatentStatsParams = LatentStatsParams(), *,
                      labels: np.ndarray | None = None) -> LatentStatsResult:
    """KL per dimension, active units (Burda et al. 2016) and linear-probe accuracy on the means.

    Defaults to the held-out split (with its labels). The probe is a logistic regression on
    standardised means, scored by stratified k-fold cross-validation (held-out folds).
    """
    with analysis(model, spec, "latent_statistics", params) as run:
        x, y = _dataset(inputs, labels, spec, run.device)
        mu, logvar = encode(model, x)
        kl = kl_per_dim(torch.from_numpy(mu).double(), torch.from_numpy(logvar).double()).mean(0).numpy()
        activity = mu.astype(np.float64).var(0)  # Cov_x(E_q[z_k]) on the diagonal
        acc, std = _probe(mu, y, params) if (y >= 0).all() else (float("nan"), float("nan"))
        return LatentStatsResult(info=run.info(), kl_per_dim=kl, mu_variance=activity,
                                 active=activity > params.threshold, threshold=params.threshold,
                                 probe_accuracy=acc, probe_std=std, probe_folds=params.probe_folds,
                                 n_inputs=int(mu.shape[0]))


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation (S, D) from a to b (D,) at t (S,); linear when they are parallel."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    na, nb = np.linalg.norm(a64), np.linalg.norm(b64)
    if na < 1e-12 or nb < 1e-12:
        return (1 - t)[:, None] * a64 + t[:, None] * b64
    omega = np.arccos(np.clip(a64 @ b64 / (na * nb), -1.0, 1.0))
    if np.sin(omega) < 1e-6:
        return (1 - t)[:, None] * a64 + t[:, None] * b64
    s = np.sin(omega)
    return (np.sin((1 - t) * omega) / s)[:, None] * a64 + (np.sin(t * omega) / s)[:, None] * b64


# ---------------------------------------------------------------------------------------------

MAX_DECODES = 50_000
ENCODE_BATCH = 256


def encode(model, x: torch.Tensor, batch: int = ENCODE_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and log-variances (N, D) float32 of images (N, 1, 28, 28), in batches."""
    with torch.no_grad():
        parts = [model.encode(x[i:i + batch]) for i in range(0, len(x), batch)]
    mu = torch.cat([m for m, _ in parts]).cpu().numpy()
    logvar = torch.cat([v for _, v in parts]).cpu().numpy()
    return mu, logvar


def decode(model, z: np.ndarray, device: torch.device, batch: int = ENCODE_BATCH) -> np.ndarray:
    """Decoded pixels (N, 1, 28, 28) float32 in [0, 1] for latent codes (N, D)."""
    zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32)).to(device)
    with torch.no_grad():
        return torch.cat([model.decode(zt[i:i + batch]) for i in range(0, len(zt), batch)]).cpu().numpy()


def _dataset(inputs, labels, spec, device) -> tuple[torch.Tensor, np.ndarray]:
    """The images to encode and their labels (-1 where unknown); the held-out split by default."""
    if inputs is None:
        x, y = load_split().heldout_tensor()
        return x.to(device), y.numpy().astype(np.int64)
    x = image_batch(inputs, spec, device)
    if labels is None:
        return x, np.full(x.shape[0], -1, dtype=np.int64)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if y.shape[0] != x.shape[0]:
        raise ParamError(f"{y.shape[0]} labels for {x.shape[0]} images; give one label per image")
    return x, y


def _probe(mu: np.ndarray, y: np.ndarray, params: LatentStatsParams) -> tuple[float, float]:
    """Held-out accuracy (mean, std over folds) of a logistic regression on the means."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = np.bincount(y)
    if counts[counts > 0].min() < params.probe_folds:
        raise ParamError(f"the linear probe needs at least probe_folds={params.probe_folds} examples of every "
                         f"label; the smallest class has {counts[counts > 0].min()}")
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(params.probe_folds, shuffle=True, random_state=params.seed)
    scores = cross_val_score(probe, mu, y, cv=folds)
    return float(scores.mean()), float(scores.std())


# ---------------------------------------------------------------------------------------------
# Projections and their disk cache.

def project(mu: np.ndarray, params: ProjectionParams, dataset: str | None = None) -> tuple[np.ndarray, bool]:
    """2-D coordinates (N, 2) float32 of the means, and whether they came from the disk cache.

    ``dataset`` names where the means came from (model checkpoint + data split hashes); when
    given, the fit is keyed by that instead of the means' bytes, so it survives bit-level
    float differences between machines, and the projections shipped with zooscope are found.
    """
    n, d = mu.shape
    if params.method == "identity":
        if d != 2:
            raise ParamError(f"the identity projection needs a 2-D latent; this one has {d} dims: "
                             f"choose pca, tsne or umap")
        return mu.astype(np.float32), False
    if params.method == "pca":
        from sklearn.decomposition import PCA

        return PCA(2, random_state=params.seed).fit_transform(mu).astype(np.float32), False
    if n < 5:
        raise ParamError(f"{params.method} needs at least 5 points, got {n}")
    name = f"{params.method}-{_cache_key(mu, params, dataset)}.npy"
    for folder in (SHIPPED_PROJECTIONS, cache_dir()):
        if (folder / name).exists():
            coords = np.load(folder / name, allow_pickle=False)
            if coords.shape == (n, 2):
                return coords, True
    path = cache_dir() / name
    coords = (_fit_tsne if params.method == "tsne" else _fit_umap)(mu, params).astype(np.float32)
    _save(path, coords)
    return coords, False


def _relevant(params: ProjectionParams) -> dict[str, str]:
    """The params a method's result depends on (so a UMAP setting does not invalidate t-SNE)."""
    keys = {"tsne": ("perplexity", "seed"), "umap": ("n_neighbors", "min_dist", "seed")}[params.method]
    full = params_to_mapping(params)
    return {"method": params.method, **{k: full[k] for k in keys}}


def _heldout_identity(spec) -> str | None:
    """What identifies the held-out means of a shipped model: its checkpoint and the split."""
    return f"{spec.name}|{spec.sha256}|{load_split().sha256}" if spec.sha256 else None


def _cache_key(mu: np.ndarray, params: ProjectionParams, dataset: str | None = None) -> str:
    """sha256 of the data (its identity, else shape, dtype, bytes), the relevant params and the library version."""
    h = hashlib.sha256()
    a = np.ascontiguousarray(mu)
    h.update(f"{a.shape}|{a.dtype.str}|".encode())
    h.update(dataset.encode() if dataset else a.tobytes())
    h.update(json.dumps(_relevant(params), sort_keys=True).encode())
    h.update(_library_version(params.method).encode())
    return h.hexdigest()


def _library_version(method: str) -> str:
    from importlib.metadata import version

    return version("umap-learn") if method == "umap" else version("scikit-learn")


def _fit_tsne(mu: np.ndarray, params: ProjectionParams) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = min(params.perplexity, (len(mu) - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=params.seed).fit_transform(mu)


def _fit_umap(mu: np.ndarray, params: ProjectionParams) -> np.ndarray:
    import umap  # imported here: its import alone takes seconds

    reducer = umap.UMAP(n_neighbors=min(params.n_neighbors, len(mu) - 1), min_dist=params.min_dist,
                        random_state=params.seed, n_jobs=1)
    return reducer.fit_transform(mu)


def _save(path: Path, coords: np.ndarray) -> None:
    """Write the .npy atomically, so a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, coords, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Projections of the held-out set for the shipped VAEs, fitted once and shipped (read-only).
SHIPPED_PROJECTIONS = Path(__file__).resolve().parent / "projections"


def cache_dir() -> Path:
    """Where fitted projections are cached: $ZOOSCOPE_HOME/cache/projections, else the user cache dir."""
    home = os.environ.get("ZOOSCOPE_HOME")
    if home:
        return Path(home) / "cache" / "projections"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("zooscope")) / "projections"


def precompute_projections(names: tuple[str, ...] = ("vae-2d", "vae-16d"),
                           methods: tuple[str, ...] = ("tsne", "umap"), ship: bool = False) -> list[Path]:
    """Fit and cache the held-out set's t-SNE and UMAP projections for the shipped VAEs; returns the files.

    Run once after training (``python -m analyzers.latent --ship``) so the app's first projection
    is instant: with ``ship`` the files go to the package's read-only projections folder.
    """
    from model_zoo import get_spec, load

    paths = []
    for name in names:
        spec, model = get_spec(name), load(name, "cpu")
        x, _ = load_split().heldout_tensor()
        mu, _ = encode(model, x)
        dataset = _heldout_identity(spec)
        for method in methods:
            params = ProjectionParams(method=method)
            coords, _ = project(mu, params, dataset)
            path = (SHIPPED_PROJECTIONS if ship else cache_dir()) / f"{method}-{_cache_key(mu, params, dataset)}.npy"
            if not path.exists():
                _save(path, coords)
            paths.append(path)
    return paths


if __name__ == "__main__":
    import sys

    for p in precompute_projections(ship="--ship" in sys.argv):
        print(p)


if __name__ == "__main__":
    for p in precompute_projections():
        print(p)
