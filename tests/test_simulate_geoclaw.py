"""GeoClaw as an engine of the shallow-water check (`topoae simulate --engine geoclaw`).

The runs need clawpack, gfortran and Clawpack's Fortran sources (``$CLAW`` or the topoae
cache); without them they are skipped. The first run on a machine compiles ``xgeoclaw``
(a minute or two), later runs reuse the cached executable and take a second or so.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from topoae.cli.main import cli
from topoae.errors import ConfigError, DependencyError, RegionError
from topoae.simulation.engine import EngineConfig
from topoae.simulation.gauges import arrival_time
from topoae.simulation.sources import GaussianSource, source_on_grid


def basin(depth: float | None = None) -> xr.DataArray:
    """200 × 100 km, 5 km cells: 4000 m deep with a 400 m shelf east of x = 0, or flat."""
    x = np.linspace(-100e3, 100e3, 41)
    y = np.linspace(-50e3, 50e3, 21)
    gx, _ = np.meshgrid(x, y)
    z = np.where(gx > 0, -400.0, -4000.0) if depth is None else np.full(gx.shape, -depth)
    return xr.DataArray(
        z,
        dims=("y", "x"),
        coords={"x": ("x", x, {"units": "m"}), "y": ("y", y, {"units": "m"})},
        attrs={"source": "synthetic basin", "spacing_m": 5000.0},
    )


@pytest.fixture(scope="module")
def geoclaw():
    """The engine module, with ``xgeoclaw`` built; skip where GeoClaw cannot run."""
    pytest.importorskip("clawpack")
    from topoae.simulation import geoclaw_engine

    try:
        geoclaw_engine.geoclaw_executable()
    except DependencyError as exc:
        pytest.skip(str(exc))
    return geoclaw_engine


SOURCE = GaussianSource(amplitude=1.0, radius=10e3, x=-70e3)


def test_identical_bathymetry_gives_identical_gauges(geoclaw):
    g = basin()
    eta0 = source_on_grid(SOURCE, g)
    cfg = EngineConfig(duration=1400.0, every=5.0)
    gauges = [(60e3, 0.0), (-20e3, 30e3)]
    a = geoclaw.run_geoclaw(g, eta0, gauges, cfg)
    b = geoclaw.run_geoclaw(basin(), eta0.copy(), gauges, cfg)
    assert a.eta.shape == (281, 2) and a.time[-1] == pytest.approx(1400.0)
    np.testing.assert_array_equal(a.time, np.arange(281) * 5.0)
    np.testing.assert_array_equal(a.eta, b.eta)
    assert np.nanmax(np.abs(a.eta[:, 0])) > 0.02  # a real wave reached the shelf gauge


def test_flat_vs_shelf_and_the_check_records_geoclaw(geoclaw):
    from topoae.simulation.check import CheckConfig, shallow_water_check

    cfg = CheckConfig(
        engine=EngineConfig(duration=1400.0, every=5.0),
        gauges=((60e3, 0.0),),
        origin=(0.0, 0.0),
        engine_name="geoclaw",
    )
    res = shallow_water_check(basin(), compared={"same": basin()}, source=SOURCE, config=cfg)
    np.testing.assert_array_equal(res.series["same"], res.series["original"])
    (flat,) = [r for r in res.metrics if r["run"].startswith("flat")]
    # shelf: 70 km at 198 m/s + 60 km at 63 m/s ≈ 1300 s; flat (−2244 m): 130 km at 148 m/s
    assert flat["arrival_time_ref"] > 850.0
    assert flat["arrival_time_error"] < -150.0
    assert res.record["engine"] == "geoclaw"


def test_geoclaw_and_anuga_arrival_times_agree_on_a_flat_basin(geoclaw):
    from topoae.simulation.engine import run_anuga

    pytest.importorskip("anuga")
    g = basin(depth=2000.0)
    eta0 = source_on_grid(SOURCE, g)
    gauges = [(0.0, 0.0), (60e3, 0.0), (-20e3, 30e3)]
    cfg = EngineConfig(duration=1000.0, every=5.0)
    gc = geoclaw.run_geoclaw(g, eta0, gauges, cfg)
    an = run_anuga(g, eta0, gauges, cfg)
    c = np.sqrt(9.81 * 2000.0)
    for k, (gx, gy) in enumerate(gauges):
        thr = 0.05 * np.nanmax(np.abs(an.eta[:, k]))
        t_gc, t_an = (
            arrival_time(gc.time, gc.eta[:, k], thr),
            arrival_time(an.time, an.eta[:, k], thr),
        )
        # tolerance 20 s (4 samples; a 5 km cell is crossed in 36 s); measured: 2-6 s
        assert abs(t_gc - t_an) < 20.0, (k, t_gc, t_an)
        # and both before the crest's straight-line travel time (the hump's flank arrives first)
        assert t_gc < np.hypot(gx - SOURCE.x, gy - SOURCE.y) / c
        peak_gc, peak_an = np.nanmax(gc.eta[:, k]), np.nanmax(an.eta[:, k])
        assert peak_gc == pytest.approx(peak_an, rel=0.15)  # measured: within 11 %


def test_simulate_cli_runs_geoclaw(geoclaw, tmp_path):
    orig = tmp_path / "orig.nc"
    basin().to_dataset(name="z").to_netcdf(orig)
    out = tmp_path / "sim"
    args = ["simulate", "--bathymetry", str(orig), "--engine", "geoclaw", "--duration", "600"]
    args += ["--every", "10", "--gauge", "-20000,0", "--source-at", "-70000,0"]
    args += ["--radius", "10000", "--origin", "0,0", "--out", str(out)]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    record = json.loads((out / "run.json").read_text())
    assert record["engine"] == "geoclaw" and record["grid"]["cells"] == 40 * 20
    series = np.genfromtxt(out / "gauge_G1.csv", delimiter=",", skip_header=1)
    assert series.shape == (61, 3) and np.nanmax(np.abs(series[:, 1])) > 0.05


def test_gauge_outside_the_domain_is_refused():
    from topoae.simulation.geoclaw_engine import run_geoclaw

    g = basin()
    with pytest.raises(RegionError):
        run_geoclaw(g, np.zeros(g.shape), [(500e3, 0.0)], EngineConfig(duration=10, every=5))


def test_missing_compiler_or_clawpack_is_a_dependency_error(monkeypatch):
    from topoae.simulation import geoclaw_engine

    monkeypatch.setenv("FC", "no-such-fortran-compiler-x9")
    with pytest.raises(DependencyError, match="Fortran compiler"):
        geoclaw_engine.fortran_compiler()
    monkeypatch.setitem(sys.modules, "clawpack", None)  # import clawpack now fails
    with pytest.raises(DependencyError, match="clawpack"):
        geoclaw_engine.import_clawpack()


def test_missing_fortran_sources_is_a_dependency_error(monkeypatch, tmp_path):
    pytest.importorskip("clawpack")
    from topoae.simulation import geoclaw_engine

    monkeypatch.delenv("CLAW", raising=False)
    monkeypatch.setenv("TOPOAE_CACHE", str(tmp_path))  # an empty cache: nothing compiled
    with pytest.raises(DependencyError, match="Fortran sources"):
        geoclaw_engine.geoclaw_executable()
    monkeypatch.setenv("CLAW", str(tmp_path))  # not a Clawpack tree
    with pytest.raises(DependencyError, match="set CLAW"):
        geoclaw_engine.clawpack_sources()


def test_unknown_engine_is_refused():
    from topoae.simulation.check import CheckConfig

    with pytest.raises(ConfigError):
        CheckConfig(engine_name="fluent")
