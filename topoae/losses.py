"""Training losses: Charbonnier reconstruction, KL with annealing, perceptual, slope.

Every loss is an ``nn.Module`` whose ``forward`` returns a dict of named
parts (each a scalar tensor) plus ``"loss"``, the weighted total to
backpropagate. Per-patch terms are *summed over the cells of a patch* and
averaged over the batch (``reduction="sum"``, the thesis' VAE: the sum makes
the reconstruction outweigh the KL term) or averaged over cells too
(``reduction="mean"``, the thesis' AE).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from topoae.errors import ConfigError

FEATURE_NETS = ("terrain", "vgg19-random", "vgg19-imagenet")
EPS = 1e-10


def charbonnier(a: torch.Tensor, b: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Elementwise Charbonnier penalty ``sqrt((a - b)**2 + eps)`` (a smooth L1)."""
    return torch.sqrt((a - b) ** 2 + eps)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, shape ``(B,)``."""
    return -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=1)


def kl_weight(epoch: int, *, start: int = 3, growth: float = 1.3, full: int = 21) -> float:
    """The thesis' KL annealing weight for 1-based ``epoch``.

    0 for epochs before ``start`` (1 and 2), then
    ``sigmoid(-10 + growth * (epoch - start))``, and exactly 1 after epoch
    ``full`` (21), where the sigmoid is within 2e-6 of 1.
    """
    if epoch < start:
        return 0.0
    if epoch > full:
        return 1.0
    return 1.0 / (1.0 + math.exp(10.0 - growth * (epoch - start)))


def _reduce(per_cell: torch.Tensor, reduction: str) -> torch.Tensor:
    """Sum (``"sum"``) or average (``"mean"``) over all but the batch axis, then batch mean."""
    per_patch = per_cell.flatten(1).sum(1) if reduction == "sum" else per_cell.flatten(1).mean(1)
    return per_patch.mean()


def slope_maps(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences along x (last axis) and y of ``(B, C, H, W)`` patches."""
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


@dataclass(frozen=True)
class LossConfig:
    """Weights and options of the training loss.

    Parameters
    ----------
    reduction
        ``"sum"`` (per-patch sum, batch mean) or ``"mean"``.
    recon_weight
        Weight of the pixel Charbonnier term (0 for the thesis' DFC-VAE, whose
        reconstruction term is the perceptual one alone).
    kl_max
        Final weight of the KL term (0 disables it; the AE has none).
    kl_start, kl_growth, kl_full
        The annealing schedule, see :func:`kl_weight`.
    perceptual_weight
        Weight of the feature-consistency term (DFC-VAE).
    feature_net
        ``"terrain"``, ``"vgg19-random"`` or ``"vgg19-imagenet"``: the frozen
        network the perceptual term compares features of.
    feature_weights
        Weight per tapped feature layer (thesis: 1.0, 0.75, 0.5, 0.5).
    grad_weight
        Weight of the slope term: Charbonnier on forward differences along both
        axes (the thesis' outlook: reconstructed slopes drive the flow).
    gan_weight
        Weight of the adversarial term (VAE-GAN generator).
    """

    reduction: str = "sum"
    recon_weight: float = 1.0
    kl_max: float = 1.0
    kl_start: int = 3
    kl_growth: float = 1.3
    kl_full: int = 21
    perceptual_weight: float = 0.0
    feature_net: str | None = None
    feature_weights: tuple[float, ...] = (1.0, 0.75, 0.5, 0.5)
    grad_weight: float = 0.0
    gan_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.reduction not in ("sum", "mean"):
            raise ConfigError(f"reduction must be 'sum' or 'mean', got {self.reduction!r}")
        if self.feature_net is not None and self.feature_net not in FEATURE_NETS:
            raise ConfigError(
                f"unknown feature network {self.feature_net!r}; choose from {', '.join(FEATURE_NETS)}"
            )
        if self.perceptual_weight > 0 and self.feature_net is None:
            raise ConfigError("a perceptual loss needs a feature network")
        weights = (
            self.recon_weight,
            self.kl_max,
            self.perceptual_weight,
            self.grad_weight,
            self.gan_weight,
        )
        if min(weights) < 0:
            raise ConfigError("loss weights must be >= 0")

    def kl_weight(self, epoch: int) -> float:
        """KL weight at 1-based ``epoch`` (0 when the KL term is disabled)."""
        if self.kl_max == 0:
            return 0.0
        return self.kl_max * kl_weight(
            epoch, start=self.kl_start, growth=self.kl_growth, full=self.kl_full
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of builtins (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LossConfig:
        """Inverse of :meth:`to_dict`."""
        names = {f.name for f in fields(cls)}
        if set(d) - names:
            raise ConfigError(f"unknown loss config keys: {', '.join(sorted(set(d) - names))}")
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kwargs)


class ReconstructionLoss(nn.Module):
    """Charbonnier between ``x_hat`` and ``x``; returns ``{"recon", "loss"}``."""

    def __init__(self, reduction: str = "sum") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        recon = _reduce(charbonnier(x_hat, x), self.reduction)
        return {"recon": recon, "loss": recon}


class GradientLoss(nn.Module):
    """Charbonnier between the slopes (forward differences) of ``x_hat`` and ``x``.

    Returns ``{"grad", "loss"}``; the sum over both axes is reduced like the
    reconstruction term, so equal weights give both terms comparable scales.
    """

    def __init__(self, reduction: str = "sum") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        (hx, hy), (tx, ty) = slope_maps(x_hat), slope_maps(x)
        grad = _reduce(charbonnier(hx, tx), self.reduction) + _reduce(
            charbonnier(hy, ty), self.reduction
        )
        return {"grad": grad, "loss": grad}


class PerceptualLoss(nn.Module):
    """Feature-consistency loss of the DFC-VAE.

    ``0.5 * sum_l w_l * sum(charbonnier(f_l(x_hat), f_l(x)))`` per patch (the
    thesis' definition), batch mean. ``feature_net(x)`` must return the list of
    tapped feature maps; it is frozen here (no gradients to its weights, but
    gradients flow through it to ``x_hat``).
    """

    def __init__(
        self, feature_net: nn.Module, weights: tuple[float, ...], reduction: str = "sum"
    ) -> None:
        super().__init__()
        self.net = feature_net.eval().requires_grad_(False)
        self.weights = tuple(weights)
        self.reduction = reduction

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        self.net.eval()  # the feature network is always in inference mode
        return self

    def forward(self, x_hat: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            target = self.net(x)
        pred = self.net(x_hat)
        if len(pred) != len(self.weights):
            raise ConfigError(
                f"feature network gives {len(pred)} layers but {len(self.weights)} weights were set"
            )
        total = x_hat.new_zeros(())
        for w, a, b in zip(self.weights, pred, target, strict=True):
            total = total + w * _reduce(charbonnier(a.float(), b.float()), self.reduction)
        total = 0.5 * total
        return {"perceptual": total, "loss": total}


class AutoencoderLoss(nn.Module):
    """The full generator loss of an AE / VAE / DFC-VAE / VAE-GAN.

    ``forward(out, x, kl_weight=..., disc=None)`` takes the model's output dict
    and the target patches and returns the parts that are enabled in the
    config (``recon``, ``kl``, ``perceptual``, ``grad``, ``adv``) and ``loss``,
    their weighted sum. ``kl_weight`` is the annealed weight of this epoch
    (see :meth:`LossConfig.kl_weight`); ``disc`` is the discriminator whose
    verdict the adversarial term tries to fool.
    """

    def __init__(self, config: LossConfig, feature_net: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.recon = ReconstructionLoss(config.reduction)
        self.grad = GradientLoss(config.reduction)
        self.perceptual = None
        if config.perceptual_weight > 0:
            if feature_net is None:
                raise ConfigError("the perceptual loss needs a feature network")
            self.perceptual = PerceptualLoss(feature_net, config.feature_weights, config.reduction)

    def forward(
        self,
        out: dict[str, torch.Tensor],
        x: torch.Tensor,
        *,
        kl_weight: float = 0.0,
        disc: nn.Module | None = None,
    ) -> dict[str, torch.Tensor]:
        cfg = self.config
        x_hat = out["x_hat"].float()
        x = x.float()
        parts: dict[str, torch.Tensor] = {}
        total = x.new_zeros(())
        if cfg.recon_weight > 0:
            parts["recon"] = self.recon(x_hat, x)["recon"]
            total = total + cfg.recon_weight * parts["recon"]
        if "logvar" in out and cfg.kl_max > 0:
            parts["kl"] = kl_divergence(out["mu"].float(), out["logvar"].float()).mean()
            if kl_weight > 0:  # reported even at weight 0, but never 0 * inf = NaN
                total = total + kl_weight * parts["kl"]
        if self.perceptual is not None:
            parts["perceptual"] = self.perceptual(x_hat, x)["perceptual"]
            total = total + cfg.perceptual_weight * parts["perceptual"]
        if cfg.grad_weight > 0:
            parts["grad"] = self.grad(x_hat, x)["grad"]
            total = total + cfg.grad_weight * parts["grad"]
        if cfg.gan_weight > 0 and disc is not None:
            logits = disc(out["x_hat"])
            parts["adv"] = F.binary_cross_entropy_with_logits(
                logits.float(), torch.ones_like(logits).float()
            )
            total = total + cfg.gan_weight * parts["adv"]
        parts["loss"] = total
        return parts


class DiscriminatorLoss(nn.Module):
    """Binary cross-entropy of the VAE-GAN discriminator: real patches 1, decoded 0.

    Returns ``{"d_real", "d_fake", "loss"}``; ``x_hat`` is detached so this
    loss trains only the discriminator.
    """

    def forward(
        self, disc: nn.Module, x: torch.Tensor, x_hat: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        # One forward pass over real and decoded patches together (what DDP expects).
        logits = disc(torch.cat([x, x_hat.detach().to(x.dtype)])).float()
        real, fake = logits[: x.shape[0]], logits[x.shape[0] :]
        d_real = F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
        d_fake = F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
        return {"d_real": d_real, "d_fake": d_fake, "loss": d_real + d_fake}
