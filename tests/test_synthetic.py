"""Synthetic GEBCO-like grids: deterministic, band-independent, GEBCO format, realistic structure."""

from __future__ import annotations

import numpy as np
import xarray as xr

from topoae.io.synthetic import (
    SyntheticConfig,
    synthetic_block,
    synthetic_grid,
    write_synthetic_gebco,
)


def test_gebco_format(tmp_path):
    path = write_synthetic_gebco(tmp_path / "s.nc", 120, 200, seed=1, band_rows=50)
    ds = xr.open_dataset(path, mask_and_scale=False)
    assert ds["elevation"].dtype == np.int16 and ds["elevation"].dims == ("lat", "lon")
    assert ds["elevation"].attrs["units"] == "m" and ds.attrs["Conventions"].startswith("CF")
    assert ds["lat"].attrs["units"] == "degrees_north" and np.all(np.diff(ds.lat) > 0)
    np.testing.assert_allclose(np.diff(ds.lon), 15 / 3600)
    full = synthetic_grid(120, 200, seed=1).values
    np.testing.assert_array_equal(ds["elevation"].values, np.round(full).astype(np.int16))


def test_deterministic_and_seeded():
    a = synthetic_grid(64, 80, seed=3).values
    np.testing.assert_array_equal(a, synthetic_grid(64, 80, seed=3).values)
    assert np.abs(a - synthetic_grid(64, 80, seed=4).values).mean() > 10


def test_bands_equal_the_full_grid():
    cfg = SyntheticConfig(rows=300, cols=140, seed=2)
    full = synthetic_block(cfg, 0, 300)
    np.testing.assert_array_equal(
        np.concatenate([synthetic_block(cfg, 0, 123), synthetic_block(cfg, 123, 300)]), full
    )


def test_realistic_structure():
    z = synthetic_grid(400, 600, seed=0).values
    assert 6000 > z.max() > 1000, "land with relief"
    assert z.min() < -7000, "a trench"
    assert 0.3 < (z < 0).mean() < 0.9, "a coastline with land and sea"
    row = z[200]
    coast = int(np.argmax(row < 0))
    shelf = row[coast : coast + 20]
    assert shelf.max() < 0 and shelf.min() > -600, "a shallow continental shelf off the coast"
    plain = z[:, 330:420]
    assert np.median(plain) < -3000, "an abyssal plain"
    # multi-scale roughness: the power spectrum decays with frequency, with energy at small scales
    spec = (
        np.abs(np.fft.rfft(z[:, 350:500] - z[:, 350:500].mean(axis=1, keepdims=True), axis=1)) ** 2
    )
    p = spec.mean(axis=0)
    assert p[2:6].mean() > p[20:40].mean() > p[60:75].mean() > 0
