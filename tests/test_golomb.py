"""Exp-Golomb frames (topoae.codec.golomb) and their place among the residual frames."""

from __future__ import annotations

import numpy as np
import pytest

from topoae.codec import golomb, residual
from topoae.errors import StoreError


@pytest.mark.parametrize("values", [
    np.array([0]),
    np.array([-1, 1, -2, 2, 0]),
    np.array([golomb.LIMIT - 1, -(golomb.LIMIT - 1), 0, 5]),
    np.zeros(300, dtype=np.int64),
    np.random.default_rng(0).integers(-3000, 3000, 81),
    np.round(np.random.default_rng(1).laplace(0, 40, 5000)).astype(np.int64),
])
def test_round_trip_exact(values):
    blob = golomb.encode(values)
    back = golomb.decode(blob, values.size)
    assert back.dtype == np.int64 and np.array_equal(back, values)
    assert 8 * (len(blob) - 1) - golomb.cost_bits(values, blob[0]) in range(8)  # padding < 1 byte


def test_order_is_the_cheapest():
    v = np.round(np.random.default_rng(2).laplace(0, 200, 64)).astype(np.int64)
    k = golomb.encode(v)[0]
    assert all(golomb.cost_bits(v, k) <= golomb.cost_bits(v, j) for j in range(golomb.MAX_K + 1))


def test_empty_and_too_large():
    assert golomb.decode(golomb.encode(np.zeros(0, np.int64)), 0).size == 0
    for big in (golomb.LIMIT, -golomb.LIMIT, np.iinfo(np.int64).min):  # abs(int64 min) < 0
        with pytest.raises(ValueError):
            golomb.encode(np.array([big, 3]))
    q = np.array([[np.iinfo(np.int64).min + 1, 0]])  # the residual frames fall back to zstd
    assert np.array_equal(residual.decode_residual(residual.encode_residual(q), q.shape), q)
    for shape in ((-1, 5), (2 ** 32, 2 ** 32), (3,)):
        with pytest.raises(StoreError):
            residual.decode_residual(bytes([3, 0]), shape)


@pytest.mark.parametrize("cut", ["truncate", "extra", "order"])
def test_damaged_frames_are_store_errors(cut):
    v = np.random.default_rng(3).integers(-500, 500, 64)
    blob = golomb.encode(v)
    bad = {"truncate": blob[:len(blob) // 2], "extra": blob + b"\xff",
           "order": bytes([golomb.MAX_K + 1]) + blob[1:]}[cut]
    with pytest.raises(StoreError):
        golomb.decode(bad, v.size)


def test_residual_frames_pick_it_for_offset_like_grids_and_decode_it():
    # block means of a rugged tile: wide values, smooth in space (what the offset field holds)
    rng = np.random.default_rng(4)
    nodes = (-4000 + np.cumsum(np.cumsum(rng.normal(0, 60, (9, 9)), 0), 1)).round().astype(np.int64)
    blob = residual.encode_residual(nodes)
    assert residual.PREDICTORS[blob[0]] == "lorenzo-golomb"
    assert len(blob) < len(residual.encode_residual(nodes, zstd_only=True)) - 20
    assert np.array_equal(residual.decode_residual(blob, nodes.shape), nodes)
    # the patch codec's format-1 frames never use it
    assert residual.encode_residual(nodes, zstd_only=True)[0] in (0, 1)
    with pytest.raises(StoreError):  # a frame may not claim a grid beyond the coder's size
        residual.decode_residual(blob, (residual.GOLOMB_MAX + 1, 1))
