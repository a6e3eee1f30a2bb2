"""The loop filter: fitting, exact application, its stream, and its place in the learned codec."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from topoae.codec import container, learned
from topoae.codec import loop_filter as lf
from topoae.errors import StoreError

R = lf.RADIUS


def _field(h: int = 80, w: int = 90, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(h + 2 * R, w + 2 * R)).cumsum(0).cumsum(1)
    return (a / np.abs(a).max()).astype(np.float32)


def test_fit_recovers_a_known_filter():
    xb = _field()
    q_true = np.zeros(lf.N_COEFS, dtype=np.int64)
    q_true[[0, 1, 5, 11, 20]] = [300, -700, 450, 120, -60]
    target = lf.apply(xb, q_true).astype(np.float64)
    q = lf.fit(xb, target, np.ones(target.shape, dtype=bool), lam=1e9)
    assert q is not None
    assert np.abs(q - q_true).max() <= 1


def test_fit_keeps_a_filter_only_when_it_pays():
    xb = _field(seed=1)
    q_true = np.zeros(lf.N_COEFS, dtype=np.int64)
    q_true[2] = 40  # a tiny correction
    target = lf.apply(xb, q_true).astype(np.float64)
    use = np.ones(target.shape, dtype=bool)
    assert lf.fit(xb, target, use, lam=1e12) is not None
    assert lf.fit(xb, target, use, lam=1e-6) is None
    few = np.zeros_like(use)
    few[0, :10] = True
    assert lf.fit(xb, target, few, lam=1e12) is None  # too few cells to fit 25 coefficients


def test_apply_is_exact_for_zero_coefficients_and_keeps_constants_but_the_bias():
    xb = _field(seed=2)
    q = np.zeros(lf.N_COEFS, dtype=np.int64)
    assert np.array_equal(lf.apply(xb, q), xb[R:-R, R:-R])
    flat = np.full((40, 40), 3.25, dtype=np.float32)
    q = np.arange(lf.N_COEFS, dtype=np.int64) * 37 - 400
    q[0] = 1 << lf.FRAC_BITS  # bias of one unit
    assert np.allclose(lf.apply(flat, q), 4.25, atol=1e-6)


def _filter(r: int, rng, scale: int = 900) -> np.ndarray:
    q = np.zeros(lf.N_COEFS, dtype=np.int64)
    sub = lf.SUBSETS[r]
    q[sub] = rng.integers(-scale, scale, sub.size)
    q[sub[-1]] = scale  # the outermost pair nonzero: the radius is r
    return q


def test_stream_round_trip_and_damage():
    rng = np.random.default_rng(3)
    filters = [None, _filter(3, rng), None, _filter(1, rng, 40), _filter(2, rng, 5), None, None,
               None, None, _filter(1, rng)]
    assert [None if q is None else lf.radius(q) for q in filters] == [None, 3, None, 1, 2] + [None] * 4 + [1]
    blob = lf.pack(filters)
    assert blob is not None
    back = lf.unpack(blob, len(filters))
    for a, b in zip(filters, back, strict=True):
        assert (a is None and b is None) or np.array_equal(a, b)
    assert lf.pack([None, None]) is None
    with pytest.raises(StoreError):
        lf.unpack(blob[:2], len(filters))
    with pytest.raises(StoreError, match="damaged"):  # a code past the file's last tile
        lf.unpack(bytes([0b01000000, 0b00000001]) + blob[3:], 7)
    with pytest.raises(StoreError):  # bytes after the coefficients' frame
        lf.unpack(blob + b"\x00", len(filters))
    huge = [np.full(lf.N_COEFS, lf.LIMIT, dtype=np.int64)]
    with pytest.raises(StoreError, match="damaged"):  # a coefficient no fit gives
        lf.unpack(lf.pack(huge), 1)
    with pytest.raises(StoreError):  # no tile has a filter
        lf.unpack(bytes(3) + blob[3:], len(filters))
    with pytest.raises(StoreError):
        lf.unpack(blob[:-3], len(filters))


def test_fit_takes_the_smallest_window_that_pays_best():
    xb = _field(seed=4)
    rng = np.random.default_rng(4)
    q1 = _filter(1, rng, 300)
    target = lf.apply(xb, q1).astype(np.float64)
    q = lf.fit(xb, target, np.ones(target.shape, dtype=bool), lam=1e9)
    assert q is not None and lf.radius(q) == 1  # the larger windows add nothing but bits
    assert np.abs(q - q1).max() <= 1


@pytest.fixture(scope="module")
def rd():
    """The shipped model: a random tiny network misses too much for a filter to pay."""
    from topoae import zoo
    from topoae.checkpoint import load_checkpoint

    if not (zoo.WEIGHTS / zoo.REGISTRY[zoo.DEFAULT]).is_file():
        pytest.skip("no shipped learned model in this checkout")
    return learned.as_rd_model(load_checkpoint(zoo.default_model_path()))


@pytest.fixture(scope="module")
def grid():
    from topoae import zoo
    from topoae.io import open_grid

    return open_grid(zoo.DEMO_REGION).load()


def _rmse(a, b) -> float:
    return float(np.sqrt(np.nanmean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def test_the_codec_keeps_a_filter_that_lowers_the_error_and_decodes_it_exactly(rd, grid):
    h0, s0 = learned.encode(grid, rd, level=7, tile=128, loop_filter=False)
    h1, s1 = learned.encode(grid, rd, level=7, tile=128)
    assert "filter" not in s0 and "filter" in s1
    assert learned.to_bytes(h1, s1) == learned.to_bytes(*learned.encode(grid, rd, level=7, tile=128))
    plain = learned.decode(*container.unpack(learned.to_bytes(h0, s0)), rd)
    filt = learned.decode(*container.unpack(learned.to_bytes(h1, s1)), rd)
    assert _rmse(filt, grid) < _rmse(plain, grid)
    # the filter stream is what the decoder applies: without it, the grid differs
    bare = {k: v for k, v in s1.items() if k != "filter"}
    assert not np.array_equal(learned.decode({**h1, "streams": list(bare)}, bare, rd).values, filt.values)
    # lazily, by tile rows, the same grid
    lazy = learned.decode(h1, s1, rd, lazy=True).compute(scheduler="synchronous")
    assert np.array_equal(lazy.values, filt.values)


@pytest.mark.parametrize("integer", [True, False])
def test_max_error_holds_on_every_cell_with_the_filter(rd, grid, integer):
    g = grid if integer else grid.astype(np.float32) + np.float32(0.37)
    h, s = learned.encode(g, rd, level=7, tile=128, max_error=3.0)
    assert "filter" in s
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the decoder's base is the encoder's, to the bit
        out = learned.decode(h, s, rd, dtype="float32")
    assert float(np.nanmax(np.abs(out.values.astype(np.float64) - g.values))) <= 3.0 + 1e-9


def test_the_other_bounded_modes_and_empty_or_ragged_tiles_hold_with_the_filter(rd, grid):
    """Depth-relative bound and coastline signs on every cell; a ragged corner smaller than a
    tile; an all-NaN tile inside the region: no filter there, NaN back, nothing else moved."""
    g = grid.astype(np.float32).copy()
    g[:64, :64] = np.nan  # a whole 64-cell tile empty
    x = g.values.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h, s = learned.encode(g, rd, level=7, tile=64, max_error=20.0, relative_error=0.05,
                              coastline="exact")
        out = learned.decode(h, s, rd, dtype="float32").values.astype(np.float64)
    assert "filter" in s
    assert lf.unpack(s["filter"], int(np.prod(learned.tile_layout(*x.shape, 64, learned.RDCodecConfig.margin, learned.ALIGN).counts)))[0] is None
    assert np.array_equal(np.isnan(out), np.isnan(x))
    ok = np.isfinite(x)
    bound = np.minimum(20.0, np.maximum(0.5, 0.05 * np.abs(x)))
    assert np.all(np.abs(out - x)[ok] <= bound[ok] + 1e-6)
    assert np.array_equal(np.sign(out[ok]), np.sign(x[ok]))
    corner = grid.isel(lat=slice(0, 37), lon=slice(0, 50))  # ragged: less than one 64-cell tile
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the base the residual was coded against, to the bit
        h, s = learned.encode(corner, rd, level=7, tile=64, max_error=2.0)
        back = learned.decode(*container.unpack(learned.to_bytes(h, s)), rd, dtype="float32")
    assert back.shape == corner.shape
    assert float(np.abs(back.values.astype(np.float64) - corner.values).max()) <= 2.0 + 1e-9


def test_files_are_format_7_or_later_and_a_damaged_filter_stream_is_a_store_error(rd, grid):
    h, s = learned.encode(grid, rd, level=7)
    data = learned.to_bytes(h, s)
    assert data[3] == container.VERSION >= 7
    bad = {**s, "filter": s["filter"][:1]}
    with pytest.raises(StoreError, match="loop-filter"):
        learned.decode(h, bad, rd)


def test_a_format_6_file_decodes_as_before(rd, grid, monkeypatch):
    h, s = learned.encode(grid, rd, level=7, loop_filter=False)  # what format 6 wrote
    now = learned.decode(h, s, rd)
    monkeypatch.setattr(container, "VERSION", 6)
    v6 = learned.to_bytes(h, s)
    monkeypatch.undo()
    assert v6[3] == 6
    assert np.array_equal(learned.decode(*container.unpack(v6), rd).values, now.values)


def test_sampled_members_skip_the_filter(rd, grid):
    """τ was calibrated on unfiltered members: a member is the same with or without the stream."""
    from topoae.codec import ensemble

    h, s = learned.encode(grid, rd, level=7, tile=128)
    assert "filter" in s
    bare = {k: v for k, v in s.items() if k != "filter"}
    a = ensemble.member(h, s, rd, seed=3, index=1, tau=1.0).values
    b = ensemble.member({**h, "streams": list(bare)}, bare, rd, seed=3, index=1, tau=1.0).values
    assert np.array_equal(a, b)
    assert not np.array_equal(learned.decode(h, s, rd).values, learned.decode(h, bare, rd).values)
