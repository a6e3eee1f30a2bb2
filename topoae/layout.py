"""Where square patches go on a grid: the one placement shared by the tiling and both codecs.

A grid of ``height x width`` cells is covered, along each axis independently, by
patches of edge ``patch`` placed every ``stride`` cells; patch ``k`` starts at
position ``k * stride - margin`` (positions below 0 or from the grid's size on are
padding). ``edge`` says what lies outside the grid:

``"valid"``
    nothing: only patches wholly inside the grid are placed (the patch store of
    :mod:`topoae.data.tiling`); a grid smaller than one patch is a :class:`RegionError`.
``"reflect"`` / ``"symmetric"``
    mirrored cells, with ``numpy.pad`` semantics (``reflect`` does not repeat the edge
    cell, ``symmetric`` does), repeated as often as needed. Patches are placed until
    they cover the *padded grid*: the grid rounded up to a multiple of ``align``, plus
    ``margin`` cells on each side. The margin defaults to ``(patch - stride) // 2``, so
    that the overlap of the outer patches falls mostly on padding.

With ``ragged`` the last patch along an axis is cut at the end of the padded grid
instead of running past it (it may be smaller than ``patch``). ``context`` widens
every read (:meth:`PatchLayout.indices`) by that many cells on each side, for a
network that needs a receptive field around the cells it codes.

The three uses, one object:

- the patch codec (:mod:`topoae.codec.patch`, :mod:`topoae.codec.patch_decoder`):
  ``PatchLayout(h, w, 96, 84)``, overlapping patches blended back by
  :mod:`topoae.codec.blending`, reflect padding, centred margin;
- the tiling: ``PatchLayout(h, w, 96, 96, edge="valid")``;
- the learned codec (:func:`topoae.codec.learned.tile_layout`):
  ``PatchLayout(h, w, T, T, edge="reflect", margin=0, align=16, ragged=True, context=64)``,
  T×T tiles side by side on the grid padded to a multiple of 16 cells (64 in files before
  format 5), each analysed
  with 64 mirrored or neighbouring cells around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from topoae.errors import ConfigError, RegionError

#: What patches see outside the grid.
EDGES = ("valid", "reflect", "symmetric")


@dataclass(frozen=True)
class PatchLayout:
    """Patch placement over a ``height x width`` grid (see the module docstring).

    Parameters
    ----------
    height, width
        Grid size in cells (>= 1; padded layouts accept grids smaller than a patch).
    patch
        Patch edge in cells.
    stride
        Distance between the first cells of neighbouring patches, ``1 <= stride <= patch``.
    edge
        ``"valid"``, ``"reflect"`` or ``"symmetric"``.
    margin
        Cells of padding before the first grid cell (the first patch starts at ``-margin``);
        ``None``: ``(patch - stride) // 2``, or 0 for ``valid``.
    align
        The padded grid is the grid rounded up to a multiple of ``align`` cells (plus margins).
    context
        Extra cells read on each side of the patches by :meth:`indices`.
    ragged
        Cut the last patch along each axis at the end of the padded grid.
    """

    height: int
    width: int
    patch: int
    stride: int
    edge: str = "reflect"
    # None (the default) is replaced by __post_init__, so the attribute is always an int;
    # a dataclass field cannot say "takes None, holds int".
    margin: int = None  # type: ignore[assignment]
    align: int = 1
    context: int = 0
    ragged: bool = False

    def __post_init__(self) -> None:
        if self.edge not in EDGES:
            raise ConfigError(f"unknown patch edge {self.edge!r}; one of {', '.join(EDGES)}")
        if self.height < 1 or self.width < 1:
            raise ConfigError(f"grid of {self.height}x{self.width} cells is empty")
        if self.patch < 1:
            raise ConfigError(f"patch size must be positive, got {self.patch}")
        if not 1 <= self.stride <= self.patch:
            raise ConfigError(
                f"stride must be in 1..{self.patch} (the patch size), got {self.stride}"
            )
        if self.margin is None:
            object.__setattr__(self, "margin", 0 if self.edge == "valid" else self.overlap // 2)
        if self.margin < 0 or self.align < 1 or self.context < 0:
            raise ConfigError("margin and context must be >= 0 and align >= 1")
        if self.edge == "valid":
            if self.margin or self.align != 1 or self.context or self.ragged:
                raise ConfigError("a valid layout has no padding (margin 0, align 1, no context)")
            if self.height < self.patch or self.width < self.patch:
                raise RegionError(
                    f"region of {self.height}x{self.width} cells is smaller than one "
                    f"{self.patch}x{self.patch} patch"
                )

    @property
    def overlap(self) -> int:
        """Cells shared by two neighbouring patches."""
        return self.patch - self.stride

    def size(self, axis: int) -> int:
        """Grid cells along ``axis`` (0: rows, 1: columns)."""
        return (self.height, self.width)[axis]

    @property
    def padded(self) -> tuple[int, int]:
        """Cells of the padded grid per axis: the grid rounded up to ``align``, plus the margins."""
        h, w = (-(-n // self.align) * self.align + 2 * self.margin for n in (self.height, self.width))
        return h, w

    def count(self, n: int) -> int:
        """Number of patches along an axis of ``n`` grid cells."""
        if self.edge == "valid":
            return (n - self.patch) // self.stride + 1
        need = -(-n // self.align) * self.align + 2 * self.margin - self.patch
        return 1 if need <= 0 else -(-need // self.stride) + 1

    @property
    def n_rows(self) -> int:
        """Patches along the first (row) axis."""
        return self.count(self.height)

    @property
    def n_cols(self) -> int:
        """Patches along the second (column) axis."""
        return self.count(self.width)

    @property
    def counts(self) -> tuple[int, int]:
        """``(n_rows, n_cols)``."""
        return self.n_rows, self.n_cols

    def starts(self, n_patches: int) -> np.ndarray:
        """First position (may be negative) of each of ``n_patches`` patches along an axis."""
        return np.arange(n_patches, dtype=np.int64) * self.stride - self.margin

    def centres(self, n_patches: int) -> np.ndarray:
        """Fractional cell index of each (whole) patch centre along an axis."""
        return self.starts(n_patches) + (self.patch - 1) / 2.0

    def band(self, k0: int, k1: int, axis: int = 0) -> tuple[int, int]:
        """Positions ``[lo, hi)`` covered by patches ``k0..k1-1`` along ``axis``.

        Positions outside ``0..size-1`` are padding; a ragged layout stops at the end
        of the padded grid.
        """
        lo = k0 * self.stride - self.margin
        hi = (k1 - 1) * self.stride - self.margin + self.patch
        if self.ragged:
            hi = min(hi, self.padded[axis] - self.margin)
        return lo, hi

    def span(self, k: int, axis: int = 0) -> tuple[int, int]:
        """Positions ``[lo, hi)`` of patch ``k`` along ``axis``."""
        return self.band(k, k + 1, axis)

    def cells(self, k: int, axis: int = 0) -> tuple[int, int]:
        """The part of patch ``k``'s span that lies on the grid, ``[lo, hi)``."""
        a, b = self.span(k, axis)
        n = self.size(axis)
        return min(max(a, 0), n), min(max(b, 0), n)

    def index(self, start: int, stop: int, axis: int = 0) -> np.ndarray:
        """Grid indices (int64) of positions ``start..stop-1`` along ``axis``, by the edge rule."""
        n = self.size(axis)
        if self.edge == "reflect":
            return reflect_index(start, stop, n)
        if self.edge == "symmetric":
            return symmetric_index(start, stop, n)
        if start < 0 or stop > n:
            raise ConfigError(f"positions {start}..{stop - 1} lie outside a valid layout's {n} cells")
        return np.arange(start, stop, dtype=np.int64)

    def indices(self, k0: int, k1: int, axis: int = 0) -> np.ndarray:
        """Grid indices of the cells patches ``k0..k1-1`` read along ``axis``: their band
        widened by ``context`` on each side, mirrored past the grid's edges."""
        lo, hi = self.band(k0, k1, axis)
        return self.index(lo - self.context, hi + self.context, axis)

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


def symmetric_index(start: int, stop: int, n: int) -> np.ndarray:
    """Like :func:`reflect_index` with ``numpy.pad(mode="symmetric")``: the edge cell is repeated."""
    i = np.arange(start, stop, dtype=np.int64)
    period = 2 * n
    j = np.mod(i, period)
    return np.where(j < n, j, period - 1 - j)
