"""Tests of `topoae export exahype|geoclaw|anuga` and the writers behind them."""

from __future__ import annotations

import json
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from topoae.cli.main import cli
from topoae.errors import ConfigError, InputError, RegionError
from topoae.io import open_grid
from topoae.simulation.anuga_export import export_anuga
from topoae.simulation.asagi import check_asagi, read_asagi
from topoae.simulation.exahype import (
    ExahypeConfig,
    check_export,
    export_exahype,
    mesh_cells_for,
    mesh_size_for,
)
from topoae.simulation.gauges import read_exahype_probe, resample_exahype_probes
from topoae.simulation.geoclaw import read_tt3, write_dtopo3, write_tt3
from topoae.simulation.projection import LocalProjection

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EXAHYPE_REF = SHARED / "exahype" / "tohoku_gebco_ucsb3_2000m_hawaii_displ.nc"

LON0, LAT0 = 150.0, 30.0  # a made-up region well away from the Tohoku evaluation box


def _linear(lon, lat):
    """Elevation linear in lon/lat: bilinear interpolation reproduces it exactly."""
    return -3000.0 + 1500.0 * (lon - LON0) - 800.0 * (lat - LAT0)


def write_gebco(path: Path, *, nlat=41, nlon=51, step=1 / 60, linear=False, holes=False) -> Path:
    """A GEBCO-format NetCDF: elevation(lat, lon) int16 (or float with NaN holes)."""
    lat = LAT0 - 0.3 + step * np.arange(nlat)
    lon = LON0 - 0.4 + step * np.arange(nlon)
    glon, glat = np.meshgrid(lon, lat)
    if linear:
        z = _linear(glon, glat)
    else:  # deep basin in the west rising to land in the east
        z = -4000.0 + 5500.0 * (glon - lon[0]) / (lon[-1] - lon[0]) + 50 * np.sin(glat * 40)
    if holes:
        z = z.astype(np.float32)
        z[5:8, 10:13] = np.nan
        enc = {"elevation": {"dtype": "float32", "_FillValue": np.float32(np.nan)}}
    else:
        z = np.round(z).astype(np.int16)
        enc = {"elevation": {"dtype": "int16"}}
    ds = xr.Dataset(
        {
            "elevation": (
                ("lat", "lon"),
                z,
                {"standard_name": "height_above_mean_sea_level", "units": "m"},
            )
        },
        coords={
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={"Conventions": "CF-1.6", "title": "GEBCO-format test grid"},
    )
    ds.to_netcdf(path, encoding=enc)
    return path


def write_okada(path: Path) -> Path:
    path.write_text(
        json.dumps(
            [
                {
                    "lon": LON0 - 0.1,
                    "lat": LAT0,
                    "depth": 12000.0,
                    "strike": 10.0,
                    "dip": 20.0,
                    "rake": 90.0,
                    "slip": 4.0,
                    "length": 30000.0,
                    "width": 15000.0,
                }
            ]
        )
    )
    return path


def invoke(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_exahype_cli_layout_matches_asagi_conventions(tmp_path):
    bathy = write_gebco(tmp_path / "bathy.nc")
    out = tmp_path / "exa"
    res = invoke(
        [
            "export",
            "exahype",
            str(bathy),
            "--out",
            str(out),
            "--okada",
            str(write_okada(tmp_path / "fault.json")),
            "--probe",
            f"{LON0 - 0.2},{LAT0}",
            "--probe",
            f"{LON0 + 0.05},{LAT0 + 0.1}",
            "--end-time",
            "3600",
            "--origin",
            f"{LON0},{LAT0}",
        ]
    )
    assert res.exit_code == 0, res.output
    summary = check_export(out)  # NetCDF layout, YAML, JSON and named files
    assert summary["material_files"] == ["bathymetry.nc", "displacement.nc"]
    for name in ("bathymetry.nc", "displacement.nc", "exahype2/bath.nc", "exahype2/displ.nc"):
        with netCDF4.Dataset(out / name) as ds:
            assert ds.file_format == "NETCDF3_CLASSIC"
            assert ds.Conventions == "COARDS/CF-1.0"
            assert list(ds.dimensions) == ["x", "y"]
            assert ds["x"].dtype == np.float64 and ds["y"].dtype == np.float64
            assert ds["z"].dtype == np.float32 and ds["z"].dimensions == ("y", "x")
            assert "_FillValue" not in ds["z"].ncattrs()
            assert "scale_factor" not in ds["z"].ncattrs()
            x, y, z = ds["x"][:].data, ds["y"][:].data, ds["z"][:].data
        assert np.all(np.diff(x) > 0) and np.all(np.diff(y) > 0)
        assert np.isfinite(z).all()
    bx = read_asagi(out / "bathymetry.nc")
    # metres, not degrees: 0.8° of longitude at 30° N is ~77 km, 0.67° of latitude ~74 km
    assert 60e3 < float(bx.x[-1] - bx.x[0]) < 80e3
    assert 60e3 < float(bx.y[-1] - bx.y[0]) < 76e3
    assert float(bx.min()) < -3000 and float(bx.max()) > 1000
    d = read_asagi(out / "displacement.nc")
    assert 0.5 < float(d.max()) < 4.0 and float(d.min()) < 0  # thrust: uplift and subsidence
    spec = json.loads((out / "SWE_topoae.exahype2").read_text())
    dom = spec["computational_domain"]
    assert dom["end_time"] == 3600.0 and dom["width"][0] == dom["width"][1]
    assert dom["offset"][0] * 1000 >= bx.x[0] - 1e-6
    assert (dom["offset"][0] + dom["width"][0]) * 1000 <= bx.x[-1] + 1e-6
    solver = spec["solvers"][0]
    assert solver["type"] == "Limiting-ADER-DG"
    assert [v["name"] for v in solver["variables"]] == ["h", "hu", "hv", "b"]
    probes = [p for p in solver["plotters"] if p["type"] == "probe::ascii"]
    assert len(probes) == 2 and all(p["repeat"] == 5.0 for p in probes)
    # the probe at the origin's latitude, 0.2° west: x ≈ -0.2 * 111.32 km * cos(30°)
    assert probes[0]["select"]["x"] == pytest.approx(
        -0.2 * 111.32 * np.cos(np.radians(30)), rel=0.01
    )
    assert abs(probes[0]["select"]["y"]) < 0.2
    assert (out / "inputs.txt").read_text().split() == ["0", "0"]
    e2 = json.loads((out / "exahype2" / "domain.json").read_text())
    assert e2["width_m"][0] == pytest.approx(float(bx.x[-1] - bx.x[0]))
    assert "README.md" in {p.name for p in out.iterdir()}


def test_exahype_round_trips_values_through_projection(tmp_path):
    """z written at (x, y) equals the source field at the inverse-projected lon/lat."""
    grid = open_grid(write_gebco(tmp_path / "lin.nc", linear=True, holes=False))
    # int16 storage rounds the linear field: compare with what the file holds
    res = export_exahype(grid, tmp_path / "exa", config=ExahypeConfig(origin=(LON0, LAT0)))
    z = read_asagi(res.out_dir / "bathymetry.nc")
    gx, gy = np.meshgrid(z.x.values, z.y.values)
    lon, lat = LocalProjection(LON0, LAT0).inverse(gx, gy)
    expected = _linear(lon, lat)
    # bilinear interpolation of a linear field is exact up to the int16 rounding (0.5 m)
    assert np.abs(z.values - expected).max() < 0.51
    assert np.abs(z.values - expected).mean() < 0.3


def test_projected_grid_round_trips_exactly(tmp_path):
    x = np.arange(-20, 21) * 2000.0
    y = np.arange(-15, 16) * 2000.0
    rng = np.random.default_rng(3)
    z = (-2000 + 200 * rng.standard_normal((y.size, x.size))).astype(np.float32)
    da = xr.DataArray(z, dims=("y", "x"), coords={"x": x, "y": y}, attrs={"source": "mem"})
    res = export_exahype(da, tmp_path / "exa", config=ExahypeConfig(origin=(0.0, 0.0)))
    back = read_asagi(res.out_dir / "bathymetry.nc")
    np.testing.assert_array_equal(back.values, z)
    np.testing.assert_array_equal(back.x.values, x)
    np.testing.assert_array_equal(back.y.values, y)


def test_nodata_is_filled_and_counted(tmp_path):
    grid = open_grid(write_gebco(tmp_path / "holes.nc", holes=True))
    res = export_exahype(grid, tmp_path / "exa")
    with netCDF4.Dataset(res.out_dir / "bathymetry.nc") as ds:
        assert np.isfinite(ds["z"][:].data).all()
    rec = json.loads((res.out_dir / "topoae.json").read_text())
    assert rec["filled_cells"] == 9


@pytest.mark.skipif(not EXAHYPE_REF.exists(), reason="needs ../shared/data")
def test_layout_matches_the_real_exahype_file_and_reuses_its_displacement(tmp_path):
    """A projected bathymetry with the real Tohoku displacement (x/y metres) as source."""
    ref = netCDF4.Dataset(EXAHYPE_REF)
    x = np.arange(-300, 301, 4) * 1000.0
    y = np.arange(-420, 421, 4) * 1000.0
    gx, gy = np.meshgrid(x, y)
    z = -4000.0 + 3.0e-3 * gx  # a sloping sea floor, all below sea level here
    da = xr.DataArray(z, dims=("y", "x"), coords={"x": x, "y": y})
    res = export_exahype(
        da,
        tmp_path / "exa",
        config=ExahypeConfig(origin=(0.0, 0.0)),
        displacement=open_grid(EXAHYPE_REF),
    )
    with netCDF4.Dataset(res.out_dir / "displacement.nc") as ours:
        assert ours.file_format == ref.file_format
        assert list(ours.dimensions) == list(ref.dimensions)
        for v in ("x", "y", "z"):
            assert ours[v].dtype == ref[v].dtype
            assert ours[v].dimensions == ref[v].dimensions
        assert set(ref.ncattrs()) - {"GMT_version"} <= set(ours.ncattrs())
        np.testing.assert_allclose(ours["z"][:].data, ref["z"][:].data, atol=1e-6)
        np.testing.assert_allclose(ours["x"][:].data, ref["x"][:].data)
        np.testing.assert_allclose(ours["x"].actual_range, ref["x"].actual_range)
    ref.close()


def test_geoclaw_tt3_and_dtopo_round_trip(tmp_path):
    grid = open_grid(write_gebco(tmp_path / "g.nc"))
    res = invoke(
        [
            "export",
            "geoclaw",
            str(tmp_path / "g.nc"),
            "--out",
            str(tmp_path / "gc"),
            "--okada",
            str(write_okada(tmp_path / "f.json")),
        ]
    )
    assert res.exit_code == 0, res.output
    back = read_tt3(tmp_path / "gc" / "topo.tt3")
    np.testing.assert_allclose(back.values, grid.values, atol=1e-3)
    np.testing.assert_allclose(back.x.values, grid.lon.values, atol=1e-9)
    np.testing.assert_allclose(back.y.values, grid.lat.values, atol=1e-9)
    lines = (tmp_path / "gc" / "dtopo.tt3").read_text().splitlines()
    labels = [ln.split()[-1] for ln in lines[:9]]
    assert labels == ["mx", "my", "mt", "xlower", "ylower", "t0", "dx", "dy", "dt"]
    mx, my = int(lines[0].split()[0]), int(lines[1].split()[0])
    assert (mx, my) == (grid.sizes["lon"], grid.sizes["lat"])
    rows = np.array([[float(v) for v in ln.split()] for ln in lines[9:]])
    assert rows.shape == (my, mx) and rows.max() > 0.5


def _displacement(path: Path, lon0: float, lat0: float, peak: float) -> Path:
    """A Gaussian uplift ``dz(lat, lon)`` of ``peak`` metres on a 0.5° x 0.4° box."""
    lat = lat0 + np.arange(21) * 0.02
    lon = lon0 + np.arange(26) * 0.02
    glon, glat = np.meshgrid(lon, lat)
    dz = peak * np.exp(-(((glon - lon.mean()) / 0.1) ** 2 + ((glat - lat.mean()) / 0.1) ** 2))
    xr.Dataset(
        {"dz": (("lat", "lon"), dz, {"units": "m"})},
        coords={"lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon)},
    ).to_netcdf(path)
    return path


def test_geoclaw_refuses_a_displacement_that_cannot_be_a_source(tmp_path):
    bathy = write_gebco(tmp_path / "b.nc")  # 149.6-150.4 E, 29.7-30.4 N

    def geoclaw(displacement, out):
        return CliRunner().invoke(
            cli,
            [
                "export",
                "geoclaw",
                str(bathy),
                "--out",
                str(out),
                "--displacement",
                str(displacement),
            ],
        )

    ok = geoclaw(_displacement(tmp_path / "ok.nc", LON0 - 0.2, LAT0 - 0.2, 2.0), tmp_path / "ok")
    assert ok.exit_code == 0, ok.output
    rows = np.loadtxt(tmp_path / "ok" / "dtopo.tt3", skiprows=9)
    assert 1.5 < rows.max() <= 2.0
    cases = [
        (_displacement(tmp_path / "far.nc", 10.0, LAT0, 2.0), "does not overlap the bathymetry"),
        (bathy, "not plausible"),  # a bathymetry given as the displacement: -4000 m of "uplift"
        (_displacement(tmp_path / "big.nc", LON0 - 0.2, LAT0 - 0.2, 500.0), "not plausible"),
    ]
    for i, (displacement, message) in enumerate(cases):
        out = tmp_path / f"o{i}"
        res = geoclaw(displacement, out)
        assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.output
        assert res.output.startswith("Error:") and message in res.output
        assert len(res.output.strip().splitlines()) == 1
        assert not out.exists()
    # the ExaHyPE export and the simulation check share the same guard
    far = open_grid(tmp_path / "far.nc", kind="displacement")
    with pytest.raises(RegionError, match="does not overlap"):
        export_exahype(open_grid(bathy), tmp_path / "exa", displacement=far)
    assert not (tmp_path / "exa").exists()


def test_dtopo_writer_orders_rows_north_to_south(tmp_path):
    x, y = np.arange(3.0), np.arange(4.0) * 2
    dz = np.arange(12.0).reshape(4, 3)
    write_dtopo3(tmp_path / "d.tt3", x, y, dz)
    rows = np.loadtxt(tmp_path / "d.tt3", skiprows=9)
    np.testing.assert_array_equal(rows, dz[::-1])
    write_tt3(tmp_path / "t.tt3", xr.DataArray(dz, dims=("y", "x"), coords={"x": x, "y": y}))
    np.testing.assert_allclose(read_tt3(tmp_path / "t.tt3").values, dz)


def test_anuga_asc_reads_back_with_anugas_reader(tmp_path):
    anuga_grd = pytest.importorskip("anuga.file_conversion.grd2array")
    res = invoke(
        [
            "export",
            "anuga",
            str(write_gebco(tmp_path / "a.nc")),
            "--out",
            str(tmp_path / "an"),
            "--gauge",
            f"{LON0},{LAT0}",
            "--origin",
            f"{LON0},{LAT0}",
        ]
    )
    assert res.exit_code == 0, res.output
    x, y, z = anuga_grd.grd2array(str(tmp_path / "an" / "bathymetry.asc"))
    meta = json.loads((tmp_path / "an" / "anuga.json").read_text())
    assert x[0] == pytest.approx(meta["extent_m"]["x"][0], abs=1e-3)
    assert y[-1] == pytest.approx(meta["extent_m"]["y"][1], abs=1e-3)
    assert z.min() < -3000 and z.max() > 1000 and np.isfinite(z).all()
    assert (tmp_path / "an" / "bathymetry.prj").read_text().startswith("PROJCS")
    assert np.hypot(*meta["gauges_m"][0]) < 1e3  # the origin's own point


def test_cli_errors_are_one_line(tmp_path):
    bathy = write_gebco(tmp_path / "b.nc")
    (tmp_path / "taken").mkdir()
    runner = CliRunner()
    res = runner.invoke(cli, ["export", "exahype", str(bathy), "--out", str(tmp_path / "taken")])
    assert res.exit_code == 1 and "exists" in res.output
    res = runner.invoke(
        cli, ["export", "exahype", str(bathy), "--out", str(tmp_path / "o"), "--probe", "10,10"]
    )
    assert res.exit_code == 1 and "outside" in res.output
    assert not (tmp_path / "o").exists()  # nothing partial left behind
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"lon": 1, "lat": 2, "magnitude": 9}]))
    res = runner.invoke(
        cli, ["export", "exahype", str(bathy), "--out", str(tmp_path / "o"), "--okada", str(bad)]
    )
    assert res.exit_code == 1 and "unknown keys" in res.output
    res = runner.invoke(
        cli, ["export", "geoclaw", str(tmp_path / "missing.nc"), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 1 and res.output.startswith("Error:")


def test_config_validation():
    with pytest.raises(ConfigError):
        ExahypeConfig(mesh_cells=0)
    with pytest.raises(ConfigError):
        ExahypeConfig(end_time=0)
    with pytest.raises(ConfigError, match="south must be below north"):
        ExahypeConfig(domain=(150.0, 30.2, 150.3, 30.0))
    land = xr.DataArray(
        np.full((5, 5), 100.0),
        dims=("y", "x"),
        coords={"x": np.arange(5.0) * 1e3, "y": np.arange(5.0) * 1e3},
    )
    with pytest.raises(RegionError):
        export_exahype(land, "/nonexistent/never-written")


def test_check_asagi_rejects_a_packed_file(tmp_path):
    p = tmp_path / "packed.nc"
    with netCDF4.Dataset(p, "w", format="NETCDF3_CLASSIC") as ds:
        ds.Conventions = "COARDS/CF-1.0"
        ds.createDimension("x", 3)
        ds.createDimension("y", 2)
        ds.createVariable("x", "f8", ("x",))[:] = [0, 1, 2]
        ds.createVariable("y", "f8", ("y",))[:] = [0, 1]
        v = ds.createVariable("z", "f4", ("y", "x"), fill_value=np.float32(-9999))
        v[:] = np.zeros((2, 3))
    with pytest.raises(InputError, match="breaks the ASAGI layout.*_FillValue"):
        check_asagi(p)


def test_max_cells_keeps_cells_square(tmp_path):
    """A capped grid on a non-square region keeps one spacing on both axes (.asc needs it)."""
    grid = open_grid(write_gebco(tmp_path / "r.nc", nlat=31, nlon=81))
    from topoae.simulation.projection import to_local_grid

    local = to_local_grid(grid, max_cells=20)
    dx, dy = np.diff(local.x.values), np.diff(local.y.values)
    assert max(local.shape) <= 20 and min(local.shape) >= 2
    assert np.allclose(dx, dx[0]) and np.allclose(dy, dx[0])
    files = export_anuga(grid, tmp_path / "an", max_cells=20)
    assert "bathymetry.asc" in files


# --- what a real ExaHyPE 1 run (SWE_asagi_limited_l1) needs ----------------------------------


def _exahype_built_cells(width: float, h: float) -> int:
    """Inside cells per side ExaHyPE 1 builds: Runner::createRepository, default bounding-box
    scaling (outside_cells 2, outside_cells_left 1), written out here independently."""
    level, h_max = 1, float("inf")  # Solver::computeCoarsestMeshSizeAndLevel
    while h_max > h:
        h_max = width / 3 ** (level - 1)
        level += 1
    level -= 1
    mesh = -1.0
    while mesh < 0 or mesh > h:
        cells = 3 ** (level - 1)
        scaling = cells / (cells - 2)
        mesh = scaling * width / cells
        level += 1
    return 3 ** (level - 2) - 2


def test_mesh_size_makes_exahype_build_the_reported_count(tmp_path):
    buildable = [3**k - 2 for k in range(1, 10)]  # 1, 7, 25, 79, 241, ...
    for asked in (1, 2, 7, 8, 24, 25, 26, 27, 79, 80, 300):
        n = mesh_cells_for(asked)
        assert n in buildable and n >= asked
        assert all(b < asked for b in buildable if b < n)  # the nearest one not below
        for width in (0.9, 74.1234, 617.3, 1798.0, 12345.6789):
            h = mesh_size_for(width, n)
            assert _exahype_built_cells(width, h) == n, (asked, width)
    # the old rule (width / 27 * 1.001) made ExaHyPE build 79 cells, not 27
    assert _exahype_built_cells(617.3, 617.3 / 27 * 1.001) == 79
    bathy = write_gebco(tmp_path / "b.nc")
    res = invoke(
        ["export", "exahype", str(bathy), "--out", str(tmp_path / "o"), "--mesh-cells", "27"]
    )
    assert res.exit_code == 0, res.output
    assert "79 x 79 cells" in res.output and "asked for 27" in res.output
    spec = json.loads((tmp_path / "o" / "SWE_topoae.exahype2").read_text())
    width = spec["computational_domain"]["width"][0]
    h = spec["solvers"][0]["maximum_mesh_size"]
    assert _exahype_built_cells(width, h) == 79
    assert "79 x 79 coarsest cells" in (tmp_path / "o" / "README.md").read_text()
    out = export_exahype(open_grid(bathy), tmp_path / "d")  # the default: 25, built as is
    assert out.mesh_cells == out.requested_cells == 25
    spec = json.loads((out.out_dir / "SWE_topoae.exahype2").read_text())
    assert (
        _exahype_built_cells(out.domain_width_km[0], spec["solvers"][0]["maximum_mesh_size"]) == 25
    )
    assert out.cell_km == pytest.approx(out.domain_width_km[0] / 25)
    assert json.loads((out.out_dir / "topoae.json").read_text())["exahype_domain"]["cells"] == 25


def _inside(dom_offset, width, p):
    return all(dom_offset[i] <= p[i] < dom_offset[i] + width for i in (0, 1))


def test_default_domain_moves_to_cover_a_coastal_probe(tmp_path):
    # 149.6-152.9 E x 29.7-30.4 N: ~320 x 74 km, coast near 152.0 E
    bathy = write_gebco(tmp_path / "wide.nc", nlon=201)
    grid = open_grid(bathy)
    coastal = (151.9, 30.05)
    out = export_exahype(
        grid, tmp_path / "exa", config=ExahypeConfig(origin=(LON0, LAT0), probes=(coastal,))
    )
    (ox, oy), (w, _) = out.domain_offset_km, out.domain_width_km
    bx = read_asagi(out.out_dir / "bathymetry.nc")
    x0, x1 = float(bx.x[0]) / 1e3, float(bx.x[-1]) / 1e3
    y0, y1 = float(bx.y[0]) / 1e3, float(bx.y[-1]) / 1e3
    assert w == pytest.approx(min(x1 - x0, y1 - y0))  # still the largest square
    assert _inside((ox, oy), w, out.probes_km[0])
    px, py = out.probes_km[0]
    assert min(px - ox, ox + w - px) >= 0.1 * w - 1e-9  # kept off the wall where there is room
    assert x0 - 1e-9 <= ox and ox + w <= x1 + 1e-9
    centred = ((x0 + x1 - w) / 2, (y0 + y1 - w) / 2)
    assert not _inside(centred, w, out.probes_km[0])  # the old centred square missed it
    check_export(out.out_dir)
    # probes at both ends of the grid cannot share one square: the error names the probe
    far = (149.7, 30.0)
    with pytest.raises(RegionError, match=r"probe 149\.7,30 cannot share .* probe 151\.9,30\.05"):
        export_exahype(grid, tmp_path / "x", config=ExahypeConfig(probes=(coastal, far)))
    assert not (tmp_path / "x").exists()
    res = CliRunner().invoke(
        cli,
        [
            "export",
            "exahype",
            str(bathy),
            "--out",
            str(tmp_path / "y"),
            "--probe",
            "151.9,30.05",
            "--probe",
            "149.7,30",
        ],
    )
    assert res.exit_code == 1 and "probe 149.7,30" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "y").exists()


def test_domain_option_places_the_square(tmp_path):
    bathy = write_gebco(tmp_path / "wide.nc", nlon=201)
    box = (151.0, 29.9, 151.5, 30.3)
    res = invoke(
        [
            "export",
            "exahype",
            str(bathy),
            "--out",
            str(tmp_path / "o"),
            "--origin",
            f"{LON0},{LAT0}",
            "--domain",
            ",".join(map(str, box)),
            "--probe",
            "151.2,30.1",
        ]
    )
    assert res.exit_code == 0, res.output
    spec = json.loads((tmp_path / "o" / "SWE_topoae.exahype2").read_text())
    (ox, oy), (w, _) = spec["computational_domain"]["offset"], spec["computational_domain"]["width"]
    proj = LocalProjection(LON0, LAT0)
    lon = np.concatenate([np.linspace(box[0], box[2], 9)] * 2 + [[box[0]] * 9, [box[2]] * 9])
    lat = np.concatenate([[box[1]] * 9, [box[3]] * 9] + [np.linspace(box[1], box[3], 9)] * 2)
    x, y = (v / 1e3 for v in proj.forward(lon, lat))
    assert ox <= x.min() + 1e-9 and x.max() <= ox + w + 1e-9  # covers the box...
    assert oy <= y.min() + 1e-9 and y.max() <= oy + w + 1e-9
    assert w == pytest.approx(max(np.ptp(x), np.ptp(y)))  # ...and is the smallest square that does
    assert f"width {w:.3f} km" in res.output
    check_export(tmp_path / "o")
    grid = open_grid(bathy)
    with pytest.raises(RegionError, match=r"probe 150,30 lies outside the ExaHyPE domain"):
        export_exahype(grid, tmp_path / "p", config=ExahypeConfig(domain=box, probes=((150, 30),)))
    # a box drawn on the grid's own edges pokes out of the inscribed local grid: clipped
    edge = (149.6, 29.7, 150.3, float(grid.lat[-1]))
    out = export_exahype(grid, tmp_path / "e", config=ExahypeConfig(domain=edge))
    assert out.domain_width_km[0] == pytest.approx(
        float(np.ptp(read_asagi(out.out_dir / "bathymetry.nc").y.values)) / 1e3
    )
    with pytest.raises(RegionError, match="outside the bathymetry grid"):
        export_exahype(
            grid, tmp_path / "q", config=ExahypeConfig(domain=(148.0, 29.9, 149.0, 30.3))
        )
    with pytest.raises(RegionError, match="needs a .* km square"):
        export_exahype(
            grid, tmp_path / "r", config=ExahypeConfig(domain=(150.0, 29.8, 152.0, 30.3))
        )
    res = CliRunner().invoke(
        cli, ["export", "exahype", str(bathy), "--out", str(tmp_path / "s"), "--domain", "1,2,3"]
    )
    assert res.exit_code == 1 and "--domain" in res.output


def test_readme_says_how_to_run_swe_asagi_limited_l1(tmp_path):
    out = export_exahype(
        open_grid(write_gebco(tmp_path / "b.nc")),
        tmp_path / "exa",
        config=ExahypeConfig(probes=((LON0 - 0.2, LAT0),)),
    )
    text = (out.out_dir / "README.md").read_text()
    for needle in (
        "mkdir Probes",  # ExaHyPE drops probe output silently without the folder
        "SHARED_DIR",
        "$SHARED_DIR/inputs.txt",
        "/tmp/inputs.txt",
        "Probes/probeN.probe",  # non-MPI
        "Probes/probeN-rank-0.probe",  # MPI
        "SWE_asagi_limited_l1",
        "9.81e-3",
        "SHAREDMEM=TBB",
        "make SHAREDMEM=None",
        f"{out.mesh_cells} x {out.mesh_cells} coarsest cells",
    ):
        assert needle in text, needle
    spec = json.loads((out.out_dir / "SWE_topoae.exahype2").read_text())
    assert spec["paths"]["output_directory"].endswith("/SWE_asagi_limited_l1")
    assert "shared_memory" in spec  # kept: the README says how to build without TBB


def _write_probe(path: Path, plotter: dict, times, eta_m, depth_m):
    """A probe file as ExaHyPE 1's probe::ascii plotter writes it (C++ stream, 6 digits)."""
    header = "# plot-time, real-time" + "".join(f",Q{i}" for i in range(plotter["variables"]))
    lines = [header]
    for t, e in zip(times, eta_m, strict=True):
        q = [(depth_m + e) / 1e3, 1e-4 * e, 0.0, -depth_m / 1e3]  # h, hu, hv, b (km)
        lines.append(", ".join(f"{v:g}" for v in (t, t, *q[: plotter["variables"]])))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def test_probe_files_of_two_runs_resample_onto_one_axis(tmp_path):
    out = export_exahype(
        open_grid(write_gebco(tmp_path / "b.nc")),
        tmp_path / "exa",
        config=ExahypeConfig(probes=((LON0 - 0.2, LAT0),), probe_every=5.0, end_time=600.0),
    )
    spec = json.loads((out.out_dir / "SWE_topoae.exahype2").read_text())
    (plotter,) = spec["solvers"][0]["plotters"]
    assert plotter["type"] == "probe::ascii" and plotter["variables"] == 4
    every, depth = plotter["repeat"], 6000.0

    def eta(t):
        return 0.3 * np.sin(2 * np.pi * t / 600.0)

    files = []
    for run, dt in enumerate((1.3, 0.7)):
        steps = dt * np.arange(int(600 / dt) + 1)
        # a plot fires on the first time step at or after each mark
        times = np.unique(
            [steps[np.searchsorted(steps, m - 1e-9)] for m in np.arange(0, 590, every)]
        )
        f = tmp_path / f"run{run}" / (plotter["output"] + ".probe")  # non-MPI name
        _write_probe(f, plotter, times, eta(times), depth)
        files.append(f)
    t0, e0 = read_exahype_probe(files[0])
    t1, _ = read_exahype_probe(files[1])
    assert e0.dtype == np.float64
    assert not np.allclose(t0[1:10], t1[1:10])  # the runs sample at different times
    # h and b are written with 6 digits each: eta moves in 1 cm steps at 6 km depth
    np.testing.assert_allclose(e0 * 100, np.round(e0 * 100), atol=1e-6)
    assert np.abs(e0 - eta(t0)).max() <= 0.01 + 1e-9
    t, e = resample_exahype_probes(files, every=every)
    assert e.shape == (2, t.size) and e.dtype == np.float64
    np.testing.assert_allclose(t, every * np.arange(t.size))  # the marks, shared by both runs
    assert t[-1] >= 580.0
    assert np.abs(e - eta(t)).max() < 0.011  # 1 cm rounding + linear interpolation
    # a run stopped mid-write leaves a cut line: it is dropped
    cut = tmp_path / "cut.probe"
    cut.write_text(files[0].read_text() + "600.5, 600.5, 6.0")
    np.testing.assert_array_equal(read_exahype_probe(cut)[1], e0)


def _read_asc(path: Path) -> np.ndarray:
    import rioxarray

    return rioxarray.open_rasterio(path, masked=True).values


@pytest.mark.parametrize(
    "engine,read",
    [
        ("geoclaw", lambda d: read_tt3(d / "topo.tt3").values),
        ("exahype", lambda d: read_asagi(d / "bathymetry.nc").values),
        ("anuga", lambda d: _read_asc(d / "bathymetry.asc")),
    ],
)
def test_units_ft_exports_metres(tmp_path, feet_nc, engine, read):
    """A grid in feet that does not say so: ``--units ft`` makes every export metres."""
    metres = open_grid(feet_nc, units="ft").values
    res = invoke(["export", engine, str(feet_nc), "--out", str(tmp_path / engine), "--units", "ft"])
    assert res.exit_code == 0, res.output
    z = read(tmp_path / engine)
    lo, hi = float(metres.min()), float(metres.max())
    assert lo - 1 <= float(np.nanmin(z)) and float(np.nanmax(z)) <= hi + 1
    assert float(np.nanmax(z)) - float(np.nanmin(z)) > 0.5 * (hi - lo)
