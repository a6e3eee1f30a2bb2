"""The frozen configuration of a topoae model architecture.

A :class:`ModelConfig` fully determines the network (not its weights); it is
written into every checkpoint so that :func:`topoae.models.build_model` can
rebuild the exact module before loading the state dict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from topoae.errors import ConfigError

MODEL_KINDS = ("ae", "vae", "dfc-vae", "vae-gan")
DECODERS = ("thesis", "residual")
HEADS = ("upsample", "pixelshuffle")
OUTPUTS = ("sigmoid", "linear")
INITS = ("keras", "torch")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of an AE / VAE / DFC-VAE / VAE-GAN.

    Parameters
    ----------
    kind
        ``"ae"``, ``"vae"``, ``"dfc-vae"`` or ``"vae-gan"``. DFC-VAE and VAE-GAN
        share the VAE network; they differ in their loss (and the VAE-GAN adds a
        discriminator).
    patch_size
        Side of the square input patch in cells; a multiple of 16 (four stride-2
        stages).
    latent_dim
        Size of the flat latent vector. ``None`` (AE only) keeps the thesis' AE,
        whose latent is the whole ``(P/16)**2 * enc_filters[-1]`` feature map
        (9216 values for 96x96 patches: no compression at all, the same number of
        values as the input).
    enc_filters, dec_filters
        Channels of the four encoder blocks and of the three decoder blocks.
    hidden_dim
        Width of the dense ReLU layer between the flattened map and the latent
        (encoder) and between the latent and the map (decoder). ``0`` removes it.
    negative_slope
        LeakyReLU slope (0.3 is the Keras default the thesis used).
    decoder
        ``"thesis"`` (upsample, conv 3x3, BN, LeakyReLU) or ``"residual"`` (two
        convs per block with a 1x1-projected skip connection).
    head
        How the last stage reaches full resolution: ``"upsample"`` (the thesis:
        nearest upsampling then a 3x3 conv to one channel) or ``"pixelshuffle"``
        (a 3x3 conv to 4 channels at half resolution, then a sub-pixel shuffle,
        so every output cell has its own value).
    output
        ``"sigmoid"`` (the thesis; data in [0, 1]) or ``"linear"``.
    bn_momentum, bn_eps
        BatchNorm settings in PyTorch's convention (Keras' momentum 0.99 is
        PyTorch's 0.01).
    init
        ``"keras"`` (He-uniform convs and dense layers, Glorot-uniform latent
        heads, zero biases: the thesis' initialisers) or ``"torch"`` defaults.
    """

    kind: str = "vae"
    patch_size: int = 96
    latent_dim: int | None = 100
    enc_filters: tuple[int, ...] = (64, 128, 128, 256)
    dec_filters: tuple[int, ...] = (128, 128, 64)
    hidden_dim: int = 100
    negative_slope: float = 0.3
    decoder: str = "thesis"
    head: str = "upsample"
    output: str = "sigmoid"
    bn_momentum: float = 0.01
    bn_eps: float = 1e-3
    init: str = "keras"

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ConfigError(
                f"unknown model kind {self.kind!r}; choose from {', '.join(MODEL_KINDS)}"
            )
        if self.decoder not in DECODERS:
            raise ConfigError(
                f"unknown decoder {self.decoder!r}; choose from {', '.join(DECODERS)}"
            )
        if self.head not in HEADS:
            raise ConfigError(f"unknown head {self.head!r}; choose from {', '.join(HEADS)}")
        if self.output not in OUTPUTS:
            raise ConfigError(f"unknown output {self.output!r}; choose from {', '.join(OUTPUTS)}")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; choose from {', '.join(INITS)}")
        if self.patch_size < 16 or self.patch_size % 16:
            raise ConfigError(
                f"patch_size must be a positive multiple of 16, got {self.patch_size}"
            )
        if len(self.enc_filters) != 4 or len(self.dec_filters) != 3:
            raise ConfigError("enc_filters needs 4 values and dec_filters 3 values")
        if min(self.enc_filters + self.dec_filters) < 1 or self.hidden_dim < 0:
            raise ConfigError("filter counts must be positive and hidden_dim >= 0")
        if self.latent_dim is None and self.kind != "ae":
            raise ConfigError(
                f"a {self.kind} needs a latent_dim (only the AE can use the feature map)"
            )
        if self.latent_dim is not None and self.latent_dim < 1:
            raise ConfigError(f"latent_dim must be positive, got {self.latent_dim}")

    @property
    def variational(self) -> bool:
        """Whether the encoder outputs a distribution (mu, logvar)."""
        return self.kind != "ae"

    @property
    def map_size(self) -> int:
        """Side of the encoder's output feature map (patch_size / 16)."""
        return self.patch_size // 16

    @property
    def flat_map(self) -> int:
        """Number of values in the encoder's output feature map."""
        return self.map_size**2 * self.enc_filters[-1]

    @property
    def flat_latent(self) -> int:
        """Length of the flat latent vector the codec stores per patch."""
        return self.flat_map if self.latent_dim is None else self.latent_dim

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of builtins (tuples become lists), safe for JSON and checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**kwargs)
