"""Plotting: hillshade orientation, figures that render and save atomically."""

from __future__ import annotations

import numpy as np
import pytest

from topoae import plotting
from topoae.errors import InputError, OutputExistsError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _slope_north(n=32) -> np.ndarray:
    """Elevation rising to the north on a latitude-ascending grid (row 0 = south)."""
    return np.repeat(np.arange(n, dtype=float)[:, None], n, axis=1) * 0.5


def test_hillshade_light_from_northwest():
    up_north = _slope_north()
    # a slope rising to the north faces south: darker under a north-west light
    dark = plotting.hillshade(up_north)
    lit = plotting.hillshade(-up_north)
    assert dark.shape == up_north.shape
    assert np.nanmean(dark) < np.nanmean(lit)
    assert np.nanmin(dark) >= 0.0 and np.nanmax(lit) <= 1.0
    # the same array read with row 0 = north is the mirrored terrain
    assert np.allclose(plotting.hillshade(up_north, origin="upper"), lit)


def test_hillshade_follows_dataarray_coordinates_and_keeps_nan():
    xr = pytest.importorskip("xarray")
    z = _slope_north()
    lat = np.linspace(35.0, 35.0 + 31 / 240, 32)
    lon = np.linspace(138.0, 138.0 + 31 / 240, 32)
    asc = xr.DataArray(z, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    desc = asc.isel(lat=slice(None, None, -1))
    hs_asc = plotting.hillshade(asc)
    hs_desc = plotting.hillshade(desc)
    assert np.allclose(hs_asc, hs_desc[::-1])
    geo = plotting.grid_geometry(asc)
    assert geo["units"] == "deg"
    assert geo["dy"] == pytest.approx(111_320 / 240, rel=1e-3)
    assert geo["dx"] < geo["dy"]  # meridians converge
    z2 = z.copy()
    z2[3, 4] = np.nan
    assert np.isnan(plotting.hillshade(z2)[3, 4])


def test_panel_figure_saves_png(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:60]
    orig = 500 * np.sin(xx / 7) * np.cos(yy / 5) - 200.0
    orig[0, 0] = np.nan
    rec = orig + rng.normal(0, 10, orig.shape)
    fig = plotting.panel_figure(orig, rec, title="test codec 92x")
    assert len([a for a in fig.axes if a.get_title()]) == 3
    out = tmp_path / "panel.png"
    plotting.save_figure(fig, out)
    assert out.read_bytes()[:8] == PNG_MAGIC
    with pytest.raises(OutputExistsError):
        plotting.save_figure(fig, out)
    plotting.save_figure(fig, out, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["panel.png"]  # no temporary left
    with pytest.raises(InputError):
        plotting.panel_figure(orig, rec[:, :10])


def test_histogram_and_rate_distortion(tmp_path):
    rng = np.random.default_rng(1)
    errs = {"a": rng.normal(0, 5, 1000), "b": np.append(rng.normal(0, 20, 999), np.nan)}
    fig = plotting.error_histogram(errs)
    ax = fig.axes[0]
    assert len(ax.patches) == 2  # one stairs per codec
    assert ax.get_yscale() == "log"
    fig = plotting.rate_distortion(
        {"sz3": [(369, 64.0), (92, 16.6)], "topoae": [(92, 30.0)], "empty": [(np.nan, 1.0)]}
    )
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    xs = ax.lines[0].get_xdata()
    assert list(xs) == [92.0, 369.0]  # sorted by ratio
    plotting.save_figure(fig, tmp_path / "rd.pdf")
    assert (tmp_path / "rd.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(InputError):
        plotting.rate_distortion({})


def _visible_labels(axis):
    lo, hi = axis.get_view_interval()
    ticks = axis.get_major_ticks() + axis.get_minor_ticks()
    return [
        (float(t.get_loc()), t.label1.get_text())
        for t in ticks
        if lo <= t.get_loc() <= hi and t.label1.get_text()
    ]


@pytest.mark.parametrize("span", [(1e-4, 1e-2), (1e-5, 1e-2), (1e-7, 1e-6), (0.3, 3.0)])
def test_log_axis_labels_show_the_real_values(span):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = plotting.rate_distortion({"codec": [(10.0, span[0]), (1000.0, span[1])]})
    FigureCanvasAgg(fig).draw()
    ax = fig.axes[0]
    for axis in (ax.yaxis, ax.xaxis):
        labels = _visible_labels(axis)
        assert labels and not all(float(t.replace("\u2212", "-")) == 0 for _, t in labels)
        for loc, text in labels:  # no rounding to 0, no hidden offset or multiplier
            assert float(text.replace("\u2212", "-")) == pytest.approx(loc, rel=1e-3), text
        assert axis.get_offset_text().get_text() == ""


def test_import_is_lazy():
    import subprocess
    import sys

    code = "import sys, topoae.plotting, topoae.metrics; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
