"""Tiling: normalisation round trips, patch counts/coordinates, leak-free splits, NaN, store layout."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import zarr

from topoae.data.normalise import (
    GEBCO2019_ZMIN,
    GEBCO2019_ZRANGE,
    Normalisation,
    denormalise,
    normalise,
)
from topoae.data.splits import GUARD, assign_blocks, patch_labels
from topoae.data.tiling import TileConfig, open_store, tile
from topoae.errors import ConfigError, OutputExistsError, RegionError, StoreError
from topoae.io import open_grid


def _grid(h: int, w: int, seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    z = rng.normal(-2000, 1500, size=(h, w)).astype(np.float32)
    return xr.DataArray(
        z,
        dims=("lat", "lon"),
        coords={"lat": 10 + 0.01 * np.arange(h), "lon": 20 + 0.01 * np.arange(w)},
        attrs={"source": "memory"},
    )


@pytest.mark.parametrize("mode", ["global", "patch"])
def test_normalisation_is_invertible(mode):
    z = np.random.default_rng(1).integers(-10000, 8000, size=(5, 16, 16)).astype(np.float64)
    z[2] = 42.0  # a flat patch must stay invertible
    norm = Normalisation(mode=mode)
    off, sc = norm.params(z)
    n = normalise(z, off, sc)
    assert n.dtype == np.float32
    back = denormalise(n, off, sc)
    np.testing.assert_allclose(back, z, atol=2e-3)
    np.testing.assert_array_equal(np.round(back), z)  # integer GEBCO metres come back exactly
    if mode == "patch":
        assert n.min() == 0.0 and n[[0, 1, 3, 4]].max(axis=(1, 2)).min() == pytest.approx(1.0)
    else:
        np.testing.assert_allclose(n, (z + 10880.587890625) / 19493.744140625, rtol=1e-6)


def test_thesis_constants():
    assert (GEBCO2019_ZMIN, GEBCO2019_ZRANGE) == (-10880.587890625, 19493.744140625)
    with pytest.raises(ConfigError):
        Normalisation(mode="minmax")


@pytest.mark.parametrize(
    ("shape", "patch", "stride", "expected"),
    [
        ((300, 420), 96, 96, (3, 4)),
        ((96, 96), 96, 96, (1, 1)),
        ((200, 200), 96, 48, (3, 3)),
        ((191, 500), 96, 32, (3, 13)),
    ],
)
def test_patch_counts(shape, patch, stride, expected):
    assert TileConfig(patch=patch, stride=stride).layout(shape).counts == expected


def test_too_small_region():
    with pytest.raises(RegionError, match="smaller than one"):
        TileConfig(patch=96, stride=96).layout((95, 400))


def test_store_layout_and_patch_positions(tmp_path):
    da = _grid(300, 420)
    s = tile([da], tmp_path / "p.zarr", TileConfig(chunk=5, block=1, split=(0.5, 0.25, 0.25)))
    g, attrs = open_store(tmp_path / "p.zarr")
    assert s.patches == 12 == g["patches"].shape[0]
    assert g["patches"].chunks == (5, 96, 96) and g["patches"].dtype == np.float32
    assert attrs["normalise"]["mode"] == "global" and attrs["patch"] == 96 and attrs["stride"] == 96
    assert attrs["config"]["split"] == [0.5, 0.25, 0.25]
    z = da.values
    for i in range(12):
        r0, c0 = int(g["row0"][i]), int(g["col0"][i])
        assert (r0, c0) == (96 * int(g["row"][i]), 96 * int(g["col"][i]))
        metres = denormalise(
            g["patches"][i : i + 1], g["offset"][i : i + 1], g["scale"][i : i + 1]
        )[0]
        np.testing.assert_allclose(metres, z[r0 : r0 + 96, c0 : c0 + 96], atol=2e-3)
        assert g["lat"][i] == pytest.approx(da.lat.values[r0 : r0 + 96].mean())
        assert g["lon"][i] == pytest.approx(da.lon.values[c0 : c0 + 96].mean())
        assert g["ocean_fraction"][i] == pytest.approx((z[r0 : r0 + 96, c0 : c0 + 96] < 0).mean())
    assert set(np.unique(g["split"][:])) == {0, 1, 2}


@pytest.mark.parametrize("stride", [96, 40])
def test_splits_do_not_leak(tmp_path, stride):
    da = _grid(700, 900)
    tile(
        [da], tmp_path / "s.zarr", TileConfig(stride=stride, block=2, split=(0.6, 0.2, 0.2), seed=3)
    )
    g, attrs = open_store(tmp_path / "s.zarr")
    rows = {
        k: [
            (int(a), int(b))
            for a, b, s in zip(g["row0"][:], g["col0"][:], g["split"][:], strict=True)
            if s == k
        ]
        for k in (0, 1, 2)
    }
    assert all(rows[k] for k in (0, 1, 2))

    def overlap(a, b):
        return abs(a[0] - b[0]) < 96 and abs(a[1] - b[1]) < 96

    for k1, k2 in ((0, 1), (0, 2), (1, 2)):
        assert not any(overlap(a, b) for a in rows[k1] for b in rows[k2]), (
            f"split {k1} overlaps {k2}"
        )
    if stride == 40:
        assert attrs["counts"]["dropped_guard"] > 0


def test_split_assignment_is_seeded():
    a = assign_blocks(50, (0.8, 0.1, 0.1), seed=1)
    assert np.array_equal(a, assign_blocks(50, (0.8, 0.1, 0.1), seed=1))
    assert not np.array_equal(a, assign_blocks(50, (0.8, 0.1, 0.1), seed=2))
    assert np.bincount(a, minlength=3).tolist() == [40, 5, 5]
    assert np.bincount(assign_blocks(3, (0.9, 0.05, 0.05), 0), minlength=3).tolist() == [1, 1, 1]
    labels = patch_labels(np.array([0, 50]), np.array([0, 0]), 96, 100, np.array([0, 0, 1, 1]), 2)
    assert labels.tolist() == [0, GUARD]


def test_nan_patches_dropped_or_flagged(tmp_path):
    da = _grid(192, 288)
    da.values[5, 5] = np.nan  # patch (0, 0)
    da.values[96:192, 192:288] = np.nan  # patch (1, 2) is all NaN: never stored
    s = tile([da], tmp_path / "d.zarr", TileConfig(block=1, split=(1, 0, 0)))
    assert s.patches == 4 and s.dropped_nan == 2
    s = tile([da], tmp_path / "f.zarr", TileConfig(block=1, split=(1, 0, 0), nan="flag"))
    g, _ = open_store(tmp_path / "f.zarr")
    assert s.patches == 5 and s.flagged_nan == 1
    i = int(np.flatnonzero(g["has_nan"][:])[0])
    assert (g["row"][i], g["col"][i]) == (0, 0) and np.isnan(g["patches"][i][5, 5])
    assert np.isfinite(np.delete(g["patches"][i].ravel(), 5 * 96 + 5)).all()


def test_all_nan_region_fails_without_leaving_a_store(tmp_path):
    da = _grid(200, 200)
    da.values[:] = np.nan
    with pytest.raises(RegionError, match="all NaN"):
        tile([da], tmp_path / "n.zarr")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_refused(tmp_path):
    tile([_grid(96, 96)], tmp_path / "o.zarr", TileConfig(split=(1, 0, 0)))
    with pytest.raises(OutputExistsError):
        tile([_grid(96, 96)], tmp_path / "o.zarr")
    tile([_grid(192, 96)], tmp_path / "o.zarr", TileConfig(split=(1, 0, 0)), overwrite=True)
    assert open_store(tmp_path / "o.zarr")[0]["patches"].shape[0] == 2


def test_exclude_box_and_patch_normalisation(tmp_path, gebco_nc):
    da = open_grid(gebco_nc)
    lat_mid, lon_mid = float(da.lat[150]), float(da.lon[200])
    box = (lon_mid - 0.01, lat_mid - 0.01, lon_mid + 0.01, lat_mid + 0.01)
    s = tile(
        [da], tmp_path / "e.zarr", TileConfig(normalise="patch", exclude=(box,), dtype="float16")
    )
    g, attrs = open_store(tmp_path / "e.zarr")
    assert s.dropped_excluded >= 1 and s.patches == 12 - s.dropped_excluded
    assert g["patches"].dtype == np.float16 and attrs["normalise"]["mode"] == "patch"
    p = g["patches"][:].astype(np.float32)
    assert p.min(axis=(1, 2)).max() == 0.0 and p.max(axis=(1, 2)).min() == 1.0


def test_open_store_rejects_other_things(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "none.zarr")
    zarr.open_group(tmp_path / "other.zarr", mode="w")
    with pytest.raises(StoreError, match="not a topoae patch store"):
        open_store(tmp_path / "other.zarr")


def test_tiling_is_deterministic(tmp_path, gebco_nc):
    da = open_grid(gebco_nc)
    cfg = TileConfig(stride=48, block=1, seed=5)
    tile([da], tmp_path / "a.zarr", cfg)
    tile([da], tmp_path / "b.zarr", cfg)
    a, _ = open_store(tmp_path / "a.zarr")
    b, _ = open_store(tmp_path / "b.zarr")
    for name in ("patches", "split", "row0", "col0", "offset"):
        np.testing.assert_array_equal(a[name][:], b[name][:])
