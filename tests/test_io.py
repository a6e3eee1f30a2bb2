"""Reading grids: variable detection, orientation, seams, NaN, bbox (antimeridian), formats."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from topoae.errors import InputError, RegionError, VariableError
from topoae.io import open_grid, parse_bbox
from topoae.io.grid import DESCENDING
from topoae.regions import TOHOKU_BOX


def _write(ds: xr.Dataset, path) -> str:
    ds.to_netcdf(path)
    return str(path)


def _global(lon: np.ndarray, lat: np.ndarray, name="z", descending=False) -> xr.Dataset:
    lon2, lat2 = np.meshgrid(lon, lat)
    z = (1000 * np.sin(np.radians(lon2)) + lat2).astype(np.float32)
    if descending:
        lat, z = lat[::-1], z[::-1]
    return xr.Dataset(
        {name: (("lat", "lon"), z)},
        coords={
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
    )


def test_gebco_file_is_canonical_and_lazy(gebco_nc):
    da = open_grid(gebco_nc)
    assert da.dims == ("lat", "lon") and da.shape == (300, 420)
    assert da.dtype == np.float32 and da.name == "elevation"
    assert da.chunks is not None  # dask-backed, nothing loaded yet
    assert da.attrs["units"] == "m" and da.attrs["variable"] == "elevation"
    assert da.rio.crs.to_epsg() == 4326
    assert np.all(np.diff(da.lat.values) > 0)
    raw = xr.open_dataset(gebco_nc)["elevation"].values
    np.testing.assert_array_equal(da.values, raw.astype(np.float32))


def test_descending_latitude_is_flipped(tmp_path):
    lat = np.linspace(-10, 10, 21)
    lon = np.linspace(0, 20, 41)
    path = _write(_global(lon, lat, descending=True), tmp_path / "desc.nc")
    da = open_grid(path)
    assert np.all(np.diff(da.lat.values) > 0)
    expected = _global(lon, lat)["z"]
    np.testing.assert_array_equal(da.values, expected.values)
    assert da.encoding[DESCENDING] == ["lat"]  # the file's order, for writing a grid back
    assert open_grid(_write(_global(lon, lat), tmp_path / "asc.nc")).encoding[DESCENDING] == []


def test_projected_netcdf_keeps_its_crs(tmp_path):
    """The CRS of a CF projected NetCDF (``grid_mapping`` → ``spatial_ref``) is attached."""
    import rioxarray  # noqa: F401

    z = np.arange(20 * 30, dtype=np.float32).reshape(20, 30) - 300
    y, x = 3.9e6 + 500.0 * np.arange(20)[::-1], 5e5 + 500.0 * np.arange(30)
    da = xr.DataArray(z, dims=("y", "x"), coords={"y": y, "x": x}, attrs={"units": "m"})
    path = _write(da.rio.write_crs("EPSG:32654").to_dataset(name="elevation"), tmp_path / "p.nc")
    g = open_grid(path)
    assert g.dims == ("y", "x") and g.rio.crs.to_epsg() == 32654
    assert g.encoding[DESCENDING] == ["y"]


@pytest.mark.parametrize("lon", [np.arange(0, 360.1, 1.0), np.arange(-180, 180.1, 1.0)])
def test_repeated_seam_column_is_dropped(tmp_path, lon):
    path = _write(_global(lon, np.arange(-5, 6, 1.0)), tmp_path / "g.nc")
    da = open_grid(path)
    assert da.sizes["lon"] == 360
    assert da.lon.values[-1] == lon[-2]


def test_unknown_variable_lists_candidates(tmp_path):
    ds = _global(np.arange(0, 10.0), np.arange(0, 10.0), name="foo")
    ds["bar"] = ds["foo"] * 2
    path = _write(ds, tmp_path / "two.nc")
    with pytest.raises(VariableError, match="foo, bar|bar, foo"):
        open_grid(path)
    with pytest.raises(VariableError, match="candidates: foo, bar"):
        open_grid(path, var="elevation")
    assert open_grid(path, var="bar").name == "bar"


@pytest.mark.parametrize("name", ["z", "Band1", "ROSE", "DEPTH"])
def test_common_variable_names_are_detected(tmp_path, name):
    ds = _global(np.arange(0, 10.0), np.arange(0, 10.0), name=name)
    ds["other_2d"] = ds[name] * 0 + 1  # a second 2-D variable must not confuse detection
    assert open_grid(_write(ds, tmp_path / "v.nc")).name == name


def test_nodata_is_masked_not_zero(tmp_path):
    ds = _global(np.arange(0, 10.0), np.arange(0, 10.0))
    z = ds["z"].values.copy()
    z[2, 3] = -32768
    ds["z"] = (("lat", "lon"), z)
    ds["z"].encoding["_FillValue"] = -32768.0
    path = tmp_path / "fill.nc"
    ds.to_netcdf(path)
    da = open_grid(path).values
    assert np.isnan(da[2, 3]) and np.isfinite(np.delete(da.ravel(), 2 * 10 + 3)).all()


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_grid(tmp_path / "nope.nc")
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"this is not netcdf")
    with pytest.raises(InputError, match="cannot read"):
        open_grid(bad)


def test_feet_are_converted(tmp_path):
    ds = _global(np.arange(0, 10.0), np.arange(0, 10.0))
    path = _write(ds, tmp_path / "ft.nc")
    np.testing.assert_allclose(
        open_grid(path, units="ft").values, ds["z"].values * 0.3048, rtol=1e-6
    )


@pytest.mark.parametrize("lon", [np.arange(0, 360, 0.5) + 0.25, np.arange(-180, 180, 0.5) + 0.25])
@pytest.mark.parametrize("box", [(170.0, -5.0, -170.0, 5.0), (170.0, -5.0, 190.0, 5.0)])
def test_antimeridian_subset(tmp_path, lon, box):
    path = _write(_global(lon, np.arange(-10, 10.5, 0.5)), tmp_path / "am.nc")
    da = open_grid(path, bbox=box)
    lons = da.lon.values
    assert np.all(np.diff(lons) > 0), "longitudes must stay monotonic across the antimeridian"
    np.testing.assert_allclose(np.diff(lons), 0.5)
    assert lons[0] == pytest.approx(170.25) and lons[-1] == pytest.approx(189.75)
    assert da.sizes["lon"] == 40 and da.lat.min() >= -5 and da.lat.max() <= 5
    # values follow their longitude: z = 1000 sin(lon) + lat
    expect = 1000 * np.sin(np.radians(lons))[None, :] + da.lat.values[:, None]
    np.testing.assert_allclose(da.values, expect, atol=1e-2)


def test_negative_box_on_0_360_grid_keeps_box_convention(tmp_path):
    path = _write(_global(np.arange(0, 360, 1.0) + 0.5, np.arange(-10, 11, 1.0)), tmp_path / "g.nc")
    da = open_grid(path, bbox=(-10, -5, 10, 5))
    np.testing.assert_allclose(da.lon.values, np.arange(-9.5, 10, 1.0))


def test_bbox_errors(tmp_path, gebco_nc):
    with pytest.raises(RegionError, match="outside the grid"):
        open_grid(gebco_nc, bbox=(100, 10, 110, 20))
    with pytest.raises(RegionError):
        parse_bbox("1,2,3")
    with pytest.raises(RegionError, match="south"):
        parse_bbox("0,5,1,4")


def test_geotiff_ascii_and_zarr_round_trip(tmp_path, gebco_nc):
    import rioxarray  # noqa: F401

    da = open_grid(gebco_nc).isel(lat=slice(0, 50), lon=slice(0, 60)).load()
    tif = tmp_path / "g.tif"
    da.rio.to_raster(tif)
    got = open_grid(tif)
    assert got.dims == ("lat", "lon") or got.dims == ("y", "x")
    np.testing.assert_array_equal(got.values, da.values)
    zarr_path = tmp_path / "g.zarr"
    da.to_dataset(name="elevation").drop_vars("spatial_ref").to_zarr(zarr_path, zarr_format=3)
    np.testing.assert_array_equal(open_grid(zarr_path).values, da.values)
    asc = tmp_path / "g.asc"
    da.rio.to_raster(asc, driver="AAIGrid")
    np.testing.assert_allclose(open_grid(asc).values, da.values, atol=1e-3)


def test_geoclaw_topotype3(tmp_path):
    z = np.arange(12, dtype=float).reshape(3, 4)  # rows north to south in the file
    text = "4 ncols\n3 nrows\n10.0 xllcorner\n20.0 yllcorner\n0.5 cellsize\n-9999 nodata_value\n"
    text += "\n".join(" ".join(str(v) for v in row) for row in z) + "\n"
    (tmp_path / "t.tt3").write_text(text)
    da = open_grid(tmp_path / "t.tt3")
    np.testing.assert_array_equal(da.values, z[::-1])
    np.testing.assert_allclose(da.lat.values, [20.0, 20.5, 21.0])


def test_real_grids_open(shared_data):
    etopo5 = open_grid(shared_data / "etopo_global/etopo5_global_5min_ferret.cdf")
    assert etopo5.name == "ROSE" and etopo5.shape == (2161, 4320)
    gebco = open_grid(shared_data / "gebco_15s/gebco15s_suruga_bay_138.14-138.97E_34.62-35.46N.nc")
    assert gebco.shape == (202, 201) and float(gebco.min()) == -2363.0
    tohoku = open_grid(shared_data / "etopo_global/etopo1_global_10min_gmtcache.nc", bbox=TOHOKU_BOX)
    assert tohoku.shape == (49, 49)


def _lone(tmp_path, name, **attrs):
    ds = _global(np.arange(0, 10.0), np.arange(0, 10.0), name=name)
    ds[name].attrs.update(attrs)
    return _write(ds, tmp_path / f"{name}.nc")


def test_lone_variable_must_say_it_is_elevation(tmp_path):
    path = _lone(tmp_path, "temperature", units="degC", long_name="sea surface temperature")
    with pytest.raises(VariableError, match="'temperature'.*--var temperature.*candidates"):
        open_grid(path)
    assert open_grid(path, var="temperature").name == "temperature"  # --var names it: taken
    unnamed = _lone(tmp_path, "foo")
    with pytest.raises(VariableError, match="does not say it is elevation"):
        open_grid(unnamed)


@pytest.mark.parametrize(
    ("name", "attrs"),
    [
        ("seafloor_depth", {}),
        ("foo", {"standard_name": "sea_floor_depth_below_sea_level"}),
        ("foo", {"standard_name": "height_above_mean_sea_level"}),
        ("foo", {"long_name": "Bathymetry"}),
        ("foo", {"long_name": "Topography"}),
        ("foo", {"units": "metres"}),
        ("GDAL_altitude", {}),
    ],
)
def test_lone_variable_saying_elevation_is_taken(tmp_path, name, attrs):
    assert open_grid(_lone(tmp_path, name, **attrs)).name == name


def test_displacement_grids_are_detected_by_their_own_words(tmp_path):
    path = _lone(tmp_path, "uplift", units="m")
    assert open_grid(path, kind="displacement").name == "uplift"
    path = _lone(tmp_path, "temperature", units="degC")
    with pytest.raises(VariableError, match="--displacement-var temperature"):
        open_grid(path, kind="displacement")


@pytest.mark.parametrize(
    "box",
    [
        (10.0, 2.0, 5.0, 8.0),  # west and east swapped: would wrap the whole Earth
        (8.0, 2.0, -170.0, 8.0),  # crosses the antimeridian, which this grid does not hold
    ],
)
def test_west_above_east_on_a_regional_grid_is_refused(tmp_path, box):
    path = _write(_global(np.arange(0, 20, 0.5), np.arange(0, 10, 0.5)), tmp_path / "r.nc")
    with pytest.raises(RegionError, match="regional"):
        open_grid(path, bbox=box)


def test_regional_grid_over_a_seam_serves_a_box_across_it(tmp_path):
    # a Pacific grid stored 150..210 holds the antimeridian; a -180..180 box may cross it
    pacific = _write(
        _global(np.arange(150, 210, 1.0) + 0.5, np.arange(-10, 11, 1.0)), tmp_path / "p.nc"
    )
    da = open_grid(pacific, bbox=(170, -5, -170, 5))
    np.testing.assert_allclose(da.lon.values, np.arange(170.5, 190, 1.0))
    # a Greenwich grid -20..20 holds 0°/360°; a 0..360 box may cross it
    europe = _write(
        _global(np.arange(-20, 20, 1.0) + 0.5, np.arange(-10, 11, 1.0)), tmp_path / "e.nc"
    )
    da = open_grid(europe, bbox=(350, -5, 10, 5))
    np.testing.assert_allclose(da.lon.values % 360, np.arange(-9.5, 10, 1.0) % 360)
    with pytest.raises(RegionError, match="two separate pieces"):
        open_grid(europe, bbox=(15, -5, 5, 5))  # 15 east round to 5: both ends of this grid
    assert open_grid(europe, bbox=(0, -5, 360, 5)).sizes["lon"] == 40  # every longitude
