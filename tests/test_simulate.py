"""Tests of the shallow-water check (`topoae simulate`), its sources and gauge metrics."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from topoae.cli.main import cli
from topoae.errors import ConfigError, InputError, RegionError
from topoae.simulation.gauges import (
    arrival_time,
    compare_series,
    quantile_bands,
    read_exahype_probe,
)
from topoae.simulation.sources import GaussianSource, OkadaSource, Subfault, okada_uz

# --- Okada (1985): the paper's own check values (Table 2, finite source) -------------------


@pytest.mark.parametrize(
    ("strike_slip", "dip_slip", "expected"), [(1.0, 0.0, -2.747e-3), (0.0, 1.0, -3.564e-2)]
)
def test_okada_matches_published_check_values(strike_slip, dip_slip, expected):
    # x = 2, y = 3, d = 4, dip = 70°, L = 3, W = 2, Poisson solid (Okada 1985, Table 2)
    uz = okada_uz(
        np.array(2.0),
        np.array(3.0),
        depth=4.0,
        dip=70.0,
        length=3.0,
        width=2.0,
        strike_slip=strike_slip,
        dip_slip=dip_slip,
    )
    assert float(uz) == pytest.approx(expected, rel=2e-3)


def test_okada_matches_anugas_independent_dc3d():
    okada92 = pytest.importorskip("anuga.tsunami_source.tsunami_okada")
    ref = okada92.Okada_func.__new__(okada92.Okada_func)
    for dip in (12.0, 45.0, 90.0):
        for x, y in ((5.0, 1.0), (-3.0, -2.0), (12.0, 7.0)):
            for ss, ds in ((1.0, 0.0), (0.0, 1.0)):
                ref.DC3D(2.0 / 3.0, x, y, 0.0, 6.0, dip, 0.0, 10.0, 0.0, 4.0, ss, ds, 0.0)
                ours = okada_uz(
                    np.array(x),
                    np.array(y),
                    depth=6.0,
                    dip=dip,
                    length=10.0,
                    width=4.0,
                    strike_slip=ss,
                    dip_slip=ds,
                )
                assert float(ours) == pytest.approx(ref.UZ, rel=1e-6, abs=1e-12)


def test_okada_thrust_lifts_the_hanging_wall_side():
    """Strike north, dipping east: uplift east of the shallow edge, subsidence further east."""
    sf = Subfault(
        strike=0.0,
        dip=20.0,
        rake=90.0,
        slip=5.0,
        length=80e3,
        width=40e3,
        depth=5e3,
        x=0.0,
        y=0.0,
        reference="top_center",
    )
    x = np.linspace(-60e3, 160e3, 441)
    uz = OkadaSource((sf,)).displacement(x, np.zeros_like(x))
    assert 0.5 < uz.max() < 5.0
    assert x[np.argmax(uz)] > 0  # over the fault, on the hanging wall
    assert x[np.argmin(uz)] > x[np.argmax(uz)] and uz.min() < 0
    assert abs(uz[0]) < 0.05 * uz.max()  # small on the footwall far side


def test_okada_rejects_a_fault_through_the_surface():
    sf = Subfault(strike=0, dip=30, rake=90, slip=1, length=1e4, width=2e4, depth=1e3, x=0, y=0)
    with pytest.raises(ConfigError):
        OkadaSource((sf,)).displacement(np.zeros(1), np.zeros(1))


# --- gauge metrics ------------------------------------------------------------------------


def test_metrics_measure_a_known_shift_and_scaling():
    t = np.arange(0, 2000, 5.0)

    def pulse(t0, a=1.0):
        return a * np.exp(-(((t - t0) / 60.0) ** 2))

    ref, late = pulse(800.0), 0.5 * pulse(900.0)
    m = compare_series(t, ref, late, threshold=0.1)
    assert m.arrival_time_error == pytest.approx(
        100.0 + 60 * (np.sqrt(np.log(10)) - np.sqrt(np.log(5))), abs=2.0
    )
    assert m.max_amplitude_error == pytest.approx(-0.5, abs=1e-3)
    assert m.max_time_error == pytest.approx(100.0)
    same = compare_series(t, ref, ref.copy())
    assert same.rmse == 0 and same.correlation == pytest.approx(1.0)
    assert same.arrival_time_error == 0
    assert np.isnan(arrival_time(t, np.zeros_like(t), 0.1))


def test_quantile_bands_are_ordered():
    rng = np.random.default_rng(0)
    members = rng.normal(size=(16, 50, 2))
    b = quantile_bands(members)
    assert b.shape == (3, 50, 2)
    assert np.all(b[0] <= b[1]) and np.all(b[1] <= b[2])
    with pytest.raises(InputError, match="need at least two members"):
        quantile_bands(members[:1])


def test_reads_exahype_probe_files(tmp_path):
    p = tmp_path / "probe0-rank-0.probe"
    p.write_text(
        "# plot-time, real-time,Q0,Q1,Q2,Q3\n0, 0, 4.95, 0, 0, -4.95\n"
        "10.2, 10.2, 4.9512, 1e-3, 0, -4.95\n"
    )
    t, eta = read_exahype_probe(p)
    np.testing.assert_allclose(t, [0.0, 10.2])
    np.testing.assert_allclose(eta, [0.0, 1.2], atol=1e-9)


# --- the synthetic basin: a real ANUGA run ------------------------------------------------


def basin(shelf: bool = True) -> xr.DataArray:
    """200 × 100 km basin, 5 km cells: 4000 m deep, with a 400 m shelf east of x = 0."""
    x = np.linspace(-100e3, 100e3, 41)
    y = np.linspace(-50e3, 50e3, 21)
    gx, _ = np.meshgrid(x, y)
    z = np.where(gx > 0, -400.0, -4000.0) if shelf else np.full(gx.shape, -2200.0)
    return xr.DataArray(
        z,
        dims=("y", "x"),
        coords={"x": ("x", x, {"units": "m"}), "y": ("y", y, {"units": "m"})},
        attrs={"source": "synthetic basin"},
    )


@pytest.fixture(scope="module")
def basin_check():
    pytest.importorskip("anuga")
    from topoae.simulation.check import CheckConfig, shallow_water_check
    from topoae.simulation.engine import EngineConfig

    cfg = CheckConfig(
        engine=EngineConfig(duration=1400.0, every=5.0),
        gauges=((60e3, 0.0), (-20e3, 30e3)),
        origin=(0.0, 0.0),
    )
    return shallow_water_check(
        basin(),
        compared={"same": basin()},
        source=GaussianSource(amplitude=1.0, radius=10e3, x=-70e3),
        config=cfg,
    )


def test_identical_bathymetry_gives_identical_gauges(basin_check):
    s = basin_check.series
    assert s["original"].shape == (len(basin_check.time), 2)
    np.testing.assert_array_equal(s["same"], s["original"])
    rows = [r for r in basin_check.metrics if r["run"] == "same"]
    assert all(r["rmse"] == 0 and r["arrival_time_error"] == 0 for r in rows)


def test_flat_bathymetry_arrives_clearly_earlier_on_the_shelf(basin_check):
    flat = [r for r in basin_check.metrics if r["run"].startswith("flat") and r["gauge"] == "G1"]
    (row,) = flat
    # 70 km at 198 m/s plus 60 km at 63 m/s ≈ 1300 s, vs 130 km at 147 m/s ≈ 890 s
    assert row["arrival_time_ref"] > 850.0
    assert row["arrival_time_error"] < -150.0
    assert row["correlation"] < 0.9
    assert np.nanmax(np.abs(basin_check.series["original"][:, 0])) > 0.02  # a real wave arrived


def test_runs_are_deterministic(basin_check):
    from topoae.simulation.engine import EngineConfig, run_anuga

    grid = basin_check.grid
    again = run_anuga(
        grid, basin_check.eta0, basin_check.gauges_m, EngineConfig(duration=1400.0, every=5.0)
    )
    np.testing.assert_array_equal(again.eta, basin_check.series["original"])
    np.testing.assert_array_equal(again.time, basin_check.time)


def test_gauge_outside_the_domain_is_refused():
    pytest.importorskip("anuga")
    from topoae.simulation.engine import EngineConfig, run_anuga

    g = basin()
    with pytest.raises(RegionError):
        run_anuga(g, np.zeros(g.shape), [(500e3, 0.0)], EngineConfig(duration=10, every=5))


def write_basin_nc(path, shelf=True):
    basin(shelf).to_dataset(name="z").to_netcdf(path)
    return path


def write_ensemble_nc(path, n=3):
    b = basin()
    rng = np.random.default_rng(1)
    members = np.stack([b.values + rng.normal(0, 20.0, b.shape) for _ in range(n)])
    ds = xr.Dataset(
        {
            "elevation": (("member", "y", "x"), members.astype(np.float32)),
            "mean": (("y", "x"), members.mean(0).astype(np.float32)),
            "std": (("y", "x"), members.std(0).astype(np.float32)),
        },
        coords={"member": np.arange(n), "x": b.x.values, "y": b.y.values},
    )
    ds.to_netcdf(path)
    return path


def test_simulate_cli_writes_series_metrics_bands_and_figure(tmp_path):
    pytest.importorskip("anuga")
    orig = write_basin_nc(tmp_path / "orig.nc")
    ens = write_ensemble_nc(tmp_path / "ens.nc")
    out = tmp_path / "sim"
    res = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--bathymetry",
            str(orig),
            "--compare",
            str(orig),
            "--compare",
            str(ens),
            "--duration",
            "600",
            "--every",
            "10",
            "--gauge",
            "-20000,0",
            "--source-at",
            "-70000,0",
            "--radius",
            "10000",
            "--origin",
            "0,0",
            "--out",
            str(out),
        ],
        catch_exceptions=False,
    )
    assert res.exit_code == 0, res.output
    names = {p.name for p in out.iterdir()}
    assert {
        "gauge_G1.csv",
        "metrics.csv",
        "metrics.json",
        "gauges.png",
        "domain.png",
        "run.json",
    } <= names
    with open(out / "gauge_G1.csv") as fh:
        rows = list(csv.reader(fh))
    head = rows[0]
    assert head[:3] == ["time_s", "original", "orig"]
    assert [h for h in head if h.startswith("ens q")] == ["ens q05", "ens q50", "ens q95"]
    data = np.array([[float(v) if v else np.nan for v in r] for r in rows[1:]])
    assert data.shape[0] == 61 and data[-1, 0] == pytest.approx(600.0)
    np.testing.assert_array_equal(data[:, 1], data[:, 2])  # same file, same gauges
    q05, q50, q95 = (data[:, head.index(f"ens q{q}")] for q in ("05", "50", "95"))
    assert np.all(q05 <= q50 + 1e-12) and np.all(q50 <= q95 + 1e-12)
    metrics = json.loads((out / "metrics.json").read_text())
    runs = {m["run"] for m in metrics}
    assert {"orig", "ens median", "ens[0]", "ens[2]"} <= runs
    assert any(r.startswith("flat") for r in runs)
    record = json.loads((out / "run.json").read_text())
    assert record["ensembles"] == {"ens": 3}
    assert record["config"]["engine"]["duration"] == 600.0


def test_simulate_cli_refuses_bad_input(tmp_path):
    pytest.importorskip("anuga")
    orig = write_basin_nc(tmp_path / "orig.nc")
    runner = CliRunner()
    res = runner.invoke(
        cli,
        ["simulate", "--bathymetry", str(orig), "--source", "okada", "--out", str(tmp_path / "o")],
    )
    assert res.exit_code == 1 and "--okada" in res.output
    small = xr.DataArray(
        np.full((5, 5), -100.0),
        dims=("y", "x"),
        coords={"x": np.arange(5) * 1e3 + 5e5, "y": np.arange(5) * 1e3},
    )
    small.to_dataset(name="z").to_netcdf(tmp_path / "small.nc")
    res = runner.invoke(
        cli,
        [
            "simulate",
            "--bathymetry",
            str(orig),
            "--compare",
            str(tmp_path / "small.nc"),
            "--duration",
            "10",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 1 and "does not cover" in res.output
    assert not (tmp_path / "o").exists()


def test_simulate_cli_units_ft_reads_the_original_in_metres(tmp_path, feet_nc, monkeypatch):
    """``--units ft``: the engine is given metres (the runs themselves are stubbed out)."""
    from types import SimpleNamespace

    from topoae.io import open_grid
    from topoae.simulation import check, engine

    seen = {}

    def fake_check(grid, **kw):
        seen["grid"] = grid
        return SimpleNamespace(wall_s={}, metrics=[])

    monkeypatch.setattr(engine, "import_anuga", lambda: None)
    monkeypatch.setattr(check, "shallow_water_check", fake_check)
    monkeypatch.setattr(check, "write_check", lambda *a, **kw: [])
    args = ["simulate", "--bathymetry", str(feet_nc), "--out", str(tmp_path / "sim")]
    res = CliRunner().invoke(cli, [*args, "--units", "ft"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    metres = open_grid(feet_nc, units="ft").values
    np.testing.assert_allclose(seen["grid"].values, metres, rtol=1e-6)
    with xr.open_dataset(feet_nc) as f:
        assert np.abs(metres - 0.3048 * f["elevation"].values).max() < 1e-2
