"""8-bit per-channel quantisation of latent grids.

Each latent channel ``l`` is mapped linearly from ``[min_l, max_l]`` (over all
patches of the region) onto the integers ``0..255``. The per-channel ``lo``
(``min_l``) and ``step`` (``(max_l - min_l) / 255``) are stored as float32 side
information, two values per channel (named ``<var>_offset`` / ``<var>_scale`` in
latent files). The round-trip error of every value is at most ``step_l / 2`` (plus
float32 rounding). They are not the elevation normalisation's offset and scale
(:mod:`topoae.data.normalise`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from topoae.errors import ConfigError

#: Quantisation modes understood by the codec.
MODES = ("none", "8bit")

LEVELS = 255


@dataclass(frozen=True)
class Quantized:
    """Latents as uint8 codes with per-channel float32 ``lo`` (value of code 0) and ``step``.

    ``codes`` has the shape of the input (channels last); ``lo`` and ``step``
    have shape ``(channels,)``.
    """

    codes: np.ndarray
    lo: np.ndarray
    step: np.ndarray

    def dequantize(self) -> np.ndarray:
        """Float32 latents ``lo + codes * step`` (channels last)."""
        return dequantize(self.codes, self.lo, self.step)


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is a known quantisation mode, else raise :class:`ConfigError`."""
    if mode not in MODES:
        raise ConfigError(f"unknown quantisation {mode!r}; one of {', '.join(MODES)}")
    return mode


def quantize(z: np.ndarray) -> Quantized:
    """Quantise latents ``z`` (``(..., channels)``, finite) to 8 bits per value.

    Raises
    ------
    ConfigError
        If ``z`` is empty or holds NaN/inf.
    """
    z = np.asarray(z, dtype=np.float32)
    if z.size == 0:
        raise ConfigError("cannot quantise an empty latent array")
    if not np.all(np.isfinite(z)):
        raise ConfigError("latents hold NaN or inf; the model's encoder diverged")
    flat = z.reshape(-1, z.shape[-1]).astype(np.float64)
    lo = flat.min(axis=0)
    span = flat.max(axis=0) - lo
    step = np.where(span > 0, span / LEVELS, 1.0)
    # Round lo and step to float32 first, so encoder and decoder use the same numbers.
    lo32, step32 = lo.astype(np.float32), step.astype(np.float32)
    codes = np.rint((z - lo32.astype(np.float64)) / step32.astype(np.float64))
    codes = np.clip(codes, 0, LEVELS).astype(np.uint8)
    return Quantized(codes=codes, lo=lo32, step=step32)


def dequantize(codes: np.ndarray, lo: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Float32 latents ``lo + codes * step`` from uint8 ``codes`` and per-channel ``lo``/``step``
    (channels last)."""
    codes = np.asarray(codes)
    if codes.dtype != np.uint8:
        raise ConfigError(f"quantised latents must be uint8, got {codes.dtype}")
    out = codes.astype(np.float32) * np.asarray(step, dtype=np.float32)
    return out + np.asarray(lo, dtype=np.float32)
