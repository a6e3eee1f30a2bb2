"""Patch placement (topoae.layout): one object for the patch codec, the tiling and the learned codec."""

from __future__ import annotations

import numpy as np
import pytest

from topoae.errors import ConfigError, RegionError
from topoae.layout import PatchLayout, reflect_index, symmetric_index

CASES = [(50, 37, 16, 12), (7, 5, 16, 13), (100, 64, 16, 16), (33, 65, 16, 9), (40, 41, 16, 3)]


# --- padded, overlapping patches: the patch codec ---------------------------------------------
@pytest.mark.parametrize("h,w,p,s", CASES)
def test_every_cell_is_covered(h, w, p, s):
    lay = PatchLayout(h, w, p, s)
    for n, size in ((lay.n_rows, h), (lay.n_cols, w)):
        starts = lay.starts(n)
        cover = np.zeros(size, int)
        for a in starts:
            cover[max(0, a) : max(0, a + p)] += 1
        assert cover.min() >= 1
        assert starts[0] == -lay.margin
        assert starts[-1] + p >= size  # the last patch reaches the far edge


@pytest.mark.parametrize("n", [1, 2, 3, 10])
def test_reflect_index_matches_numpy_pad(n):
    x = np.arange(n)
    for pad in range(0, 3 * n + 2):
        idx = reflect_index(-pad, n + pad, n)
        np.testing.assert_array_equal(x[idx], np.pad(x, pad, mode="reflect"))


@pytest.mark.parametrize("h,w,p,s", CASES)
def test_rows_touching_matches_brute_force(h, w, p, s):
    lay = PatchLayout(h, w, p, s)
    starts = lay.starts(lay.n_rows)
    for lo in range(h):
        for hi in range(lo + 1, min(h, lo + 30) + 1):
            expect = [k for k, a in enumerate(starts) if a < hi and a + p > lo]
            assert list(lay.rows_touching(lo, hi)) == expect


@pytest.mark.parametrize("args", [(10, 10, 16, 0), (10, 10, 16, 17), (0, 10, 16, 8)])
def test_bad_layouts_are_refused(args):
    with pytest.raises(ConfigError):
        PatchLayout(*args)


@pytest.mark.parametrize("n", [1, 2, 3, 10])
def test_symmetric_index_matches_numpy_pad(n):
    x = np.arange(n)
    for pad in range(0, 3 * n + 2):
        idx = symmetric_index(-pad, n + pad, n)
        np.testing.assert_array_equal(x[idx], np.pad(x, pad, mode="symmetric"))


@pytest.mark.parametrize("h,w,p,s", CASES)
def test_indices_are_the_reflected_bands_of_patch_rows(h, w, p, s):
    lay = PatchLayout(h, w, p, s)
    m = lay.margin
    assert m == (p - s) // 2
    for k0 in range(lay.n_rows):
        for k1 in range(k0 + 1, lay.n_rows + 1):
            want = reflect_index(k0 * s - m, (k1 - 1) * s - m + p, h)
            np.testing.assert_array_equal(lay.indices(k0, k1), want)
    np.testing.assert_array_equal(
        lay.indices(0, lay.n_cols, axis=1), reflect_index(-m, (lay.n_cols - 1) * s - m + p, w)
    )


@pytest.mark.parametrize(
    "kw",
    [
        {"edge": "mirror"},
        {"margin": -1},
        {"align": 0},
        {"context": -2},
        {"edge": "valid", "margin": 1},
        {"edge": "valid", "context": 4},
        {"edge": "valid", "ragged": True},
    ],
)
def test_bad_options_are_refused(kw):
    with pytest.raises(ConfigError):
        PatchLayout(40, 40, 16, 16, **kw)


# --- whole patches inside the grid: the tiling ------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "patch", "stride"),
    [((300, 420), 96, 96), ((96, 96), 96, 96), ((200, 200), 96, 48), ((191, 500), 96, 32)],
)
def test_valid_layout_places_whole_patches_only(shape, patch, stride):
    lay = PatchLayout(*shape, patch, stride, edge="valid")
    assert lay.margin == 0
    for axis, n in enumerate(shape):
        count = lay.counts[axis]
        assert count == (n - patch) // stride + 1
        assert lay.starts(count)[0] == 0
        lo, hi = lay.band(0, count, axis)
        assert lo == 0 and hi <= n < hi + stride  # the next patch would not fit
        np.testing.assert_array_equal(lay.indices(0, count, axis), np.arange(hi))
    with pytest.raises(ConfigError):
        lay.index(-1, 3)


def test_valid_layout_refuses_a_grid_smaller_than_a_patch():
    with pytest.raises(RegionError, match="smaller than one"):
        PatchLayout(95, 400, 96, 96, edge="valid")


# --- ragged tiles on a 64-aligned grid, with mirrored context: the learned codec --------------
def _old_geometry(h, w, tile):
    """The learned codec's tiling as it was written before it became a PatchLayout."""
    padded = (-(-h // 64) * 64, -(-w // 64) * 64)
    tiles = (-(-padded[0] // tile), -(-padded[1] // tile))

    def span(i, axis):
        a = i * tile
        return a, min(a + tile, padded[axis])

    def cells(i, axis):
        a, b = span(i, axis)
        n = (h, w)[axis]
        return min(a, n), min(b, n)

    return padded, tiles, span, cells


def _mirror_about_edge_cell(idx, n):
    """numpy.pad(mode="reflect") indices, written out: the analysis context past the grid
    (before format 5 the codec repeated the edge cell; the encoder alone reads them)."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * n - 2
    m = np.mod(idx, period)
    return np.where(m < n, m, period - m)


@pytest.mark.parametrize("h,w", [(16, 16), (64, 64), (65, 200), (256, 256), (300, 513), (1030, 77)])
@pytest.mark.parametrize("tile", [64, 128, 256, 512])
def test_learned_codec_tiles_match_the_former_geometry(h, w, tile):
    from topoae.codec.learned import tile_layout

    geo = tile_layout(h, w, tile, 64)
    padded, tiles, span, cells = _old_geometry(h, w, tile)
    assert geo.padded == padded and geo.counts == tiles
    for axis in (0, 1):
        n = (h, w)[axis]
        for i in range(tiles[axis]):
            assert geo.span(i, axis) == span(i, axis)
            assert geo.cells(i, axis) == cells(i, axis)
            a, b = span(i, axis)
            np.testing.assert_array_equal(
                geo.indices(i, i + 1, axis), _mirror_about_edge_cell(np.arange(a - 64, b + 64), n)
            )
