"""Models: the thesis' AE, VAE, DFC-VAE and VAE-GAN, and topoae's improved default.

:func:`build_model` turns a :class:`ModelConfig` into a network that follows
the model protocol of ``docs/ARCHITECTURE.md`` (``encode``, ``decode``,
``latent_dim``, ``patch_size``; ``forward`` returns a dict).
"""

from __future__ import annotations

from torch import nn

from topoae.models.autoencoders import AE, VAE
from topoae.models.config import MODEL_KINDS, ModelConfig
from topoae.models.discriminator import Discriminator

__all__ = [
    "AE",
    "MODEL_KINDS",
    "VAE",
    "Discriminator",
    "ModelConfig",
    "build_model",
    "count_parameters",
]


def build_model(config: ModelConfig) -> AE | VAE:
    """Build the (randomly initialised) network described by ``config``.

    ``"ae"`` gives an :class:`AE`; ``"vae"``, ``"dfc-vae"`` and ``"vae-gan"``
    give a :class:`VAE` (their differences live in the loss and, for the
    VAE-GAN, in a separate :class:`Discriminator`).
    """
    return AE(config) if config.kind == "ae" else VAE(config)


def count_parameters(model: nn.Module, *, keras: bool = False) -> int:
    """Number of parameters; ``keras=True`` adds BatchNorm running statistics.

    Keras counts a BatchNormalization layer's moving mean and variance as
    (non-trainable) parameters, PyTorch keeps them as buffers: ``keras=True``
    makes the figure comparable with a Keras ``model.summary()``.
    """
    n = sum(p.numel() for p in model.parameters())
    if keras:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                n += m.running_mean.numel() + m.running_var.numel()
    return n
