"""Mean–scale hyperprior codec model with gain units (one network, several rates).

The analysis transform ``g_a`` maps a grid of elevation residuals (metres minus
a smooth offset field, divided by ``config.unit``) to a latent grid at 1/16 of
the resolution; ``g_s`` maps it back. The hyper-analysis ``h_a`` summarises the
latents at 1/64 resolution; ``h_s`` turns the quantised hyper-latents into the
mean and the scale of a Gaussian conditional for every latent (Ballé et al.
2018; Minnen et al. 2018). The hyper-latents have a learned factorized density.

Quality levels share all weights: level ``k`` multiplies the latents by a
per-channel gain vector before quantisation and divides by it afterwards
(gain units, Cui et al. 2021), so one training run serves the whole ladder.

``forward`` is for training only: it returns ``x_hat`` (normalised units) and
the likelihoods of the noisy latents and hyper-latents. Bitstreams live in
:mod:`topoae.rdcodec`, which uses :meth:`analyse`, :meth:`hyper_params` and
:meth:`synthesise`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from topoae.models.context import LatentContext
from topoae.models.entropy import FactorizedDensity, full_precision, gaussian_likelihood, widen


@dataclass(frozen=True)
class HyperpriorConfig:
    """Architecture of a :class:`HyperpriorModel` (saved with every checkpoint)."""

    kind: str = "hyperprior"
    channels: int = 64  # N: hidden channels of g_a / g_s
    latent_channels: int = 96  # M: channels of the latent grid y
    hyper_channels: int = 64  # channels of the hyper-latent grid z
    #: network input = (elevation − offset field) / (unit × s), with s the region's roughness
    #: (mean |difference| between neighbours, metres per cell, rounded to 2^(k/4)); the
    #: distortion is MSE on that scale, so one λ ladder fits smooth and rugged regions alike
    unit: float = 4.0
    offset_stride: int = 64  # cells between nodes of the offset field
    offset_step: float = 1.0  # metres: quantisation step of the offset field
    lambdas: tuple[float, ...] = (0.6, 1.9, 5.9, 18.4, 58.0, 181.0, 570.0, 1800.0)
    #: spatial context of the latents (:mod:`topoae.models.context`): a schedule name, or ""
    #: for none (the hyperprior alone gives every latent's mean and scale)
    context: str = ""
    context_channels: int = 96

    @property
    def levels(self) -> int:
        return len(self.lambdas)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["lambdas"] = list(self.lambdas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HyperpriorConfig:
        d = dict(d)
        d["lambdas"] = tuple(d.get("lambdas", cls.lambdas))
        return cls(**d)


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows where it would lift x above the bound."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp_min(bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        pass_through = (x >= ctx.bound) | (grad < 0)
        return grad * pass_through, None


class GDN(nn.Module):
    """Generalised divisive normalisation (``inverse=True``: IGDN), float32 always.

    ``y_i = x_i / sqrt(β_i + Σ_j γ_ij x_j²)`` with β ≥ 1e-6 and γ ≥ 0 held directly
    (lower bounds whose gradient can lift a parameter off its bound, so cross-channel
    terms that start at zero can still grow).
    """

    def __init__(self, channels: int, *, inverse: bool = False) -> None:
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels) + 1e-3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        beta = _LowerBound.apply(self.beta, 1e-6)
        gamma = _LowerBound.apply(self.gamma, 0.0).reshape(c, c, 1, 1)
        xf = x.float()
        with full_precision(x.device.type):  # float32 under bf16 autocast too
            norm = torch.sqrt(F.conv2d(xf * xf, gamma, beta))
            out = xf * norm if self.inverse else xf / norm
        return out.to(x.dtype)


def _conv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def _deconv(cin: int, cout: int, k: int = 5, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(
        cin, cout, k, stride=stride, padding=k // 2, output_padding=stride - 1
    )


def split_level(level: float) -> tuple[int, float]:
    """A coding level as the trained level at or below it and the fraction of the way to the
    next (0 for a trained level): what the gains, λ and the ensemble's τ interpolate between."""
    lo = int(math.floor(float(level)))
    return lo, float(level) - lo


#: the decoder-side parts a release may replace and keep for its earlier files: the synthesis
#: (always), and the hyper-synthesis and gains (``topoae.training.synth --hyper``;
#: :func:`topoae.codec.learned.as_rd_model` reads what a release kept)
RELEASE_PARTS = ("g_s", "h_s", "gain")
#: the parts only the encoder runs (analysis, hyper-analysis): a release may retrain them and
#: still decode every earlier release's files (``topoae.training.synth --analysis``)
ENCODER_SIDE = ("g_a", "h_a")


class HyperpriorModel(nn.Module):
    """Mean–scale hyperprior with gain units; see the module docstring."""

    downsample = 16  # cells per latent
    hyper_downsample = 64  # cells per hyper-latent
    lambdas: torch.Tensor  # a buffer (registered in __init__): λ per level

    def __init__(self, config: HyperpriorConfig | None = None) -> None:
        super().__init__()
        cfg = config or HyperpriorConfig()
        self.config = cfg
        n, m, h = cfg.channels, cfg.latent_channels, cfg.hyper_channels
        self.g_a = nn.Sequential(
            _conv(1, n), GDN(n), _conv(n, n), GDN(n), _conv(n, n), GDN(n), _conv(n, m)
        )
        self.g_s = nn.Sequential(
            _deconv(m, n), GDN(n, inverse=True), _deconv(n, n), GDN(n, inverse=True),
            _deconv(n, n), GDN(n, inverse=True), _deconv(n, 1),
        )
        self.h_a = nn.Sequential(
            _conv(m, h, 3, 1), nn.LeakyReLU(0.1), _conv(h, h), nn.LeakyReLU(0.1), _conv(h, h)
        )
        self.h_s = nn.Sequential(
            _deconv(h, h), nn.LeakyReLU(0.1), _deconv(h, h), nn.LeakyReLU(0.1),
            _conv(h, 2 * m, 3, 1),
        )
        self.z_density = FactorizedDensity(h)
        self.context = LatentContext(m, cfg.context, cfg.context_channels) if cfg.context else None
        self.gain = nn.Parameter(torch.zeros(cfg.levels, m))  # log-gains per level
        self.register_buffer("lambdas", torch.tensor(cfg.lambdas, dtype=torch.float32))
        with torch.no_grad():  # start the levels apart: higher level, finer quantisation
            steps = torch.linspace(-2.0, 2.0, cfg.levels)
            self.gain.copy_(steps[:, None].expand(cfg.levels, m))

    # -- pieces used by the codec -------------------------------------------------
    def gains(self, level: torch.Tensor | float) -> torch.Tensor:
        """Per-sample gains ``(B, M, 1, 1)`` (or ``(1, M, 1, 1)`` for a number). A level
        between two trained ones (a float, for coding) interpolates their log-gains linearly
        (a rate between theirs, Cui et al. 2021, "Asymmetric gained deep image compression
        with continuous rate adaptation")."""
        if isinstance(level, torch.Tensor):
            g = torch.exp(self.gain[level])
        else:
            lo, f = split_level(level)
            g = torch.exp(self.gain[lo] if f == 0 else (1.0 - f) * self.gain[lo] + f * self.gain[lo + 1])
        return g.reshape(-1, g.shape[-1], 1, 1)

    def level_lambda(self, level: float) -> float:
        """λ of a level; between two trained levels, interpolated in log λ like the gains."""
        lo, f = split_level(level)
        lam = float(self.lambdas[lo])
        return lam if f == 0 else math.exp((1.0 - f) * math.log(lam) + f * math.log(float(self.lambdas[lo + 1])))

    def analyse(self, x: torch.Tensor, level: torch.Tensor | float) -> torch.Tensor:
        """Normalised residual ``(B,1,H,W)`` -> gained latents ``(B,M,H/16,W/16)``."""
        return self.g_a(x) * self.gains(level)

    def hyper_analyse(self, y: torch.Tensor) -> torch.Tensor:
        return self.h_a(y)

    def hyper_params(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and scale (> 0) of the Gaussian conditional for each latent."""
        return self.mean_scale(self.h_s(z_hat))

    @staticmethod
    def mean_scale(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Split the hyper-synthesis output into mean and scale (> 0), in its own dtype
        (float32 for a half-precision one: training under autocast; float64 stays float64)."""
        mean, raw = widen(p).chunk(2, dim=1)
        return mean, F.softplus(raw) + 0.05

    def conditional(self, y: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and scale each latent is coded with: the hyperprior's, corrected by the
        spatial context where the model has one (:class:`topoae.models.context.LatentContext`)."""
        if self.context is None:
            return mean, scale
        return self.context(y, mean, scale)

    def synthesise(self, y_hat: torch.Tensor, level: torch.Tensor | float) -> torch.Tensor:
        """Dequantised gained latents -> normalised residual ``(B,1,H,W)``."""
        return self.g_s(y_hat / self.gains(level))

    # -- training -----------------------------------------------------------------
    def forward(self, x: torch.Tensor, level: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training pass: noisy latents for the rate, rounded ones for the synthesis."""
        y = self.analyse(x, level)
        z = widen(self.hyper_analyse(y))  # rounding and noise in float32 under autocast
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        z_hat = z + (torch.round(z) - z).detach()
        z_lik = self.z_density.likelihood(z_noisy)
        mean, scale = self.conditional(y, *self.hyper_params(z_hat))
        y_noisy = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        y_lik = gaussian_likelihood(y_noisy - mean, scale)
        y_hat = mean + (torch.round(y - mean) - (y - mean)).detach() + (y - mean)
        x_hat = self.synthesise(y_hat, level)
        return {"x_hat": x_hat, "y_likelihoods": y_lik, "z_likelihoods": z_lik}


def rd_loss(
    model: HyperpriorModel, out: dict[str, torch.Tensor], x: torch.Tensor, level: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Rate (bits per cell) + λ_level · MSE (on the network's scale), averaged over the batch.

    ``weight`` (shaped like ``x``, mean 1 per sample) weights each cell's squared error,
    e.g. toward shallow water (:func:`topoae.training.rd.depth_weights`).
    Returns the named parts: ``loss``, ``bpc`` (bits per cell) and ``mse`` (network scale).
    """
    b = x.shape[0]
    cells = x.shape[-2] * x.shape[-1]
    bits = (
        -torch.log2(out["y_likelihoods"].float()).reshape(b, -1).sum(1)
        - torch.log2(out["z_likelihoods"].float()).reshape(b, -1).sum(1)
    ) / cells
    err2 = (out["x_hat"].float() - x.float()) ** 2
    if weight is not None:
        err2 = err2 * weight
    mse = err2.reshape(b, -1).mean(1)
    lam = model.lambdas[level]
    loss = (bits + lam * mse).mean()
    return {"loss": loss, "bpc": bits.mean(), "mse": mse.mean(), "bpc_each": bits.detach(),
            "mse_each": mse.detach()}
