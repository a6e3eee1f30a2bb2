"""Metric definitions against hand-computed cases and scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest

from topoae import metrics
from topoae.errors import InputError, RegionError


def _terrain(shape=(64, 80), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    z = 800 * np.sin(xx / 9.0) * np.cos(yy / 13.0) - 1500 + 3 * xx
    return z + rng.normal(0, 20, shape)


def test_hand_computed_errors():
    ref = np.array([[0.0, 0.0], [0.0, 0.0]])
    rec = np.array([[1.0, -1.0], [3.0, -3.0]])
    assert metrics.rmse(ref, rec) == pytest.approx(math.sqrt(5.0))
    assert metrics.mae(ref, rec) == pytest.approx(2.0)
    assert metrics.max_abs_error(ref, rec) == 3.0


def test_psnr_peak_is_reference_range():
    ref = np.array([[0.0, 100.0], [50.0, 20.0]])
    rec = ref + np.array([[1.0, -1.0], [1.0, -1.0]])  # RMSE 1 m
    assert metrics.psnr(ref, rec) == pytest.approx(40.0)  # 20 log10(100 / 1)
    assert metrics.psnr(ref, rec, data_range=1000.0) == pytest.approx(60.0)
    assert metrics.psnr(ref, ref) == math.inf


def test_nan_in_reference_is_ignored_nan_in_reconstruction_propagates():
    ref = np.array([[np.nan, 1.0], [2.0, 3.0]])
    rec = np.array([[1e9, 2.0], [2.0, 3.0]])
    assert metrics.rmse(ref, rec) == pytest.approx(math.sqrt(1 / 3))
    assert metrics.max_abs_error(ref, rec) == 1.0
    bad = np.array([[0.0, np.nan], [2.0, 3.0]])
    assert math.isnan(metrics.rmse(ref, bad))
    assert math.isnan(metrics.max_abs_error(ref, bad))


def test_bad_inputs_raise_topoae_errors():
    with pytest.raises(InputError, match="shapes differ"):
        metrics.rmse(np.zeros((3, 3)), np.zeros((3, 4)))
    with pytest.raises(RegionError):
        metrics.rmse(np.full((3, 3), np.nan), np.zeros((3, 3)))
    with pytest.raises(InputError):
        metrics.compression_ratio(100, 0)


def test_accepts_xarray_and_torch():
    xr = pytest.importorskip("xarray")
    torch = pytest.importorskip("torch")
    z = _terrain((16, 16))
    da = xr.DataArray(z, dims=("lat", "lon"))
    t = torch.tensor(z + 2.0, requires_grad=True)
    assert metrics.rmse(da, t) == pytest.approx(2.0)


@pytest.mark.parametrize("win", [7, 11])
def test_ssim_matches_scikit_image(win):
    skm = pytest.importorskip("skimage.metrics")
    ref = _terrain()
    rec = ref + np.random.default_rng(1).normal(0, 150, ref.shape)
    ours = metrics.ssim(ref, rec, win_size=win)
    rng = float(ref.max() - ref.min())
    theirs = skm.structural_similarity(ref, rec, data_range=rng, win_size=win)
    assert ours == pytest.approx(theirs, abs=1e-9)
    assert 0.0 < ours < 1.0
    assert metrics.ssim(ref, ref) == pytest.approx(1.0)


def test_ssim_nan_windows_left_out():
    ref = _terrain()
    rec = ref + np.random.default_rng(2).normal(0, 100, ref.shape)
    ref_nan = ref.copy()
    ref_nan[:, :20] = np.nan
    rec_bad = rec.copy()
    rec_bad[:, :20] = 1e6  # garbage under the NaN: must not matter
    a = metrics.ssim(ref_nan, rec_bad, data_range=1000.0)
    b = metrics.ssim(ref_nan, rec, data_range=1000.0)
    assert a == b
    # equals the SSIM of the NaN-free part that has full windows
    skm = pytest.importorskip("skimage.metrics")
    c = skm.structural_similarity(ref[:, 20:], rec[:, 20:], data_range=1000.0)
    assert a == pytest.approx(c, abs=1e-9)


def test_patch_errors_hand_computed_and_total_is_frobenius():
    ref = np.zeros((5, 7))
    rec = np.zeros((5, 7))
    rec[0, 0] = 3 * metrics.ZRANGE
    rec[4, 6] = 4 * metrics.ZRANGE
    e = metrics.patch_errors(ref, rec, patch=4)
    assert e.shape == (2, 2)
    assert e[0, 0] == pytest.approx(3.0) and e[1, 1] == pytest.approx(4.0)
    assert e[0, 1] == 0 and e[1, 0] == 0
    th = metrics.thesis_metrics(ref, rec, patch=4)
    assert th["total_l2"] == pytest.approx(5.0)
    assert th["max_patch_l2"] == pytest.approx(4.0)
    assert th["n_patches"] == 4


def test_patch_errors_on_stack_and_thesis_rmse_conversion():
    rng = np.random.default_rng(3)
    ref = rng.normal(0, 500, (10, 96, 96))
    rec = ref + rng.normal(0, 68.0, ref.shape)
    e = metrics.patch_errors(ref, rec)
    assert e.shape == (10,)
    resid = (rec - ref) / metrics.ZRANGE
    assert e[3] == pytest.approx(np.linalg.norm(resid[3]))
    total = metrics.thesis_metrics(ref, rec)["total_l2"]
    assert metrics.thesis_l2_to_rmse(total, ref.size) == pytest.approx(metrics.rmse(ref, rec))
    # The thesis' DFC-VAE: 213.26 over 405,000 patches is about 68 m.
    assert metrics.thesis_l2_to_rmse(213.26, 405_000 * 96 * 96) == pytest.approx(68.0, abs=0.5)


def test_compare_collects_everything():
    ref = _terrain((100, 120))
    rec = ref + 5.0
    m = metrics.compare(ref, rec)
    assert m.rmse == pytest.approx(5.0) and m.mae == pytest.approx(5.0)
    assert m.max_abs == pytest.approx(5.0)
    assert m.n_valid == ref.size
    assert m.total_l2 == pytest.approx(5.0 * math.sqrt(ref.size) / metrics.ZRANGE)
    d = m.to_dict()
    assert set(d) >= {"rmse", "mae", "max_abs", "psnr", "ssim", "total_l2", "max_patch_l2"}
    assert metrics.compression_ratio(9216, 400) == pytest.approx(92.16)
