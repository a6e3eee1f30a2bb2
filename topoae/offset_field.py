"""The smooth offset field: absolute level (−11 km…+8 km) carried cheaply and exactly.

A region's elevation is split into a coarse field and a residual. The field has
one node per ``stride × stride`` block (the block's mean, rounded to a multiple
of ``step`` metres, held as integers) and is interpolated bilinearly between
block centres (constant beyond the outermost centres), so it has no steps at
block edges. The learned codec codes only the residual; the integer nodes are
coded losslessly. The interpolation runs in float64 numpy with the same
operations in encoder and decoder, so both see the same field bit for bit.
"""

from __future__ import annotations

import numpy as np


def node_shape(shape: tuple[int, int], stride: int) -> tuple[int, int]:
    """Number of nodes along each axis for a grid of ``shape``."""
    return (-(-shape[0] // stride), -(-shape[1] // stride))


def block_means(z: np.ndarray, stride: int) -> np.ndarray:
    """NaN-aware means of ``stride × stride`` blocks (NaN for a block with no valid cell)."""
    h, w = z.shape
    nh, nw = node_shape((h, w), stride)
    pad = np.full((nh * stride, nw * stride), np.nan, dtype=np.float64)
    pad[:h, :w] = z
    blocks = pad.reshape(nh, stride, nw, stride)
    valid = np.isfinite(blocks)
    count = valid.sum(axis=(1, 3))
    total = np.where(valid, blocks, 0.0).sum(axis=(1, 3))
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def nodes_from_means(means: np.ndarray, step: float) -> np.ndarray:
    """Integer nodes (int32, units of ``step``) from block means; empty blocks take the
    nearest valid node; an all-NaN grid gives zeros."""
    if not np.isfinite(means).any():
        return np.zeros(means.shape, dtype=np.int32)
    return np.round(_fill_nearest(means) / step).astype(np.int32)


def compute_nodes(z: np.ndarray, stride: int, step: float) -> np.ndarray:
    """Integer nodes (int32, units of ``step`` metres) of the offset field of ``z``."""
    return nodes_from_means(block_means(z, stride), step)


def _fill_nearest(a: np.ndarray) -> np.ndarray:
    """Fill NaN entries of a small 2-D array with the nearest finite entry (Chebyshev rings)."""
    out = a.copy()
    bad = ~np.isfinite(out)
    if not bad.any():
        return out
    ii, jj = np.nonzero(~bad)
    for i, j in zip(*np.nonzero(bad), strict=True):
        k = np.argmin(np.maximum(np.abs(ii - i), np.abs(jj - j)) * 1e6 + np.abs(ii - i) + np.abs(jj - j))
        out[i, j] = a[ii[k], jj[k]]
    return out


def _axis_weights(n: int, nodes: int, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = (np.arange(n, dtype=np.float64) - (stride - 1) / 2.0) / stride
    i0 = np.clip(np.floor(p), 0, nodes - 1).astype(np.int64)
    i1 = np.minimum(i0 + 1, nodes - 1)
    t = np.clip(p - i0, 0.0, 1.0)
    t[i1 == i0] = 0.0
    return i0, i1, t


def expand(nodes: np.ndarray, shape: tuple[int, int], stride: int, step: float,
           rows: slice | np.ndarray | None = None, cols: slice | np.ndarray | None = None) -> np.ndarray:
    """The offset field in metres (float64) on ``shape``, or on the rows / cols selected
    (a slice or an index array into the full grid)."""
    h, w = shape
    v = nodes.astype(np.float64) * step
    i0, i1, t = _axis_weights(h, nodes.shape[0], stride)
    if rows is not None:
        i0, i1, t = i0[rows], i1[rows], t[rows]
    a = v[i0] * (1.0 - t)[:, None] + v[i1] * t[:, None]
    j0, j1, u = _axis_weights(w, nodes.shape[1], stride)
    if cols is not None:
        j0, j1, u = j0[cols], j1[cols], u[cols]
    return a[:, j0] * (1.0 - u)[None, :] + a[:, j1] * u[None, :]


#: metres: each neighbour difference counts at most this much in the roughness. Real terrain
#: stays far below it (6,355 m is the largest step between neighbours in the 185 GEBCO 15″
#: tiles); an unmarked fill value (32767, 99999) would otherwise coarsen the whole region.
STEP_CAP = 10_000.0


def roughness_sums(z: np.ndarray) -> tuple[float, int]:
    """Sum of |differences| between valid neighbours (both axes, each at most
    :data:`STEP_CAP`) and their count."""
    dy = np.minimum(np.abs(np.diff(z, axis=0)), STEP_CAP)
    dx = np.minimum(np.abs(np.diff(z, axis=1)), STEP_CAP)
    vy, vx = np.isfinite(dy), np.isfinite(dx)
    return float(dy[vy].sum() + dx[vx].sum()), int(vy.sum() + vx.sum())


def roughness(z: np.ndarray) -> float:
    """Mean |difference| between neighbouring cells, both axes together (metres per cell)."""
    s, n = roughness_sums(z)
    return 2.0 * s / n if n else 1.0


def scale_exponent(rough: float) -> int:
    """The roughness rounded to a quarter power of two: ``s = 2 ** (e / 4)``, e in [-8, 48]."""
    r = max(float(rough), 2.0 ** -2) if np.isfinite(rough) else 1.0
    return int(np.clip(np.rint(4.0 * np.log2(r)), -8, 48))


def scale_from_exponent(e: int) -> float:
    return float(2.0 ** (e / 4.0))
