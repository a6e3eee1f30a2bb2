"""Where patches go on a grid, and how their overlaps are blended back together.

A region of ``height x width`` cells is covered by a regular grid of square
patches of edge ``patch`` placed every ``stride`` cells. The first patch starts
``margin = (patch - stride) // 2`` cells before the first grid cell, so the
blending ramp of the outer patches falls mostly on padding; cells outside the grid
are filled by reflection (``numpy.pad(mode="reflect")`` semantics). Every grid
cell is covered by at least one patch.

Overlapping patches are blended with a separable window that is 1 in the patch
centre and ramps as ``sin^2`` over the overlap. Two neighbouring ramps sum to one
exactly (``sin^2 + cos^2``), and the blended value is divided by the sum of the
weights anyway, so weights are normalised to sum to one on every cell, whatever
the stride. Because the tiling is a product of two 1-D tilings and the window is
separable, the weight sum at a cell is the product of two 1-D sums.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from topoae.constants import WINDOWS
from topoae.errors import ConfigError

# Weight outside the centre zone for ``nearest``: small but positive, so that a
# cell that no centre zone covers (odd overlaps at the far edge) is still defined.
_NEAREST_EPS = 1e-6


@dataclass(frozen=True)
class Layout:
    """Patch placement over a ``height x width`` grid.

    Parameters
    ----------
    height, width
        Grid size in cells (any size >= 1; grids smaller than a patch are padded).
    patch
        Patch edge in cells.
    stride
        Distance between the first cells of neighbouring patches, ``1 <= stride <= patch``.
    """

    height: int
    width: int
    patch: int
    stride: int

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise ConfigError(f"grid of {self.height}x{self.width} cells is empty")
        if self.patch < 1:
            raise ConfigError(f"patch size must be positive, got {self.patch}")
        if not 1 <= self.stride <= self.patch:
            raise ConfigError(
                f"stride must be in 1..{self.patch} (the patch size), got {self.stride}"
            )

    @property
    def overlap(self) -> int:
        """Cells shared by two neighbouring patches."""
        return self.patch - self.stride

    @property
    def margin(self) -> int:
        """Cells of padding before the first grid cell (first patch starts at ``-margin``)."""
        return self.overlap // 2

    def count(self, n: int) -> int:
        """Number of patches along an axis of ``n`` cells."""
        need = n + 2 * self.margin - self.patch
        return 1 if need <= 0 else math.ceil(need / self.stride) + 1

    @property
    def n_rows(self) -> int:
        """Patches along the first (row) axis."""
        return self.count(self.height)

    @property
    def n_cols(self) -> int:
        """Patches along the second (column) axis."""
        return self.count(self.width)

    def starts(self, n_patches: int) -> np.ndarray:
        """First cell (may be negative) of each of ``n_patches`` patches along an axis."""
        return np.arange(n_patches, dtype=np.int64) * self.stride - self.margin

    def centres(self, n_patches: int) -> np.ndarray:
        """Fractional cell index of each patch centre along an axis."""
        return self.starts(n_patches) + (self.patch - 1) / 2.0

    def rows_touching(self, lo: int, hi: int) -> range:
        """Patch rows whose extent intersects grid rows ``[lo, hi)``."""
        s, p, m = self.stride, self.patch, self.margin
        first = max(0, -((-(lo + m - p + 1)) // s))  # ceil((lo + m - p + 1) / s)
        last = min(self.n_rows - 1, (hi - 1 + m) // s)
        return range(first, last + 1)


def reflect_index(start: int, stop: int, n: int) -> np.ndarray:
    """Indices into an axis of ``n`` cells for positions ``start..stop-1``, mirrored at the ends.

    Same convention as ``numpy.pad(mode="reflect")`` (the edge cell is not repeated),
    repeated as often as needed, so any padding width works, even ``n == 1``.
    """
    i = np.arange(start, stop, dtype=np.int64)
    if n == 1:
        return np.zeros_like(i)
    period = 2 * (n - 1)
    j = np.mod(i, period)
    return np.where(j >= n, period - j, j)


def window_1d(patch: int, overlap: int, kind: str = "cosine") -> np.ndarray:
    """Blending weights along one axis of a patch, float64 of length ``patch``, all > 0.

    ``cosine``: 1 in the centre, ``sin^2(pi (i + 1/2) / (2 r))`` over the first
    ``r = min(overlap, patch // 2)`` cells and mirrored at the end, so that two
    neighbours overlapping by ``r`` cells sum to exactly one.
    """
    if kind not in WINDOWS:
        raise ConfigError(f"unknown blending window {kind!r}; one of {', '.join(WINDOWS)}")
    w = np.ones(patch, dtype=np.float64)
    if kind == "uniform" or overlap <= 0:
        return w
    if kind == "nearest":
        lo, hi = overlap // 2, patch - (overlap - overlap // 2)
        w[:lo] = _NEAREST_EPS
        w[hi:] = _NEAREST_EPS
        return w
    r = min(overlap, patch // 2)
    ramp = np.sin(np.pi * (np.arange(r) + 0.5) / (2 * r)) ** 2
    w[:r] = ramp
    w[patch - r :] = ramp[::-1]
    return w


def weight_sum(layout: Layout, n_patches: int, lo: int, hi: int, w: np.ndarray) -> np.ndarray:
    """Sum of the 1-D weights of all ``n_patches`` patches at positions ``lo..hi-1``."""
    total = np.zeros(hi - lo, dtype=np.float64)
    for s in layout.starts(n_patches):
        a, b = max(lo, int(s)), min(hi, int(s) + layout.patch)
        if a < b:
            total[a - lo : b - lo] += w[a - int(s) : b - int(s)]
    return total


class OverlapAdd:
    """Accumulate weighted patches into a block of grid rows ``[lo, hi)`` of full width.

    Parameters
    ----------
    layout
        The tiling.
    lo, hi
        Grid rows of the block (``0 <= lo < hi <= layout.height``).
    kind
        Window kind (see :data:`WINDOWS`).

    Notes
    -----
    Sums are kept in float64; :meth:`result` divides by the (separable) weight
    sum and returns float32 of shape ``(hi - lo, layout.width)``.
    """

    def __init__(self, layout: Layout, lo: int, hi: int, kind: str = "cosine") -> None:
        self.layout, self.lo, self.hi = layout, lo, hi
        self.w = window_1d(layout.patch, layout.overlap, kind)
        self.w2 = np.outer(self.w, self.w)
        m = layout.margin
        # Buffer columns cover every patch column: grid column c is buffer column c + m.
        self.width = (layout.n_cols - 1) * layout.stride + layout.patch
        self.acc = np.zeros((hi - lo, self.width), dtype=np.float64)
        self.col_starts = layout.starts(layout.n_cols) + m

    def add_row(self, k: int, patches: np.ndarray) -> None:
        """Add the decoded patches ``(n_cols, P, P)`` of patch row ``k``."""
        lay = self.layout
        top = k * lay.stride - lay.margin
        a, b = max(self.lo, top), min(self.hi, top + lay.patch)
        if a >= b:
            return
        rows = slice(a - top, b - top)
        acc = self.acc[a - self.lo : b - self.lo]
        for j, c0 in enumerate(self.col_starts):
            acc[:, c0 : c0 + lay.patch] += self.w2[rows] * patches[j, rows]

    def result(self) -> np.ndarray:
        """Blended block, float32 ``(hi - lo, width)``, weights normalised to sum to one."""
        lay = self.layout
        m = lay.margin
        wr = weight_sum(lay, lay.n_rows, self.lo, self.hi, self.w)
        wc = weight_sum(lay, lay.n_cols, 0, lay.width, self.w)
        out = self.acc[:, m : m + lay.width] / np.outer(wr, wc)
        return out.astype(np.float32)
