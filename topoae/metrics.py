"""Error metrics of a reconstructed elevation grid against its original.

Everything here takes array-likes (NumPy arrays, xarray DataArrays, CPU torch
tensors) of the same shape and returns plain Python floats or NumPy arrays.
All computations run in float64.

NaN convention
--------------
Cells where the *reference* (the original) is NaN are nodata and are ignored.
A NaN in the *reconstruction* where the reference is valid is a codec failure
and is not hidden: it propagates, so the metric comes back NaN.

Peak convention of PSNR and SSIM
--------------------------------
The peak (``data_range``) is the peak-to-peak range of the reference over its
valid cells, ``max(ref) - min(ref)``, unless given. A region spanning -2000 m to
3000 m has a peak of 5000 m, so PSNR = 20 log10(5000 m / RMSE).

Thesis metrics (Table 5.1)
--------------------------
The 2020 thesis scores models on the [0, 1] GEBCO_2019 scale,
``(z - ZMIN) / ZRANGE``. The per-patch error is the Frobenius norm of the
residual of one 96x96 patch; "total L2" is the Frobenius norm of the residual
over all patches, i.e. ``sqrt(sum(per_patch**2))``; the max per-patch error is
the largest of them. A total L2 converts to an RMSE in metres as
``total_l2 * ZRANGE / sqrt(n_cells)`` (:func:`thesis_l2_to_rmse`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from topoae.errors import InputError, RegionError

#: Minimum elevation of GEBCO_2019 (m); the thesis' normalisation offset.
ZMIN = -10880.587890625
#: Elevation range of GEBCO_2019 (m); the thesis' normalisation scale.
ZRANGE = 19493.744140625
#: Patch size of the thesis' models (cells).
PATCH = 96

__all__ = [
    "PATCH",
    "ZMIN",
    "ZRANGE",
    "Metrics",
    "compare",
    "compression_ratio",
    "mae",
    "max_abs_error",
    "patch_errors",
    "psnr",
    "rmse",
    "ssim",
    "thesis_l2_to_rmse",
    "thesis_metrics",
]


def _as_array(a: Any) -> np.ndarray:
    """Return ``a`` as a float64 NumPy array (detaching torch tensors)."""
    if hasattr(a, "detach"):  # torch.Tensor
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _pair(ref: Any, rec: Any) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_array(ref), _as_array(rec)
    if x.shape != y.shape:
        raise InputError(f"shapes differ: reference {x.shape} vs reconstruction {y.shape}")
    if x.size == 0:
        raise InputError("empty arrays")
    return x, y


def _residual(ref: Any, rec: Any) -> np.ndarray:
    """Residual ``rec - ref`` on the valid cells of the reference (1-D)."""
    x, y = _pair(ref, rec)
    valid = ~np.isnan(x)
    if not valid.any():
        raise RegionError("the reference has no valid (non-NaN) cell")
    return y[valid] - x[valid]


def rmse(ref: Any, rec: Any) -> float:
    """Root-mean-square error, in the units of the inputs (metres for grids)."""
    d = _residual(ref, rec)
    return float(np.sqrt(np.mean(d * d)))


def mae(ref: Any, rec: Any) -> float:
    """Mean absolute error, in the units of the inputs."""
    return float(np.mean(np.abs(_residual(ref, rec))))


def max_abs_error(ref: Any, rec: Any) -> float:
    """Largest absolute error over the valid cells (NaN if the reconstruction has NaN there)."""
    d = np.abs(_residual(ref, rec))
    return float(np.nan) if np.isnan(d).any() else float(d.max())


def _peak(x: np.ndarray, data_range: float | None) -> float:
    if data_range is not None:
        if not data_range > 0:
            raise InputError(f"data_range must be positive, got {data_range}")
        return float(data_range)
    peak = float(np.nanmax(x) - np.nanmin(x))
    return peak if peak > 0 else 1.0


def psnr(ref: Any, rec: Any, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB: ``20 log10(peak / RMSE)``.

    Parameters
    ----------
    ref, rec : array-like
        Reference and reconstruction, same shape.
    data_range : float, optional
        The peak. Default: ``max(ref) - min(ref)`` over the valid cells
        (1 for a constant reference).

    Returns
    -------
    float
        PSNR in dB; ``inf`` for an exact reconstruction.
    """
    x, _ = _pair(ref, rec)
    e = rmse(ref, rec)
    peak = _peak(x, data_range)
    if e == 0:
        return math.inf
    return float(20.0 * np.log10(peak / e))


def ssim(
    ref: Any,
    rec: Any,
    *,
    data_range: float | None = None,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> float:
    """Mean structural similarity of two 2-D grids.

    Same definition and defaults as ``skimage.metrics.structural_similarity``
    (uniform ``win_size`` window, sample covariances, constants
    ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``, the border of half a window left
    out), computed in float64. NaN-aware: windows that touch a NaN cell of the
    reference are left out of the mean.

    Parameters
    ----------
    ref, rec : array-like
        2-D reference and reconstruction of the same shape, each side at
        least ``win_size``.
    data_range : float, optional
        ``L``, the peak; default ``max(ref) - min(ref)`` (see module notes).
    win_size : int
        Odd side of the square window.

    Returns
    -------
    float
        Mean SSIM in [-1, 1]; NaN if the reconstruction is NaN where the
        reference is valid.
    """
    from scipy.ndimage import uniform_filter

    x, y = _pair(ref, rec)
    if x.ndim != 2:
        raise InputError(f"ssim needs 2-D grids, got {x.ndim}-D")
    if win_size % 2 != 1 or win_size < 3:
        raise InputError(f"win_size must be odd and >= 3, got {win_size}")
    if min(x.shape) < win_size:
        raise InputError(f"grid {x.shape} is smaller than the SSIM window {win_size}")
    nan = np.isnan(x)
    if nan.all():
        raise RegionError("the reference has no valid (non-NaN) cell")
    peak = _peak(x, data_range)
    x = np.where(nan, 0.0, x)
    y = np.where(nan, 0.0, y)

    def f(a: np.ndarray) -> np.ndarray:
        return uniform_filter(a, size=win_size)

    npts = win_size * win_size
    cov_norm = npts / (npts - 1.0)
    ux, uy = f(x), f(y)
    vx = cov_norm * (f(x * x) - ux * ux)
    vy = cov_norm * (f(y * y) - uy * uy)
    vxy = cov_norm * (f(x * y) - ux * uy)
    c1, c2 = (k1 * peak) ** 2, (k2 * peak) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))

    pad = (win_size - 1) // 2
    inner = (slice(pad, x.shape[0] - pad), slice(pad, x.shape[1] - pad))
    s = s[inner]
    if nan.any():
        touched = f(nan.astype(np.float64))[inner] > 0.5 / npts
        if touched.all():
            raise RegionError("no SSIM window free of NaN cells")
        return float(s[~touched].mean())
    return float(s.mean())


def compression_ratio(n_cells: int, nbytes: int) -> float:
    """Raw float32 bytes (``4 * n_cells``) over compressed bytes."""
    if nbytes <= 0:
        raise InputError(f"compressed size must be positive, got {nbytes} bytes")
    return 4.0 * n_cells / nbytes


def patch_errors(
    ref: Any,
    rec: Any,
    *,
    patch: int = PATCH,
    zrange: float = ZRANGE,
) -> np.ndarray:
    """Per-patch Frobenius norm of the residual on the [0, 1] GEBCO_2019 scale.

    Parameters
    ----------
    ref, rec : array-like, metres
        Either a stack of patches ``(N, P, P)`` or a 2-D region ``(H, W)``. A
        region is cut into non-overlapping ``patch`` x ``patch`` tiles from its
        first cell; the last row/column of tiles may be smaller, so every cell
        is counted exactly once and ``sqrt(sum(errors**2))`` is the norm over
        the whole region.
    patch : int
        Tile side for a 2-D region.
    zrange : float
        Scale of the normalisation ``(z - ZMIN) / zrange`` (default: GEBCO_2019);
        the offset ``ZMIN`` cancels in a residual.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` float64 for a stack; ``(ceil(H/P), ceil(W/P))`` for a
        region. NaN cells of the reference are skipped (an all-NaN tile scores 0).
    """
    x, y = _pair(ref, rec)
    d = (y - x) / zrange
    d = np.where(np.isnan(x), 0.0, d)
    if x.ndim == 3:
        return np.sqrt(np.sum(d * d, axis=(1, 2)))
    if x.ndim != 2:
        raise InputError(f"expected (N, P, P) patches or an (H, W) region, got shape {x.shape}")
    if patch < 1:
        raise InputError(f"patch must be >= 1, got {patch}")
    h, w = x.shape
    nr, nc = -(-h // patch), -(-w // patch)
    sq = np.zeros((nr * patch, nc * patch))
    sq[:h, :w] = d * d
    return np.sqrt(sq.reshape(nr, patch, nc, patch).sum(axis=(1, 3)))


def thesis_metrics(ref: Any, rec: Any, *, patch: int = PATCH) -> dict[str, float]:
    """The thesis' Table 5.1 figures: ``total_l2`` and ``max_patch_l2`` (plus the patch count).

    See :func:`patch_errors` for the inputs.
    """
    e = patch_errors(ref, rec, patch=patch)
    return {
        "total_l2": float(np.sqrt(np.sum(e * e))),
        "max_patch_l2": float(np.max(e)),
        "n_patches": int(e.size),
    }


def thesis_l2_to_rmse(total_l2: float, n_cells: int, *, zrange: float = ZRANGE) -> float:
    """RMSE in metres equivalent to a thesis total L2 over ``n_cells`` valid cells."""
    return float(total_l2 * zrange / math.sqrt(n_cells))


@dataclass(frozen=True)
class Metrics:
    """All error figures of one reconstruction (metres unless noted)."""

    rmse: float
    mae: float
    max_abs: float
    psnr: float  #: dB, peak = data range of the reference
    ssim: float | None  #: None when the grid is not 2-D or smaller than the window
    total_l2: float  #: thesis scale [0, 1]
    max_patch_l2: float  #: thesis scale [0, 1]
    n_valid: int
    data_range: float

    def to_dict(self) -> dict[str, float | int | None]:
        """Plain dict for JSON (``inf`` PSNR stays a float)."""
        return asdict(self)


def compare(ref: Any, rec: Any, *, data_range: float | None = None, patch: int = PATCH) -> Metrics:
    """Compute every metric of this module at once.

    Parameters
    ----------
    ref, rec : array-like, metres
        2-D region ``(H, W)`` or patch stack ``(N, P, P)``.
    data_range : float, optional
        Peak for PSNR/SSIM (default: range of the reference).
    patch : int
        Tile side for the thesis metrics of a region.
    """
    x, y = _pair(ref, rec)
    valid = ~np.isnan(x)
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise RegionError("the reference has no valid (non-NaN) cell")
    peak = _peak(x, data_range)
    s: float | None = None
    if x.ndim == 2 and min(x.shape) >= 7:
        s = ssim(x, y, data_range=peak)
    elif x.ndim == 3 and min(x.shape[1:]) >= 7:
        per_patch = []
        for a, b in zip(x, y, strict=True):
            try:
                per_patch.append(ssim(a, b, data_range=peak))
            except RegionError:  # all-NaN patch, or no NaN-free window
                continue
        s = float(np.mean(per_patch)) if per_patch else None
    th = thesis_metrics(x, y, patch=patch)
    return Metrics(
        rmse=rmse(x, y),
        mae=mae(x, y),
        max_abs=max_abs_error(x, y),
        psnr=psnr(x, y, data_range=peak),
        ssim=s,
        total_l2=th["total_l2"],
        max_patch_l2=th["max_patch_l2"],
        n_valid=n_valid,
        data_range=peak,
    )
