"""A projected (x/y metres) displacement as a source on a geographic bathymetry.

Its frame comes from the file (a CRS) or from ``--displacement-origin LON,LAT`` (a transverse
Mercator centred there); without either it is refused, in every path (`topoae export
exahype|geoclaw`, `topoae simulate` and the library's check).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from topoae.cli.main import cli
from topoae.errors import ConfigError
from topoae.io import open_grid
from topoae.simulation.asagi import read_asagi
from topoae.simulation.projection import LocalProjection, regrid_like, to_geographic, to_local_grid
from topoae.simulation.sources import align_displacement

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TOHOKU_DISPL = SHARED / "exahype" / "tohoku_gebco_ucsb3_2000m_hawaii_displ.nc"

FRAME = LocalProjection(149.8, 30.2)  # the displacement's frame, off the bathymetry's centre
PEAK_LON, PEAK_LAT, PEAK_M, SIGMA_M = 150.3, 29.8, 3.0, 25e3
STEP_M = 2000.0


def uplift(lon, lat) -> np.ndarray:
    """The known geographic Gaussian uplift (m): PEAK_M at (PEAK_LON, PEAK_LAT)."""
    dx = (lon - PEAK_LON) * 111_320.0 * np.cos(np.radians(PEAK_LAT))
    dy = (lat - PEAK_LAT) * 111_320.0
    return PEAK_M * np.exp(-(dx**2 + dy**2) / (2 * SIGMA_M**2))


def projected_displacement(proj: LocalProjection = FRAME) -> xr.DataArray:
    """The uplift sampled on a 240 × 240 km grid of ``proj``'s metres (no CRS)."""
    x = np.arange(-120e3, 120e3 + 1, STEP_M)
    y = np.arange(-120e3, 120e3 + 1, STEP_M)
    lon, lat = proj.inverse(*np.meshgrid(x, y))
    return xr.DataArray(
        uplift(lon, lat).astype(np.float32),
        dims=("y", "x"),
        coords={"x": ("x", x, {"units": "m"}), "y": ("y", y, {"units": "m"})},
        name="z",
        attrs={"units": "m", "long_name": "vertical displacement"},
    )


def write_bathymetry(path: Path) -> Path:
    """A geographic GEBCO-like grid, 148.5–151.5 E, 28.5–31.5 N, 0.02°: deep sea, land in the NE."""
    lon = 148.5 + 0.02 * np.arange(151)
    lat = 28.5 + 0.02 * np.arange(151)
    glon, glat = np.meshgrid(lon, lat)
    z = np.where((glon > 151.2) & (glat > 31.2), 100.0, -4000.0 + 300.0 * (glon - 148.5))
    xr.Dataset(
        {"elevation": (("lat", "lon"), z.astype(np.float32), {"units": "m"})},
        coords={
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
    ).to_netcdf(path)
    return path


def peak_lonlat(da: xr.DataArray) -> tuple[float, float, float]:
    """(lon, lat, height) of a geographic grid's highest cell."""
    i, j = np.unravel_index(np.nanargmax(da.values), da.shape)
    return float(da["lon"][j]), float(da["lat"][i]), float(da.values[i, j])


def invoke(args: list[str]):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_reprojection_puts_the_peak_at_its_lon_lat_with_its_height():
    geo = to_geographic(projected_displacement(), FRAME)
    assert geo.dims == ("lat", "lon")
    dlat, dlon = float(np.diff(geo["lat"]).mean()), float(np.diff(geo["lon"]).mean())
    # about the source's own 2 km cells
    assert dlat * 111_320 == pytest.approx(STEP_M, rel=0.05)
    assert dlon * 111_320 * np.cos(np.radians(30.2)) == pytest.approx(STEP_M, rel=0.05)
    lon, lat, height = peak_lonlat(geo)
    assert abs(lon - PEAK_LON) <= dlon and abs(lat - PEAK_LAT) <= dlat
    assert height == pytest.approx(PEAK_M, rel=0.01)
    # bilinear: everywhere inside, the known uplift
    glon, glat = np.meshgrid(geo["lon"].values, geo["lat"].values)
    inside = np.isfinite(geo.values)
    np.testing.assert_allclose(geo.values[inside], uplift(glon, glat)[inside], atol=0.02)
    # NaN outside the footprint: the box's corners lie beyond the curved outline
    assert not inside[0, 0] and inside[geo.shape[0] // 2, geo.shape[1] // 2]
    assert geo.attrs["reprojected_from"].startswith("+proj=tmerc")


def test_align_takes_the_bathymetry_longitude_convention(tmp_path):
    bathy = open_grid(write_bathymetry(tmp_path / "b.nc"))
    d = projected_displacement(LocalProjection(-170.0, 30.0))  # the same frame, written ±180
    shifted = bathy.assign_coords(lon=bathy["lon"] + 40.0)  # 188.5–191.5: 0–360 style
    out = align_displacement(d, shifted, origin=(-170.0, 30.0))
    assert 185.0 < float(out["lon"].mean()) < 195.0


def test_align_refuses_an_origin_it_would_ignore(tmp_path):
    bathy = open_grid(write_bathymetry(tmp_path / "b.nc"))
    d = projected_displacement()
    with pytest.raises(ConfigError, match="only for a projected"):
        align_displacement(to_geographic(d, FRAME), bathy, origin=(149.8, 30.2))
    local = to_local_grid(bathy)
    with pytest.raises(ConfigError, match="only for a projected"):
        align_displacement(d, local, origin=(149.8, 30.2))
    assert align_displacement(d, local) is d  # projected on projected: same frame, as before
    with pytest.raises(ConfigError, match="--displacement-origin"):
        align_displacement(d, bathy)


@pytest.mark.parametrize("engine", ["geoclaw", "exahype"])
def test_export_without_a_frame_is_one_error_line(tmp_path, engine):
    bathy = write_bathymetry(tmp_path / "b.nc")
    displ = tmp_path / "d.nc"
    projected_displacement().to_dataset().to_netcdf(displ)
    out = tmp_path / "out"
    res = invoke(["export", engine, bathy, "--out", out, "--displacement", displ])
    assert res.exit_code == 1, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert res.output.startswith("Error:") and "--displacement-origin LON,LAT" in res.output
    assert "no CRS" in res.output
    assert not out.exists()


def test_geoclaw_export_with_the_origin_writes_the_uplift_in_lon_lat(tmp_path):
    bathy = write_bathymetry(tmp_path / "b.nc")
    displ = tmp_path / "d.nc"
    projected_displacement().to_dataset().to_netcdf(displ)
    out = tmp_path / "gc"
    args = ["export", "geoclaw", bathy, "--out", out, "--displacement", displ]
    res = invoke([*args, "--displacement-origin", "149.8,30.2"])
    assert res.exit_code == 0, res.output
    lines = (out / "dtopo.tt3").read_text().splitlines()
    head = {ln.split()[1]: float(ln.split()[0]) for ln in lines[:9]}
    rows = np.loadtxt(lines[9:])[::-1]  # north to south in the file
    i, j = np.unravel_index(np.argmax(rows), rows.shape)
    lon, lat = head["xlower"] + j * head["dx"], head["ylower"] + i * head["dy"]
    assert abs(lon - PEAK_LON) <= head["dx"] and abs(lat - PEAK_LAT) <= head["dy"]
    assert rows.max() == pytest.approx(PEAK_M, rel=0.01)


def test_exahype_export_with_the_origin_puts_the_uplift_in_the_local_frame(tmp_path):
    bathy = write_bathymetry(tmp_path / "b.nc")
    displ = tmp_path / "d.nc"
    projected_displacement().to_dataset().to_netcdf(displ)
    out = tmp_path / "exa"
    args = ["export", "exahype", bathy, "--out", out, "--displacement", displ]
    res = invoke([*args, "--displacement-origin", "149.8,30.2", "--origin", "150,30"])
    assert res.exit_code == 0, res.output
    d = read_asagi(out / "displacement.nc")
    i, j = np.unravel_index(np.argmax(d.values), d.shape)
    px, py = LocalProjection(150.0, 30.0).forward(PEAK_LON, PEAK_LAT)
    cell = float(np.diff(d["x"]).mean())
    assert abs(float(d["x"][j]) - px) <= 1.5 * cell and abs(float(d["y"][i]) - py) <= 1.5 * cell
    assert float(d.max()) == pytest.approx(PEAK_M, rel=0.03)
    record = json.loads((out / "topoae.json").read_text())
    assert record["provenance"]["displacement_origin"] == "149.8,30.2"


def test_a_displacement_in_a_crs_needs_no_origin(tmp_path):
    import rioxarray  # noqa: F401
    from pyproj import Transformer

    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32656", always_xy=True)  # 150–156 E
    cx, cy = to_utm.transform(PEAK_LON, PEAK_LAT)
    x = cx + np.arange(-100e3, 100e3 + 1, STEP_M)
    y = cy + np.arange(-100e3, 100e3 + 1, STEP_M)
    lon, lat = Transformer.from_crs("EPSG:32656", "EPSG:4326", always_xy=True).transform(
        *np.meshgrid(x, y)
    )
    da = xr.DataArray(
        uplift(lon, lat).astype(np.float32),
        dims=("y", "x"),
        coords={"x": x, "y": y},
        name="dz",
        attrs={"units": "m"},
    ).rio.write_crs("EPSG:32656")
    displ = tmp_path / "utm.nc"
    da.to_dataset().to_netcdf(displ)
    bathy = write_bathymetry(tmp_path / "b.nc")
    out = tmp_path / "gc"
    res = invoke(["export", "geoclaw", bathy, "--out", out, "--displacement", displ])
    assert res.exit_code == 0, res.output
    geo = align_displacement(open_grid(displ, kind="displacement"), open_grid(bathy))
    assert geo.attrs["reprojected_from"] == "EPSG:32656"
    lon, lat, height = peak_lonlat(geo)
    assert abs(lon - PEAK_LON) < 0.03 and abs(lat - PEAK_LAT) < 0.03
    assert height == pytest.approx(PEAK_M, rel=0.01)


def _stub_engine(seen: dict):
    from topoae.simulation.base import GaugeRun

    def run(grid, eta0, gauges, config):
        seen["eta0"] = eta0
        return GaugeRun(np.arange(3.0), np.zeros((3, len(gauges))), 0.0, 0)

    return SimpleNamespace(run=run)


def test_the_check_reprojects_or_refuses_a_projected_displacement(tmp_path, monkeypatch):
    """Before: the x/y were taken as the check's own local metres, silently."""
    from topoae.simulation import check

    seen: dict = {}
    monkeypatch.setattr(check, "get_engine", lambda name: _stub_engine(seen))
    original = open_grid(write_bathymetry(tmp_path / "b.nc"))
    cfg = check.CheckConfig(gauges=((149.5, 30.0),), max_cells=80, flat=False)
    d = projected_displacement()
    with pytest.raises(ConfigError, match="--displacement-origin"):
        check.shallow_water_check(original, source=d, config=cfg)
    result = check.shallow_water_check(original, source=d.rio.write_crs(FRAME.proj4), config=cfg)
    eta0 = seen["eta0"]
    i, j = np.unravel_index(np.argmax(eta0.values), eta0.shape)
    proj = LocalProjection(eta0.attrs["origin_lon"], eta0.attrs["origin_lat"])
    lon, lat = proj.inverse(float(eta0["x"][j]), float(eta0["y"][i]))
    cell = eta0.attrs["spacing_m"] / 111_320.0
    assert abs(float(lon) - PEAK_LON) < 1.5 * cell / np.cos(np.radians(30.0))
    assert abs(float(lat) - PEAK_LAT) < 1.5 * cell
    assert float(eta0.max()) == pytest.approx(PEAK_M, rel=0.05)
    assert "Transverse_Mercator" in result.record["source"]["frame"]  # the CRS it carried
    # and a projected grid is never put on geographic cells as if in their metres
    with pytest.raises(ConfigError, match="reproject"):
        regrid_like(d, result.grid)


def test_simulate_cli_refuses_a_projected_displacement_without_a_frame(tmp_path, monkeypatch):
    from topoae.simulation import check, engine

    monkeypatch.setattr(engine, "import_anuga", lambda: None)
    seen: dict = {}

    def fake_check(grid, **kw):
        seen.update(kw)
        return SimpleNamespace(wall_s={}, metrics=[])

    monkeypatch.setattr(check, "shallow_water_check", fake_check)
    monkeypatch.setattr(check, "write_check", lambda *a, **kw: [])
    bathy = write_bathymetry(tmp_path / "b.nc")
    displ = tmp_path / "d.nc"
    projected_displacement().to_dataset().to_netcdf(displ)
    out = tmp_path / "sim"
    args = ["simulate", "--bathymetry", bathy, "--out", out]
    args += ["--source", "displacement", "--displacement", displ]
    res = invoke(args)
    assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1, res.output
    assert "--displacement-origin LON,LAT" in res.output and not out.exists()
    assert not seen
    res = invoke([*args, "--displacement-origin", "149.8,30.2"])
    assert res.exit_code == 0, res.output
    lon, lat, height = peak_lonlat(seen["source"])
    assert abs(lon - PEAK_LON) < 0.03 and abs(lat - PEAK_LAT) < 0.03
    assert height == pytest.approx(PEAK_M, rel=0.01)


@pytest.mark.skipif(not TOHOKU_DISPL.exists(), reason="needs ../shared/data")
def test_the_real_tohoku_displacement_on_a_geographic_bathymetry(tmp_path):
    """The thesis' ExaHyPE displacement (x/y metres, no CRS) with the frame given by hand."""
    lon = 139.0 + 0.05 * np.arange(141)
    lat = 35.0 + 0.05 * np.arange(121)
    glon, _ = np.meshgrid(lon, lat)
    z = np.where(glon < 140.5, 200.0, -5000.0 + 300.0 * (146.0 - glon))  # land in the west
    bathy = tmp_path / "b.nc"
    xr.Dataset(
        {"elevation": (("lat", "lon"), z.astype(np.float32))}, coords={"lat": lat, "lon": lon}
    ).to_netcdf(bathy)
    out = tmp_path / "exa"
    args = ["export", "exahype", bathy, "--out", out, "--displacement", TOHOKU_DISPL]
    res = invoke(args)
    assert res.exit_code == 1 and "--displacement-origin" in res.output and not out.exists()
    res = invoke([*args, "--displacement-origin", "142.369,38.322"])
    assert res.exit_code == 0, res.output
    d = read_asagi(out / "displacement.nc")
    assert 15.0 < float(d.max()) < 16.5  # the file's own peak is 16.17 m
    assert float(d.min()) < -5.0
