"""How overlapping patches are blended back into a grid.

Patches are placed by a :class:`topoae.layout.PatchLayout` with padded edges: the
first patch starts ``margin = (patch - stride) // 2`` cells before the first grid
cell, so the blending ramp of the outer patches falls mostly on padding.

Overlapping patches are blended with a separable window that is 1 in the patch
centre and ramps as ``sin^2`` over the overlap. Two neighbouring ramps sum to one
exactly (``sin^2 + cos^2``), and the blended value is divided by the sum of the
weights anyway, so weights are normalised to sum to one on every cell, whatever
the stride. Because the layout is a product of two 1-D layouts and the window is
separable, the weight sum at a cell is the product of two 1-D sums.
"""

from __future__ import annotations

import numpy as np

from topoae.constants import WINDOWS
from topoae.errors import ConfigError
from topoae.layout import PatchLayout

# Weight outside the centre zone for ``nearest``: small but positive, so that a
# cell that no centre zone covers (odd overlaps at the far edge) is still defined.
_NEAREST_EPS = 1e-6


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


def weight_sum(layout: PatchLayout, n_patches: int, lo: int, hi: int, w: np.ndarray) -> np.ndarray:
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
        Where the patches go (a padded, non-ragged :class:`~topoae.layout.PatchLayout`).
    lo, hi
        Grid rows of the block (``0 <= lo < hi <= layout.height``).
    kind
        Window kind (see :data:`WINDOWS`).

    Notes
    -----
    Sums are kept in float64; :meth:`result` divides by the (separable) weight
    sum and returns float32 of shape ``(hi - lo, layout.width)``.
    """

    def __init__(self, layout: PatchLayout, lo: int, hi: int, kind: str = "cosine") -> None:
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
