"""Error-bounded residual, NaN mask and byte frames (topoae.codec.residual), 8-bit latents (topoae.codec.quantize)."""

from __future__ import annotations

import numpy as np
import pytest

from topoae.codec import residual as res
from topoae.codec.quantize import dequantize, quantize
from topoae.errors import ConfigError, StoreError


def _grid(seed: int, shape=(64, 80), scale=3000.0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    x[0, 0], x[1, 1] = -10900.0, 8848.0  # the full elevation range, float32 resolution ~1 mm
    recon = (x + rng.standard_normal(shape).astype(np.float32) * scale / 10).astype(np.float32)
    return x, recon


@pytest.mark.parametrize("max_error", [0.01, 0.1, 1.0, 10.0, 250.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_bound_holds_on_every_cell(max_error, seed):
    x, recon = _grid(seed)
    x[5, 5:9] = np.nan
    step = res.residual_step(max_error, float(np.nanmax(np.abs(x))))
    q = res.quantize_residual(x, recon, max_error, step)
    blob = res.encode_residual(q)
    y = res.apply_residual(recon, res.decode_residual(blob, q.shape), step)
    err = np.abs(x.astype(np.float64) - y.astype(np.float64))
    assert np.nanmax(err) <= max_error
    assert np.all(q[np.isnan(x)] == 0)


@pytest.mark.parametrize("max_error", [0.3, 1.0, 2.7, 10.0, 250.0])
def test_integer_residual_gives_whole_numbers_within_floor_of_the_bound(max_error):
    x, recon = _grid(3)
    x = np.rint(x)
    x[5, 5:9] = np.nan
    q = res.quantize_integer_residual(x, recon, max_error)
    y = res.apply_integer_residual(recon, res.decode_residual(res.encode_residual(q), q.shape),
                                   max_error)
    assert res.integer_step(max_error) % 2 == 1
    np.testing.assert_array_equal(y, np.rint(y))  # exact in int16 as in float32
    assert np.nanmax(np.abs(x - y)) <= np.floor(max_error)
    assert np.all(q[np.isnan(x)] == 0)


def test_bound_holds_at_quantisation_ties():
    """Differences of exactly k * step / 2 (rounding ties) still meet the bound."""
    max_error = 0.5
    recon = np.linspace(-10000, 8000, 4001, dtype=np.float32)
    step = res.residual_step(max_error, 10001.0)
    k = np.arange(recon.size) % 7 - 3
    x = (recon.astype(np.float64) + (k + 0.5) * step).astype(np.float32)
    q = res.quantize_residual(x, recon, max_error, step)
    y = res.apply_residual(recon, q, step)
    assert np.abs(x.astype(np.float64) - y).max() <= max_error


def test_residual_is_zero_where_the_reconstruction_is_good_enough():
    x, recon = _grid(3)
    max_error = 200.0
    step = res.residual_step(max_error, float(np.abs(x).max()))
    q = res.quantize_residual(x, recon, max_error, step)
    assert step / 2 == pytest.approx(
        max_error - res.safety_margin(max_error, float(np.abs(x).max()))
    )
    assert step / 2 > 0.998 * max_error  # the safety margin costs little rate
    good = np.abs(x - recon) < step / 2
    assert np.all(q[good] == 0)
    assert np.any(q != 0)
    # a residual that is mostly zero compresses far below its int8 size
    assert len(res.encode_ints(q)) < q.size


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), 1e-5])
def test_bad_or_too_small_bounds_are_refused(bad):
    with pytest.raises(ConfigError):
        res.residual_step(bad, 11000.0)


@pytest.mark.parametrize(
    "lo,hi,dtype",
    [(-3, 3, np.int8), (-300, 5, np.int16), (0, 70000, np.int32), (-(2**40), 1, np.int64)],
)
def test_ints_use_the_smallest_type_and_round_trip(lo, hi, dtype):
    rng = np.random.default_rng(0)
    q = rng.integers(lo, hi + 1, size=(17, 9))
    q[0, 0], q[0, 1] = lo, hi
    blob = res.encode_ints(q)
    back = res.decode_ints(blob, q.shape)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, q)


@pytest.mark.parametrize("kind", ["smooth", "sparse", "tiny"])
def test_residual_frames_pick_the_smaller_predictor_and_round_trip(kind):
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:60, 0:70]
    q = {
        "smooth": np.rint(300 * np.sin(yy / 7) * np.cos(xx / 9)).astype(np.int64),
        "sparse": (rng.random((60, 70)) < 0.03) * rng.integers(-2, 3, (60, 70)),
        "tiny": np.array([[5]]),
    }[kind]
    blob = res.encode_residual(q)
    np.testing.assert_array_equal(res.decode_residual(blob, q.shape), q)
    np.testing.assert_array_equal(res.unlorenzo(res.lorenzo(q)), q)
    from topoae.codec import context_coder, golomb

    options = {0: len(res.encode_ints(q)), 1: len(res.encode_ints(res.lorenzo(q))),
               2: len(context_coder.encode(q)), 3: len(golomb.encode(res.lorenzo(q))),
               4: len(context_coder.encode(q, primed=True))}
    assert len(blob) == 1 + min(options.values()) and options[blob[0]] == min(options.values())
    if kind == "sparse":
        assert blob[0] == 4  # scattered small corrections: the primed context coder wins
    if kind == "smooth":
        assert blob[0] == 1  # the Lorenzo difference of a smooth field is smaller
    with pytest.raises(StoreError):
        res.decode_residual(bytes([7]) + blob[1:], q.shape)


def test_mask_and_frames_round_trip():
    rng = np.random.default_rng(1)
    masks = [rng.random((s, 13)) < 0.2 for s in (1, 7, 8, 30)]
    data, offsets = res.pack_frames([res.encode_mask(m) for m in masks])
    assert offsets[0] == 0 and offsets[-1] == data.size
    for i, m in enumerate(masks):
        np.testing.assert_array_equal(res.decode_mask(res.frame(data, offsets, i), m.shape), m)


def test_corrupted_streams_raise_store_error():
    blob = res.encode_ints(np.arange(100).reshape(10, 10))
    with pytest.raises(StoreError):
        res.decode_ints(blob[:1] + b"garbage" + blob[8:], (10, 10))
    with pytest.raises(StoreError):
        res.decode_ints(blob, (10, 11))  # wrong size
    with pytest.raises(StoreError):
        res.decode_mask(res.encode_mask(np.zeros((4, 4), bool)), (5, 5))
    data, offsets = res.pack_frames([b"abc"])
    with pytest.raises(StoreError):
        res.frame(data, offsets, 1)


def test_digest_sees_one_bit():
    a = np.linspace(0, 1, 1000, dtype=np.float32)
    b = a.copy()
    b.view(np.uint32)[500] ^= 1
    assert res.digest(a) == res.digest(a.copy())
    assert res.digest(a) != res.digest(b)


def test_8bit_quantisation_error_is_half_a_step_per_channel():
    rng = np.random.default_rng(2)
    z = rng.standard_normal((6, 7, 20)).astype(np.float32) * np.linspace(
        0.01, 5, 20, dtype=np.float32
    )
    z[..., 3] = 1.5  # a constant channel comes back exactly
    q = quantize(z)
    assert q.codes.dtype == np.uint8 and q.codes.shape == z.shape
    assert q.lo.shape == q.step.shape == (20,)
    back = q.dequantize()
    err = np.abs(back - z).reshape(-1, 20).max(axis=0)
    assert np.all(err <= q.step / 2 * (1 + 1e-4) + 1e-6)
    np.testing.assert_array_equal(back[..., 3], 1.5)
    np.testing.assert_array_equal(dequantize(q.codes, q.lo, q.step), back)


def test_8bit_quantisation_refuses_non_finite_latents():
    with pytest.raises(ConfigError):
        quantize(np.array([[0.0, np.nan]], np.float32))
    with pytest.raises(ConfigError):
        dequantize(np.zeros(3, np.int16), np.zeros(3), np.ones(3))


def test_an_unknown_frame_kind_names_a_newer_topoae():
    with pytest.raises(StoreError, match="newer topoae"):
        res.decode_residual(bytes([len(res.PREDICTORS)]) + b"\x00" * 8, (2, 2))
    with pytest.raises(StoreError, match="empty"):
        res.decode_residual(b"", (2, 2))
