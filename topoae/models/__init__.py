"""Models: the thesis' AE, VAE, DFC-VAE and VAE-GAN, topoae's improved default, and the
learned codec's hyperprior.

:func:`build_model` turns a model config into a network: a :class:`ModelConfig` gives
a patch model that follows :class:`PatchModel`, the protocol of
``docs/ARCHITECTURE.md`` (``encode``, ``decode``, ``latent_dim``, ``patch_size``;
``forward`` returns a dict); a :class:`HyperpriorConfig` gives a
:class:`HyperpriorModel`. :func:`model_config_from_dict` reads either config back from
the plain dict a checkpoint holds, so loading a model needs nothing from
:mod:`topoae.training`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import overload

from torch import nn

from topoae.errors import ConfigError
from topoae.models.autoencoders import AE, VAE
from topoae.models.config import MODEL_KINDS, ModelConfig
from topoae.models.discriminator import Discriminator
from topoae.models.hyperprior import HyperpriorConfig, HyperpriorModel
from topoae.models.protocol import PatchModel

__all__ = [
    "AE",
    "MODEL_KINDS",
    "VAE",
    "Discriminator",
    "HyperpriorConfig",
    "HyperpriorModel",
    "ModelConfig",
    "PatchModel",
    "build_model",
    "count_parameters",
    "model_config_from_dict",
]


def model_config_from_dict(d: object) -> ModelConfig | HyperpriorConfig:
    """The model config saved as ``d`` (``to_dict()`` of either class); ``d["kind"]`` picks it.

    ``"hyperprior"`` gives a :class:`HyperpriorConfig`, any other kind a
    :class:`ModelConfig`. Unknown kinds or keys, or a ``d`` that is not a mapping (as read
    from a file), raise :class:`ConfigError`.
    """
    if not isinstance(d, Mapping):
        raise ConfigError(f"a model config is a dict of its fields, got {type(d).__name__}")
    if d.get("kind") == "hyperprior":
        try:
            return HyperpriorConfig.from_dict(dict(d))
        except TypeError as exc:
            raise ConfigError(f"invalid hyperprior config: {exc}") from None
    return ModelConfig.from_dict(dict(d))


@overload
def build_model(config: ModelConfig) -> AE | VAE: ...
@overload
def build_model(config: HyperpriorConfig) -> HyperpriorModel: ...
def build_model(config: ModelConfig | HyperpriorConfig) -> AE | VAE | HyperpriorModel:
    """Build the (randomly initialised) network described by ``config``.

    ``"ae"`` gives an :class:`AE`; ``"vae"``, ``"dfc-vae"`` and ``"vae-gan"``
    give a :class:`VAE` (their differences live in the loss and, for the
    VAE-GAN, in a separate :class:`Discriminator`); a :class:`HyperpriorConfig`
    gives a :class:`HyperpriorModel`.
    """
    if isinstance(config, HyperpriorConfig):
        return HyperpriorModel(config)
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
            if (
                isinstance(m, nn.modules.batchnorm._BatchNorm)
                and m.running_mean is not None
                and m.running_var is not None
            ):
                n += m.running_mean.numel() + m.running_var.numel()
    return n
