"""Invertible normalisation of elevation patches to the [0, 1] range models see.

``global``: one fixed affine map for every patch; the thesis used GEBCO_2019's
range, n = (z + 10880.587890625) / 19493.744140625.
``patch``: each patch's own min → 0 and max → 1 (offset/scale stored per patch).
Either way metres = n * scale + offset, with per-patch ``offset``/``scale`` arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from topoae.errors import ConfigError

GEBCO2019_ZMIN = -10880.587890625
GEBCO2019_ZRANGE = 19493.744140625
MODES = ("global", "patch")


@dataclass(frozen=True)
class Normalisation:
    """How patches were mapped to [0, 1]; stored in every artefact's attributes."""

    mode: str = "global"
    zmin: float = GEBCO2019_ZMIN
    zrange: float = GEBCO2019_ZRANGE

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"normalisation must be one of {', '.join(MODES)}, not {self.mode!r}")
        if not self.zrange > 0:
            raise ConfigError(f"normalisation range must be positive, not {self.zrange}")

    def to_dict(self) -> dict:
        return {"mode": self.mode, "zmin": self.zmin, "zrange": self.zrange}

    @classmethod
    def from_dict(cls, d: dict) -> Normalisation:
        return cls(
            mode=str(d["mode"]),
            zmin=float(d.get("zmin", GEBCO2019_ZMIN)),
            zrange=float(d.get("zrange", GEBCO2019_ZRANGE)),
        )

    def params(self, patches: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-patch ``(offset, scale)`` (float64, shape ``(N,)``) for ``patches`` ``(N, P, P)``.

        NaN cells are ignored; a flat (or all-NaN) patch gets scale 1 so the map stays invertible.
        """
        n = patches.shape[0]
        if self.mode == "global":
            return np.full(n, self.zmin), np.full(n, self.zrange)
        flat = patches.reshape(n, -1).astype(np.float64)
        with np.errstate(invalid="ignore"), _quiet():
            lo = np.nanmin(flat, axis=1)
            hi = np.nanmax(flat, axis=1)
        lo = np.where(np.isfinite(lo), lo, 0.0)
        scale = np.where(np.isfinite(hi) & (hi > lo), hi - lo, 1.0)
        return lo, scale


def normalise(
    patches: np.ndarray, offset: np.ndarray, scale: np.ndarray, dtype: np.dtype | type = np.float32
) -> np.ndarray:
    """``(z - offset) / scale`` per patch, ``patches`` shape ``(N, ...)``."""
    shape = (-1,) + (1,) * (patches.ndim - 1)
    return ((patches.astype(np.float64) - offset.reshape(shape)) / scale.reshape(shape)).astype(
        dtype
    )


def denormalise(values: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalise`: metres (float64) from normalised values."""
    shape = (-1,) + (1,) * (values.ndim - 1)
    return values.astype(np.float64) * scale.reshape(shape) + offset.reshape(shape)


class _quiet:
    """Silence numpy's 'All-NaN slice' RuntimeWarning (handled explicitly)."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)
