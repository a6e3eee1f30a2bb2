"""A real ANUGA run on a synthetic coast: the plain learned reconstruction turns a
shallow-water gauge into dry land; the coastline-exact one keeps it wet (issue 14)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr


def coast() -> xr.DataArray:
    """20 × 20 km, 500 m cells: deep water (−400 m) in the west, a slope rising to −1 m,
    land (+1…+30 m) in the east cut by a narrow 4 m-deep inlet; projected metres."""
    x = np.arange(40) * 500.0
    y = np.arange(40) * 500.0
    gx, gy = np.meshgrid(x, y)
    shore = 14e3 + 1.5e3 * np.sin(gy / 3e3)  # a wavy shoreline
    d = (gx - shore) / 500.0  # cells east of the shore
    z = np.where(d > 0, np.minimum(1.0 + 4.0 * d, 30.0), np.maximum(-1.0 + 20.0 * d, -400.0))
    inlet = (np.abs(gy - 10e3) < 600.0) & (d > -1) & (d < 12)  # a narrow inlet into the land
    z = np.where(inlet, -4.0, z)
    return xr.DataArray(np.rint(z).astype(np.float32), dims=("y", "x"),
                        coords={"x": ("x", x, {"units": "m"}), "y": ("y", y, {"units": "m"})},
                        name="elevation")


def test_plain_dries_a_gauge_and_coastline_exact_keeps_it_wet():
    pytest.importorskip("anuga")
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned
    from topoae.simulation.check import CheckConfig, shallow_water_check
    from topoae.simulation.engine import EngineConfig
    from topoae.simulation.sources import GaussianSource
    from topoae.zoo import default_model_path

    g = coast()
    rd = learned.as_rd_model(load_checkpoint(default_model_path()))
    plain = learned.decode(*learned.encode(g, rd, level=0), rd)
    exact = learned.decode(*learned.encode(g, rd, level=0, coastline="exact"), rd)
    z, p = g.values, plain.values
    assert np.array_equal(np.sign(exact.values), np.sign(z))  # every cell keeps its sign
    # a gauge where the plain reconstruction put dry land (> 3 m) over water ≥ 3 m deep
    from scipy.ndimage import maximum_filter, minimum_filter

    wet_around = maximum_filter(z, size=3) <= -3  # not on the water's edge in the original
    flipped = wet_around & (p > 3) & (minimum_filter(p, size=3) > 0.5)  # land all around in p
    flipped[:3], flipped[-3:], flipped[:, :3], flipped[:, -3:] = False, False, False, False
    assert flipped.any(), "the plain reconstruction moved no shallow cell onto land"
    i, j = min(np.argwhere(flipped), key=lambda ij: ij[1])  # nearest the open sea
    gauge = (float(g.x[j]), float(g.y[i]))
    res = shallow_water_check(
        g, compared={"plain": plain, "exact": exact},
        source=GaussianSource(amplitude=1.0, radius=2000.0, x=2000.0, y=10e3),
        config=CheckConfig(engine=EngineConfig(duration=700.0, every=5.0), gauges=(gauge,),
                           origin=(0.0, 0.0), max_cells=None, flat=False))
    orig, dry, wet = (res.series[k][:, 0] for k in ("original", "plain", "exact"))
    assert np.all(np.isfinite(orig)) and np.nanmax(np.abs(orig)) > 0.01  # a wave reached it
    assert np.all(np.isnan(dry))  # dry land in the plain reconstruction
    assert np.all(np.isfinite(wet)) and np.nanmax(np.abs(wet)) > 0.01
