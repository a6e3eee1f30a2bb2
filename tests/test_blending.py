"""Blending weights (topoae.codec.blending) over the patch codec's layout (topoae.layout)."""

from __future__ import annotations

import numpy as np
import pytest

from topoae.codec.blending import WINDOWS, OverlapAdd, weight_sum, window_1d
from topoae.errors import ConfigError
from topoae.layout import PatchLayout

CASES = [(50, 37, 16, 12), (7, 5, 16, 13), (100, 64, 16, 16), (33, 65, 16, 9), (40, 41, 16, 3)]


@pytest.mark.parametrize("kind", WINDOWS)
@pytest.mark.parametrize("overlap", [0, 1, 4, 7, 8, 12])
def test_window_is_positive_and_symmetric(kind, overlap):
    w = window_1d(16, overlap, kind)
    assert w.shape == (16,)
    assert np.all(w > 0)
    if kind != "nearest" or overlap % 2 == 0:  # nearest follows the margin (overlap // 2)
        np.testing.assert_array_equal(w, w[::-1])
    assert w.max() <= 1.0


@pytest.mark.parametrize("overlap", [1, 2, 5, 8])
def test_cosine_ramps_are_a_partition_of_unity(overlap):
    """Two neighbours overlapping by `overlap` cells have weights summing to exactly one."""
    p = 16
    w = window_1d(p, overlap, "cosine")
    np.testing.assert_allclose(w[p - overlap :] + w[:overlap], 1.0, rtol=0, atol=1e-15)


@pytest.mark.parametrize("h,w,p,s", CASES)
@pytest.mark.parametrize("kind", WINDOWS)
def test_weights_sum_to_one_after_normalisation(h, w, p, s, kind):
    """Blending all-ones patches gives exactly ones: the normalised weights sum to one."""
    lay = PatchLayout(h, w, p, s)
    acc = OverlapAdd(lay, 0, h, kind)
    for k in range(lay.n_rows):
        acc.add_row(k, np.ones((lay.n_cols, p, p)))
    np.testing.assert_allclose(acc.result(), 1.0, rtol=0, atol=1e-6)


def test_interior_raw_weights_sum_to_one_for_cosine():
    lay = PatchLayout(200, 10, 16, 12)
    w = window_1d(16, lay.overlap, "cosine")
    total = weight_sum(lay, lay.n_rows, 0, 200, w)
    o = lay.overlap  # the outer ramps of the first and last patch are not shared
    np.testing.assert_allclose(total[o:-o], 1.0, atol=1e-12)
    assert total.min() > 0.5


def test_blending_is_a_weighted_mean_of_the_overlapping_patches():
    """Where two patches overlap, the result lies between their values; elsewhere it is theirs."""
    lay = PatchLayout(24, 12, 16, 12)  # two patch rows, one column, overlap 4
    assert (lay.n_rows, lay.n_cols) == (2, 1)
    acc = OverlapAdd(lay, 0, lay.height, "cosine")
    acc.add_row(0, np.full((1, 16, 16), 10.0))
    acc.add_row(1, np.full((1, 16, 16), 20.0))
    out = acc.result()[:, 5]
    m = lay.margin
    assert np.all(out[: 12 - m] == 10.0)  # only patch 0
    assert np.all(out[16 - m :] == 20.0)  # only patch 1
    mid = out[12 - m : 16 - m]
    assert np.all(np.diff(mid) > 0) and mid.min() > 10 and mid.max() < 20


def test_unknown_window_is_refused():
    with pytest.raises(ConfigError, match="window"):
        window_1d(16, 4, "gaussian")
