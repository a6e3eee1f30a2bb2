"""What every baseline codec shares: a self-contained byte stream, NaN handling, a ratio sweep.

A baseline turns a 2-D float32 grid (metres) into ``bytes`` and back. The bytes
are *everything* the decoder needs besides the codec itself (and, for PCA, its
fitted basis, which plays the part of topoae's model weights): the grid shape,
the NaN mask, any scale/offset, and the codec's own stream. So the compression
ratio ``4 * rows * cols / len(blob)`` counts every byte of side information.

Frame layout (little-endian)::

    u8 flags (bit 0: NaN mask follows) | u32 rows | u32 cols
    [u32 n | n bytes: zlib(packbits(nan_mask))]     only when flags & 1
    codec payload                                   the rest

NaN cells are filled with their nearest valid value before coding (codecs
cannot take NaN and smooth fill costs few bits) and restored as NaN on decode.
"""

from __future__ import annotations

import math
import struct
import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from topoae.errors import ConfigError, DependencyError, InputError
from topoae.nanfill import fill_nearest

_HEAD = struct.Struct("<BII")
_LEN = struct.Struct("<I")


@dataclass(frozen=True)
class Knob:
    """The one setting a generic ratio sweep turns.

    ``lo``/``hi`` bound it; when ``relative`` they are fractions of the
    grid's value range. ``increasing``: more bytes as the knob grows.
    """

    name: str
    lo: float
    hi: float
    log: bool = True
    increasing: bool = False
    relative: bool = False


@dataclass(frozen=True)
class Encoded:
    """One encoding of a grid: the bytes and how they were made."""

    blob: bytes
    setting: dict[str, Any]
    shape: tuple[int, int]
    target_ratio: float | None = None
    reached: bool = True  #: False when the codec cannot get down to the target ratio
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return len(self.blob)

    @property
    def ratio(self) -> float:
        return 4.0 * self.shape[0] * self.shape[1] / len(self.blob)


def pack(payload: bytes, shape: tuple[int, int], mask: np.ndarray | None) -> bytes:
    """Frame a codec payload with the grid shape and the NaN mask."""
    parts = [_HEAD.pack(1 if mask is not None else 0, *shape)]
    if mask is not None:
        m = zlib.compress(np.packbits(mask.ravel()).tobytes(), 9)
        parts += [_LEN.pack(len(m)), m]
    parts.append(bytes(payload))
    return b"".join(parts)


def frame_size(z: np.ndarray) -> int:
    """Bytes the frame of :func:`pack` adds for grid ``z`` (header and NaN mask)."""
    nan = np.isnan(z)
    return len(pack(b"", z.shape, nan if nan.any() else None))


def unpack(blob: bytes) -> tuple[bytes, tuple[int, int], np.ndarray | None]:
    """Inverse of :func:`pack`: payload, shape, NaN mask (or None)."""
    try:
        flags, rows, cols = _HEAD.unpack_from(blob, 0)
        pos = _HEAD.size
        mask = None
        if flags & 1:
            (n,) = _LEN.unpack_from(blob, pos)
            pos += _LEN.size
            bits = np.frombuffer(zlib.decompress(blob[pos : pos + n]), dtype=np.uint8)
            mask = np.unpackbits(bits)[: rows * cols].reshape(rows, cols).astype(bool)
            pos += n
    except (struct.error, zlib.error, ValueError) as exc:
        raise InputError(f"corrupted baseline stream: {exc}") from None
    return blob[pos:], (rows, cols), mask


def value_range(z: np.ndarray) -> float:
    """Peak-to-peak of the finite values, at least 1 (for knob bounds)."""
    r = float(np.nanmax(z) - np.nanmin(z))
    return r if r > 0 else 1.0


def _check_grid(z: Any) -> np.ndarray:
    a = np.asarray(z, dtype=np.float32)
    if a.ndim != 2:
        raise InputError(f"baselines take a 2-D grid, got shape {a.shape}")
    if min(a.shape) < 1:
        raise InputError(f"empty grid {a.shape}")
    return a


def _byte_budget(z: Any, ratio: float) -> tuple[np.ndarray, float]:
    """The checked float32 grid and the bytes a compression ``ratio`` allows it (4 bytes a cell)."""
    if not ratio > 0:
        raise ConfigError(f"compression ratio must be positive, got {ratio}")
    a = _check_grid(z)
    return a, 4.0 * a.size / ratio


class Baseline(ABC):
    """A classic (non-learned) codec run on a whole 2-D grid.

    Subclasses implement :meth:`_encode` (float32 grid without NaN -> payload
    bytes) and :meth:`_decode` (payload, shape -> grid), and either declare a
    :attr:`knob` for the generic ratio sweep or override :meth:`at_ratio`.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    requires: ClassVar[tuple[str, ...]] = ()
    knob: ClassVar[Knob | None] = None
    error_bounded: ClassVar[bool] = False

    @classmethod
    def available(cls) -> bool:
        """Whether the libraries this codec needs can be imported."""
        import importlib.util

        return all(importlib.util.find_spec(m) is not None for m in cls.requires)

    def _require(self) -> None:
        if not self.available():
            raise DependencyError(
                f"baseline {self.name!r} needs {', '.join(self.requires)} "
                "(pip install 'topoae[compare]')"
            )

    @abstractmethod
    def _encode(self, z: np.ndarray, *args: Any, **setting: Any) -> bytes:
        """Payload of a NaN-free float32 grid.

        Subclasses take their own keyword-only settings (``*args: Any, **setting: Any``
        lets a type checker accept any such override).
        """

    @abstractmethod
    def _decode(self, payload: bytes, shape: tuple[int, int]) -> np.ndarray:
        """Grid of ``shape`` from a payload."""

    def encode(self, z: Any, **setting: Any) -> bytes:
        """Self-contained bytes of grid ``z`` (2-D, metres, NaN allowed) at ``setting``."""
        self._require()
        filled, mask = fill_nearest(np.ascontiguousarray(_check_grid(z)))
        return pack(self._encode(filled, **setting), filled.shape, mask)

    def decode(self, blob: bytes) -> np.ndarray:
        """Float32 grid from :meth:`encode`'s bytes (NaN where the input was NaN)."""
        self._require()
        payload, shape, mask = unpack(blob)
        out = np.asarray(self._decode(payload, shape), dtype=np.float32).reshape(shape)
        if mask is not None:
            out = np.where(mask, np.float32(np.nan), out)
        return out

    def bounded_setting(self, max_error: float) -> dict[str, Any]:
        """Setting that guarantees ``|error| <= max_error`` on every cell."""
        raise ConfigError(f"baseline {self.name!r} has no error-bounded mode")

    def at_error(self, z: Any, max_error: float) -> Encoded:
        """Encode ``z`` so that every valid cell is within ``max_error`` (metres)."""
        if not max_error > 0:
            raise ConfigError(f"max error must be positive, got {max_error}")
        setting = self.bounded_setting(float(max_error))
        a = _check_grid(z)
        return Encoded(self.encode(a, **setting), setting, a.shape)

    def at_ratio(self, z: Any, ratio: float, *, tol: float = 0.02, max_iter: int = 12) -> Encoded:
        """Encode ``z`` at the setting whose size is closest to ``4 * z.size / ratio`` bytes, not above.

        Sweeps :attr:`knob` by bracketing and interpolation on log(bytes), then
        tries a few slightly cheaper settings: some codecs are not monotone (SZ3
        switches predictors with the bound) and can have a lower error at fewer
        bytes. Of all settings tried within the budget, the one with the lowest
        RMSE is kept. When even the knob's cheapest end gives more bytes, that
        encoding is returned with ``reached=False``.
        """
        a, budget = _byte_budget(z, ratio)
        knob = self.knob
        if knob is None:
            raise NotImplementedError(f"{self.name} must override at_ratio")
        scale = value_range(a) if knob.relative else 1.0
        fwd = math.log if knob.log else (lambda v: v)
        inv = math.exp if knob.log else (lambda v: v)
        tried: dict[float, bytes] = {}

        def size(t: float) -> int:
            if t not in tried:
                tried[t] = self.encode(a, **{knob.name: inv(t)})
            return len(tried[t])

        lo, hi = fwd(knob.lo * scale), fwd(knob.hi * scale)
        cheap, rich = (lo, hi) if knob.increasing else (hi, lo)  # cheap end: fewest bytes
        if size(cheap) > budget:
            return self._result(a, tried, cheap, knob, ratio, reached=False)
        if size(rich) <= budget:
            return self._result(a, tried, rich, knob, ratio)
        ok, bad = cheap, rich  # invariant: size(ok) <= budget < size(bad)
        for _ in range(max_iter):
            if size(ok) >= (1.0 - tol) * budget:
                break
            la, lb = math.log(size(ok)), math.log(size(bad))
            frac = (math.log(budget) - la) / (lb - la) if lb > la else 0.5
            t = ok + min(max(frac, 0.1), 0.9) * (bad - ok)
            if size(t) <= budget:
                ok = t
            else:
                bad = t
        for frac in (0.01, 0.03, 0.06, 0.1):
            size(ok + frac * (cheap - ok))
        ref = a.astype(np.float64)
        valid = ~np.isnan(ref)

        def err(t: float) -> float:
            d = self.decode(tried[t])[valid] - ref[valid]
            return float(np.mean(d * d))

        best = min((t for t in tried if len(tried[t]) <= budget), key=err)
        return self._result(a, tried, best, knob, ratio)

    def _result(self, a, tried, t, knob, ratio, *, reached=True) -> Encoded:
        value = math.exp(t) if knob.log else t
        return Encoded(
            tried[t], {knob.name: value}, a.shape, ratio, reached, {"sweep_encodes": len(tried)}
        )
