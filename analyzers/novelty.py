"""How unlike the training digits an input is: its negative ELBO under a VAE, in nats.

The VAE's own bound on -log p(x) (Kingma & Welling 2014, https://arxiv.org/abs/1312.6114):

    -ELBO(x) = E_q(z|x)[-log p(x|z)] + KL(q(z|x) || N(0, I))

with the VAE's Bernoulli likelihood over the 784 pixels (binary cross-entropy with the
decoder's logits) and the closed-form KL. The expectation is taken deterministically: at the
posterior mean z = mu by default (the decoder's best guess, a little below the sampled bound),
or over ``samples`` fixed draws eps_1..eps_S ~ N(0, I) (seeded, and the same draws for every
input, so an input's score does not depend on the batch it came in).

A large score says the model has not seen inputs like this one. The converse does not hold:
likelihood models can give simple out-of-distribution inputs (a blank image, a thin stroke) a
*higher* likelihood than real data (Nalisnick et al. 2019, https://arxiv.org/abs/1810.09136).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from model_zoo import load_split
from model_zoo.vae import kl_per_dim

from .forward import image_batch
from .params import Params, param
from .results import NoveltyResult
from .run import analysis
from .spec import Inputs

NALISNICK_PAPER = ("Nalisnick et al. 2019, Do Deep Generative Models Know What They Don't Know?, "
                   "https://arxiv.org/abs/1810.09136")
BATCH = 256  # images per forward pass


@dataclass(frozen=True)
class NoveltyParams(Params):
    """Score inputs by their negative ELBO under the VAE (higher: less like the training digits)."""

    samples: int = param(0, min=0, max=64, help=(
        "Draws of z for the reconstruction term: 0 decodes the posterior mean (deterministic); "
        "S averages over S fixed draws, the same for every input"))
    seed: int = param(0, min=0, max=2**31 - 1, help="Seed of the draws when samples > 0")

    def cost_factors(self) -> dict[str, int]:
        return {"samples": self.samples} if self.samples > 1 else {}


def novelty_score(model, spec, inputs: Inputs = None, params: NoveltyParams = NoveltyParams()) -> NoveltyResult:
    """Each input's negative ELBO under the VAE in nats: how unlike the training digits it is.

    Defaults to the held-out split (the distribution an input's score is read against).
    Returns the score split into its reconstruction term and KL, and the reconstruction
    decoded from the posterior mean.
    """
    with analysis(model, spec, "novelty", params) as run:
        x = load_split().heldout_tensor()[0].to(run.device) if inputs is None else image_batch(inputs, spec, run.device)
        eps = _draws(params, spec.config.latent_dim, run.device)  # (S, D) or None
        parts = [_score(model, x[i:i + BATCH], eps) for i in range(0, len(x), BATCH)]
        recon_nll, kl, recons = (torch.cat(p) for p in zip(*parts))
        recon_nll, kl = recon_nll.double().cpu().numpy(), kl.double().cpu().numpy()
        return NoveltyResult(info=run.info(), neg_elbo=recon_nll + kl, recon_nll=recon_nll, kl=kl,
                             reconstructions=recons.cpu().numpy(), samples=params.samples)


def _draws(params: NoveltyParams, dim: int, device: torch.device) -> torch.Tensor | None:
    """The fixed draws eps (S, D) ~ N(0, I), or None to decode the posterior mean."""
    if params.samples == 0:
        return None
    g = torch.Generator().manual_seed(params.seed)
    return torch.randn(params.samples, dim, generator=g).to(device)


def _score(model, x: torch.Tensor, eps: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reconstruction NLL (B,), KL (B,) and the posterior-mean reconstruction (B, 28, 28) of a batch."""
    with torch.no_grad():
        mu, logvar = model.encode(x)  # (B, D) each
        logits = model.decode_logits(mu)  # (B, 1, 28, 28)
        if eps is None:
            nll = _bernoulli_nll(logits, x)
        else:
            sigma = (0.5 * logvar).exp()
            nll = torch.stack([_bernoulli_nll(model.decode_logits(mu + sigma * e), x) for e in eps]).mean(0)
        return nll, kl_per_dim(mu, logvar).sum(1), torch.sigmoid(logits)[:, 0]


def _bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) (B,) in nats under the VAE's Bernoulli pixels (its training loss, per image)."""
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
