"""Training configuration: a frozen dataclass and the ``thesis`` / ``default`` presets.

``TrainConfig`` holds everything that determines the trained weights (model,
loss, optimiser, schedule, seed); runtime choices that do not (device, number
of workers, wall-clock budget, output folder) are arguments of
:func:`topoae.training.train` instead. The config is written into every
checkpoint and into ``RUN/config.json``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from topoae.errors import ConfigError
from topoae.losses import LossConfig
from topoae.models.config import MODEL_KINDS, ModelConfig

PRESETS = ("thesis", "default")
LR_SCHEDULES = ("constant", "thesis", "cosine")
CLIP_MODES = ("tensor", "global", "none")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained.

    Parameters
    ----------
    model, loss
        Architecture and loss configuration.
    preset
        Name of the preset this config started from (``thesis`` or ``default``), for the record.
    normalise
        Normalisation mode the store must have (``"global"`` or ``"patch"``), or
        ``None`` to accept either. The model learns the normalised values, so a
        mismatch would silently give wrong elevations.
    epochs, batch_size, lr
        Passes over the training split, global batch size (split across DDP
        ranks), Adam learning rate.
    lr_schedule
        ``"constant"``; ``"thesis"`` (the thesis' Keras schedule: ``lr`` on
        even 1-based epochs, ``lr / (1.0005 * epoch)`` on odd ones); or
        ``"cosine"`` (from ``lr`` to 0 over ``epochs``, per epoch).
    clip_norm, clip
        Gradient clipping threshold and mode: ``"tensor"`` clips each
        parameter's gradient norm separately (Keras ``clipnorm``, the thesis),
        ``"global"`` the norm of all gradients together, ``"none"``.
    weight_decay
        Adam weight decay (L2).
    d_lr
        Discriminator learning rate (VAE-GAN only).
    seed
        Seeds initialisation, shuffling, augmentation and VAE sampling: the same
        seed gives the same weights on CPU.
    augment
        ``"random"`` (one of the 8 symmetries of the square per patch and epoch)
        or ``"none"``.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    preset: str = "default"
    normalise: str | None = None
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    lr_schedule: str = "constant"
    clip_norm: float = 1.0
    clip: str = "tensor"
    weight_decay: float = 0.0
    d_lr: float = 1e-4
    seed: int = 0
    augment: str = "random"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("epochs and batch size must be positive")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}")
        if self.clip not in CLIP_MODES:
            raise ConfigError(f"clip must be one of {', '.join(CLIP_MODES)}")
        if self.augment not in ("random", "none"):
            raise ConfigError("augment must be 'random' or 'none'")
        if self.normalise not in (None, "global", "patch"):
            raise ConfigError(
                f"normalise must be 'global', 'patch' or None, got {self.normalise!r}"
            )
        if self.model.kind == "dfc-vae" and self.loss.perceptual_weight <= 0:
            raise ConfigError("a dfc-vae needs a perceptual loss weight > 0")
        if self.model.kind == "vae-gan" and self.loss.gan_weight <= 0:
            raise ConfigError("a vae-gan needs an adversarial loss weight > 0")

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 1-based ``epoch``."""
        if self.lr_schedule == "thesis":
            # Keras' LearningRateScheduler passes the 0-based epoch e: lr/(1.0005 (e+1)) when e is even.
            e = epoch - 1
            return self.lr / (1.0005 * (e + 1)) if e % 2 == 0 else self.lr
        if self.lr_schedule == "cosine":
            return 0.5 * self.lr * (1.0 + math.cos(math.pi * (epoch - 1) / self.epochs))
        return self.lr

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with fields changed; ``model=`` / ``loss=`` may be dicts of their fields to change."""
        for key, cls in (("model", ModelConfig), ("loss", LossConfig)):
            if isinstance(changes.get(key), dict):
                changes[key] = dataclasses.replace(getattr(self, key), **changes[key])
                assert isinstance(changes[key], cls)
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (JSON- and checkpoint-safe)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["model"] = self.model.to_dict()
        d["loss"] = self.loss.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        if set(d) - names:
            raise ConfigError(f"unknown training config keys: {', '.join(sorted(set(d) - names))}")
        d["model"] = ModelConfig.from_dict(d.get("model", {}))
        d["loss"] = LossConfig.from_dict(d.get("loss", {}))
        return cls(**d)


def _thesis(kind: str) -> TrainConfig:
    """The thesis' configurations, from its Keras code (Adam, clipnorm 1, 5e-5, batch 128)."""
    model = ModelConfig(kind=kind, latent_dim=None if kind == "ae" else 100)
    if kind == "ae":
        loss = LossConfig(reduction="mean", kl_max=0.0)
    elif kind == "vae":
        loss = LossConfig()
    elif kind == "dfc-vae":
        loss = LossConfig(recon_weight=0.0, perceptual_weight=1.0, feature_net="vgg19-imagenet")
    else:  # vae-gan
        loss = LossConfig(gan_weight=1.0)
    return TrainConfig(
        model=model,
        loss=loss,
        preset="thesis",
        normalise="global",
        epochs=30,
        batch_size=128,
        lr=5e-5,
        lr_schedule="thesis",
        clip_norm=1.0,
        clip="tensor",
    )


def _default(kind: str) -> TrainConfig:
    """topoae's improved configurations, chosen from the measurements in benchmarks/results/training.md.

    Per-patch normalisation (about half the RMSE of the global one, with either
    decoder), a residual decoder with a pixel-shuffle head and linear output
    (less than half the RMSE of the thesis decoder), a slope loss of weight 1
    (23 % lower slope error for 9 % more RMSE at the measured budget), Adam
    1e-3 with a cosine decay and the thesis' per-tensor gradient clipping
    (without it the thesis network diverged at 1e-3), batch 16.
    """
    model = ModelConfig(
        kind=kind,
        latent_dim=100,
        decoder="residual",
        head="pixelshuffle",
        output="linear",
        init="torch",
        bn_momentum=0.1,
        bn_eps=1e-5,
    )
    grad = 1.0
    if kind == "ae":
        loss = LossConfig(kl_max=0.0, grad_weight=grad)
    elif kind == "vae":
        loss = LossConfig(grad_weight=grad)
    elif kind == "dfc-vae":
        loss = LossConfig(perceptual_weight=1.0, feature_net="terrain", grad_weight=grad)
    else:  # vae-gan
        loss = LossConfig(gan_weight=0.1, grad_weight=grad)
    return TrainConfig(
        model=model,
        loss=loss,
        preset="default",
        normalise="patch",
        epochs=40,
        batch_size=16,
        lr=1e-3,
        lr_schedule="cosine",
        clip_norm=1.0,
        clip="tensor",
    )


def preset(kind: str = "vae", config: str = "default", /, **overrides: Any) -> TrainConfig:
    """The ``config`` preset (``thesis`` or ``default``) for model ``kind``, with ``overrides`` applied.

    ``overrides`` are :class:`TrainConfig` fields; ``model=`` and ``loss=``
    overrides may be dicts of fields to change.
    """
    if kind not in MODEL_KINDS:
        raise ConfigError(f"unknown model {kind!r}; choose from {', '.join(MODEL_KINDS)}")
    if config not in PRESETS:
        raise ConfigError(f"unknown config {config!r}; choose from {', '.join(PRESETS)}")
    base = _thesis(kind) if config == "thesis" else _default(kind)
    return base.replace(**overrides) if overrides else base
