"""The thesis' autoencoder (AE) and variational autoencoder (VAE, also used by DFC-VAE / VAE-GAN).

Both follow the model protocol of ``docs/ARCHITECTURE.md``:

- ``model(x)`` returns a dict for the loss (``x_hat``, ``mu``, and ``logvar`` /
  ``z`` for the VAE);
- ``model.encode(x) -> (mu, logvar | None)`` with flat latents ``(B, L)``;
- ``model.decode(z) -> (B, 1, P, P)`` on the normalised scale;
- ``model.latent_dim`` (``L``) and ``model.patch_size``.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from topoae.models.blocks import Decoder, Encoder, init_keras
from topoae.models.config import ModelConfig

LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


class _Bottleneck(nn.Module):
    """Flat map -> [dense ReLU] -> latent head(s); latent -> [dense ReLU] -> dense ReLU -> map."""

    def __init__(self, cfg: ModelConfig, heads: int) -> None:
        super().__init__()
        assert cfg.latent_dim is not None
        width = cfg.hidden_dim or cfg.flat_map
        self.pre = (
            nn.Sequential(nn.Linear(cfg.flat_map, cfg.hidden_dim), nn.ReLU())
            if cfg.hidden_dim
            else nn.Identity()
        )
        self.heads = nn.ModuleList(nn.Linear(width, cfg.latent_dim) for _ in range(heads))
        post: list[nn.Module] = []
        cin = cfg.latent_dim
        if cfg.hidden_dim:
            post += [nn.Linear(cin, cfg.hidden_dim), nn.ReLU()]
            cin = cfg.hidden_dim
        post += [nn.Linear(cin, cfg.flat_map), nn.ReLU()]
        self.post = nn.Sequential(*post)


class _Base(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.patch_size = cfg.patch_size
        self.latent_dim = cfg.flat_latent
        self._map_shape = (cfg.enc_filters[-1], cfg.map_size, cfg.map_size)
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def _check(self, x: torch.Tensor) -> None:
        p = self.patch_size
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != p or x.shape[3] != p:
            raise ValueError(f"expected input of shape (B, 1, {p}, {p}), got {tuple(x.shape)}")

    def _init_keras(self) -> None:
        last = self.decoder.head[-1] if self.config.head == "upsample" else self.decoder.head[0]
        init_keras(self, last=last)


class AE(_Base):
    """Deterministic autoencoder.

    With ``latent_dim=None`` (the thesis' AE) the latent is the encoder's
    ``6 x 6 x 256`` feature map flattened to 9216 values: as many numbers as the
    96 x 96 = 9216 input cells, so it does not compress at all. With an integer
    ``latent_dim`` a dense bottleneck (as in the VAE, without the variance head)
    makes it a real codec.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.bottleneck = _Bottleneck(cfg, heads=1) if cfg.latent_dim is not None else None
        if cfg.init == "keras":
            self._init_keras()
            if self.bottleneck is not None:
                nn.init.xavier_uniform_(cast(nn.Linear, self.bottleneck.heads[0]).weight)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Flat latent ``(B, L)`` of patches ``(B, 1, P, P)``; no variance (``None``)."""
        self._check(x)
        h = self.encoder(x).flatten(1)
        if self.bottleneck is not None:
            h = self.bottleneck.heads[0](self.bottleneck.pre(h))
        return h, None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Patches ``(B, 1, P, P)`` on the normalised scale from flat latents ``(B, L)``."""
        if self.bottleneck is not None:
            z = self.bottleneck.post(z)
        return self.decoder(z.reshape(z.shape[0], *self._map_shape))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, _ = self.encode(x)
        return {"x_hat": self.decode(mu), "mu": mu}


class VAE(_Base):
    """Variational autoencoder (thesis: 100-d latent, dense ReLU layers of width 100).

    ``forward`` samples ``z = mu + exp(logvar / 2) * eps`` in training mode and
    uses ``z = mu`` in eval mode, so evaluation and the codec are deterministic.

    Parameter count of the thesis configuration (96 x 96 patches, latent 100):
    ``sum(p.numel() for p in model.parameters())`` is 3,320,705; adding the
    1,792 BatchNorm running means and variances (buffers in PyTorch, counted as
    non-trainable parameters by Keras) gives exactly the thesis' 3,322,497.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.bottleneck = _Bottleneck(cfg, heads=2)
        if cfg.init == "keras":
            self._init_keras()
            for head in self.bottleneck.heads:
                nn.init.xavier_uniform_(cast(nn.Linear, head).weight)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance, each ``(B, L)``, of patches ``(B, 1, P, P)``.

        The log-variance is clamped to [-30, 20]: while the KL weight is still
        0 (the first annealing epochs) nothing bounds it, and an unbounded head
        overflows ``exp`` (seen with the thesis network and Adam at 1e-3).
        """
        self._check(x)
        h = self.bottleneck.pre(self.encoder(x).flatten(1))
        mu_head, logvar_head = self.bottleneck.heads
        return mu_head(h), logvar_head(h).clamp(LOGVAR_MIN, LOGVAR_MAX)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Patches ``(B, 1, P, P)`` on the normalised scale from latents ``(B, L)``."""
        h = self.bottleneck.post(z)
        return self.decoder(h.reshape(z.shape[0], *self._map_shape))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return {"x_hat": self.decode(z), "mu": mu, "logvar": logvar, "z": z}
