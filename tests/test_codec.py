"""The codec: encode / decode whole regions (topoae.codec, topoae.codec.files, topoae encode|decode)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from topoae import codec
from topoae.codec import files as codec_io
from topoae.data.normalise import Normalisation
from topoae.errors import (
    ConfigError,
    InputError,
    ModelMismatchError,
    OutputExistsError,
    RegionError,
    StoreError,
)

UNIT = Normalisation(mode="global", zmin=0.0, zrange=1.0)  # exact: metres are the network's values


class Identity(nn.Module):
    """A 'model' whose latent is the patch itself: the codec must give the input back exactly."""

    def __init__(self, patch: int = 16) -> None:
        super().__init__()
        self.patch_size, self.latent_dim = patch, patch * patch
        self.register_buffer("tag", torch.zeros(1))

    def encode(self, x):
        return x.reshape(x.shape[0], -1), None

    def decode(self, z):
        return z.reshape(z.shape[0], 1, self.patch_size, self.patch_size)


class NoNaN(Identity):
    """Refuses NaN input: NaN cells must never reach the network."""

    def encode(self, x):
        assert not torch.isnan(x).any(), "NaN reached the encoder"
        return super().encode(x)


class TinyAE(nn.Module):
    """A small MLP auto-encoder (optionally variational) following the model protocol."""

    def __init__(self, patch: int = 16, latent: int = 8, variational: bool = False) -> None:
        super().__init__()
        self.patch_size, self.latent_dim, self.variational = patch, latent, variational
        n = patch * patch
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(n, 64), nn.Tanh())
        self.mu = nn.Linear(64, latent)
        self.logvar = nn.Linear(64, latent)
        self.dec = nn.Sequential(nn.Linear(latent, 64), nn.Tanh(), nn.Linear(64, n))

    def encode(self, x):
        h = self.enc(x)
        return self.mu(h), (self.logvar(h) - 2.0 if self.variational else None)

    def decode(self, z):
        return self.dec(z).reshape(-1, 1, self.patch_size, self.patch_size)


def make_grid(
    h: int, w: int, seed: int = 0, *, nan: bool = False, dims=("lat", "lon")
) -> xr.DataArray:
    """A smooth random grid in metres with GEBCO-like coordinates and attributes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    z = 2000 * np.sin(yy / 9.0 + rng.uniform(0, 6)) * np.cos(xx / 13.0) - 1500
    z = (z + 50 * rng.standard_normal((h, w))).astype(np.float32)
    if nan:
        z[2:5, 3:9] = np.nan
        z[-1, -1] = np.nan
    lat = 34.5 + (np.arange(h) + 0.5) / 240.0
    lon = 138.0 + (np.arange(w) + 0.5) / 240.0
    da = xr.DataArray(
        z,
        dims=dims,
        coords={dims[0]: lat, dims[1]: lon},
        name="elevation",
        attrs={"units": "m", "long_name": "Elevation relative to sea level", "source": "test"},
    )
    da[dims[0]].attrs["units"] = "degrees_north"
    return da


@pytest.fixture(scope="module")
def trained():
    """A tiny AE trained here, in plain torch, on random crops of a synthetic GEBCO-like grid."""
    from topoae.io.synthetic import synthetic_grid

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        train = synthetic_grid(128, 128, seed=1).values
        norm = Normalisation(mode="global")
        model = TinyAE(16, 8)
        opt = torch.optim.Adam(model.parameters(), 3e-3)
        rng = np.random.default_rng(0)
        for _ in range(1500):
            i, j = rng.integers(0, 128 - 16, (2, 64))
            x = np.stack([train[a : a + 16, b : b + 16] for a, b in zip(i, j, strict=True)])
            xn = torch.from_numpy(((x - norm.zmin) / norm.zrange).astype(np.float32))[:, None]
            loss = ((model.decode(model.encode(xn)[0]) - xn) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        yield model
    finally:
        torch.set_num_threads(threads)


# --- exactness through tiling and blending ------------------------------------------------------


@pytest.mark.parametrize(
    "h,w,stride", [(50, 37, 12), (16, 17, 13), (64, 64, 16), (33, 65, 9), (16, 16, 16), (40, 41, 3)]
)
@pytest.mark.parametrize("window", ["cosine", "uniform", "nearest"])
def test_identity_decoder_reproduces_the_input_exactly(h, w, stride, window):
    da = make_grid(h, w, nan=h > 10)
    m = Identity()
    ds = codec.encode(da, m, stride=stride, window=window, normalise=UNIT, band_rows=2)
    out = codec.decode(ds, m)
    np.testing.assert_array_equal(out.values, da.values)  # NaN where the input is NaN


@pytest.mark.parametrize("mode", ["global", "patch"])
def test_identity_round_trip_with_real_normalisations(mode):
    da = make_grid(45, 52, nan=True)
    m = Identity()
    ds = codec.encode(da, m, stride=12, normalise=Normalisation(mode=mode))
    assert ("offset" in ds) == (mode == "patch")
    out = codec.decode(ds, m)
    np.testing.assert_allclose(out.values, da.values, rtol=0, atol=2e-3)
    assert np.array_equal(np.isnan(out.values), np.isnan(da.values))


def test_nan_cells_never_reach_the_model_and_come_back_as_nan():
    da = make_grid(40, 40, nan=True)
    da[20:36, 20:36] = np.nan  # a whole patch of NaN too
    m = NoNaN()
    out = codec.decode(codec.encode(da, m, stride=12, normalise=UNIT), m)
    assert np.array_equal(np.isnan(out.values), np.isnan(da.values))
    assert np.isfinite(out.values[~np.isnan(da.values)]).all()


def test_bands_and_lazy_decoding_do_not_change_the_result(trained):
    da = make_grid(70, 45, seed=3, nan=True)
    ref = codec.decode(codec.encode(da, trained, stride=12, band_rows=100), trained).values
    for band_rows in (1, 3):
        ds = codec.encode(da, trained, stride=12, band_rows=band_rows)
        eager = codec.decode(ds, trained).values
        lazy = codec.decode(ds, trained, lazy=True)
        assert lazy.chunks is not None
        np.testing.assert_array_equal(lazy.values, eager)
        np.testing.assert_allclose(eager, ref, rtol=0, atol=1e-2)


# --- the grid comes back as it was ---------------------------------------------------------------


@pytest.mark.parametrize("dims", [("lat", "lon"), ("y", "x")])
def test_coordinates_name_attrs_and_crs_are_preserved(dims):
    import rioxarray  # noqa: F401

    da = make_grid(30, 20, dims=dims)
    da = da.rio.set_spatial_dims(x_dim=dims[1], y_dim=dims[0]).rio.write_crs("EPSG:4326")
    m = Identity()
    out = codec.decode(codec.encode(da, m, stride=12), m)
    assert out.dims == dims and out.shape == da.shape and out.name == "elevation"
    for d in dims:
        np.testing.assert_array_equal(out[d].values, da[d].values)  # bit-exact coordinates
        assert out[d].attrs == da[d].attrs
    assert {k: out.attrs[k] for k in da.attrs} == da.attrs
    prov = json.loads(out.attrs["topoae_provenance"])
    assert prov["codec"]["stride"] == 12 and prov["model_id"].startswith("state-sha256:")
    assert out.rio.crs.to_epsg() == 4326


def test_irregular_coordinates_survive_exactly():
    da = make_grid(25, 300)
    lat = np.sort(np.random.default_rng(0).uniform(-80, 80, 25))
    lon = np.linspace(-20.0, 30.0, 300)
    lon[::3] = np.nextafter(lon[::3], np.inf)  # one-ulp noise, as in coordinates read from files
    da = da.assign_coords(lat=lat, lon=lon)
    m = Identity()
    ds = codec.encode(da, m, stride=12)
    out = codec.decode(ds, m)
    np.testing.assert_array_equal(out.lat.values, lat)
    np.testing.assert_array_equal(out.lon.values, lon)
    assert ds["grid_lon"].size < 300  # near-regular axis: under 1 byte a value instead of 8


@pytest.mark.parametrize("kind", ["linspace", "ulp-noise", "float32", "random", "one"])
def test_coordinate_packing_is_bit_exact(kind):
    rng = np.random.default_rng(1)
    v = {
        "linspace": np.linspace(-179.5, 179.5, 720),
        "ulp-noise": np.nextafter(np.linspace(-1.0, 1.0, 501), rng.choice([-np.inf, np.inf], 501)),
        "float32": np.arange(0, 30, 1 / 120, dtype=np.float32).astype(np.float64),
        "random": np.sort(rng.uniform(-1e3, 1e3, 77)),
        "one": np.array([42.125]),
    }[kind]
    for regular in (False, True):
        entry, stream = codec_io.pack_coord(v, regular=regular)
        back = codec_io.unpack_coord(entry, stream)
        np.testing.assert_array_equal(back.view(np.int64), v.view(np.int64))
        assert (stream is not None) == codec_io.coord_has_stream(entry)
        if kind != "random":
            assert stream is None or stream.size < v.size


@pytest.mark.parametrize("descending", [False, True])
def test_regular_axes_written_by_common_formulas_need_no_stream(descending):
    """Cell centres of a 15″ grid computed the ways writers compute them (from the global
    origin, from the first centre, from the edge): the line is found, no ulps stored."""
    i = np.arange(512, dtype=np.float64)
    s = -1.0 if descending else 1.0
    axes = [-180.0 + (np.rint((131.0 + 180.0) * 240) + 0.5 + s * i) * (1 / 240),
            (33.0 * 240 + 0.5 + s * i) / 240,
            (131.0 - s / 480) + (i + 0.5) * (s / 240),
            # a north-up raster's rows (top − (row + ½)·res) read bottom first: counted from the end
            (34.75 + s / 480) - ((511 - i) + 0.5) * (s / 240)]
    for v in axes:
        linspace_entry, linspace_stream = codec_io.pack_coord(v)
        entry, stream = codec_io.pack_coord(v, regular=True)
        np.testing.assert_array_equal(codec_io.unpack_coord(entry, stream).view(np.int64), v.view(np.int64))
        assert stream is None and entry["kind"] in codec_io.LINE_FORMS + ("linspace",)
        assert linspace_stream is not None or entry["kind"] == "linspace"


@pytest.mark.parametrize("descending", [False, True])
def test_windows_of_axes_computed_from_their_own_edge_need_no_stream(descending):
    """A window cut from an axis a raster writer computed from its first or last cell carries
    that axis' rounding: format 8 finds the longer axis' edge and the cells it skips."""
    s = -1.0 if descending else 1.0
    i = np.arange(2000, dtype=np.float64)
    parents = [(40.2104166666667 - s / 480) + (i + 0.5) * (s / 240),  # from the first centre
               (-1.0104166666667 + s / 480) - ((1999 - i) + 0.5) * (s / 240)]  # from the last
    rng = np.random.default_rng(5)
    for parent in parents:
        for _ in range(6):
            a = int(rng.integers(0, 1900))
            v = parent[a:a + int(rng.integers(3, 2000 - a))]
            entry, stream = codec_io.pack_coord(v, regular=True)
            np.testing.assert_array_equal(codec_io.unpack_coord(entry, stream).view(np.int64), v.view(np.int64))
            assert stream is None, entry
    with pytest.raises(StoreError, match="skip"):
        codec_io.unpack_coord({"kind": "step", "start": 0.0, "n": 4, "per": 240, "sign": 1, "skip": 3}, None)
    with pytest.raises(StoreError, match="skip"):
        codec_io.unpack_coord({"kind": "edge", "start": 0.0, "n": 4, "per": 240, "sign": 1,
                               "skip": codec_io.SKIP_MAX + 1}, None)


# --- quality of a trained model ------------------------------------------------------------------


def test_round_trip_of_a_trained_model_within_stated_rmse(trained):
    """RMSE below a quarter of the grid's standard deviation on an unseen synthetic grid."""
    from topoae.io.synthetic import synthetic_grid

    test = synthetic_grid(90, 75, seed=2)
    std = float(test.values.std())
    ds = codec.encode(test, trained, stride=12)
    out = codec.decode(ds, trained)
    rmse = float(np.sqrt(np.mean((out.values - test.values) ** 2)))
    assert rmse < 0.25 * std
    # 8-bit latents cost little accuracy and store 4x fewer latent bytes
    ds8 = codec.encode(test, trained, stride=12, quantize="8bit")
    out8 = codec.decode(ds8, trained)
    rmse8 = float(np.sqrt(np.mean((out8.values - test.values) ** 2)))
    assert rmse8 < 1.1 * rmse
    assert ds8["mu"].dtype == np.uint8 and ds8["mu"].nbytes * 4 == ds["mu"].nbytes


@pytest.mark.parametrize("quantize", ["none", "8bit"])
@pytest.mark.parametrize("max_error", [0.05, 1.0, 25.0])
def test_max_error_bound_holds_on_every_cell(trained, tmp_path, quantize, max_error):
    da = make_grid(53, 47, seed=5, nan=True)
    ds = codec.encode(da, trained, stride=12, quantize=quantize, max_error=max_error, band_rows=2)
    path = codec_io.save_latents(ds, tmp_path / "lat.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # bit-exact reconstruction after reloading
        out = codec.decode(codec_io.open_latents(path), trained)
    err = np.abs(out.values.astype(np.float64) - da.values)
    assert np.nanmax(err) <= max_error
    assert np.array_equal(np.isnan(out.values), np.isnan(da.values))


def test_add_residual_tightens_existing_latents(trained):
    da = make_grid(41, 38, seed=6, nan=True)
    ds = codec.encode(da, trained, stride=12, quantize="8bit")
    loose = codec.add_residual(ds, da, trained, max_error=20.0)
    tight = codec.add_residual(loose, da, trained, max_error=0.5)  # replaces the residual
    for bounded, e in ((loose, 20.0), (tight, 0.5)):
        err = np.abs(codec.decode(bounded, trained).values.astype(np.float64) - da.values)
        assert np.nanmax(err) <= e
    assert tight["residual"].size > loose["residual"].size
    with pytest.raises(InputError, match="not the one"):
        codec.add_residual(ds, make_grid(41, 39), trained, max_error=1.0)


def test_error_bounded_latents_refuse_another_window(trained):
    ds = codec.encode(make_grid(30, 30), trained, stride=12, max_error=10.0)
    with pytest.raises(ConfigError, match="window"):
        codec.decode(ds, trained, window="uniform")


# --- files, sizes, bad input ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_latent_files_round_trip(trained, tmp_path, suffix):
    da = make_grid(40, 33, nan=True)
    ds = codec.encode(da, trained, stride=12, quantize="8bit", keep_logvar=False)
    path = codec_io.save_latents(ds, tmp_path / f"lat{suffix}")
    back = codec_io.open_latents(path)
    np.testing.assert_array_equal(
        codec.decode(back, trained).values, codec.decode(ds, trained).values
    )
    with pytest.raises(OutputExistsError, match="exists"):
        codec_io.save_latents(ds, path)
    s = codec_io.summary(back, path)
    assert s["file_bytes"] > 0 and s["cr_file_bytes"] == pytest.approx(
        4 * s["cells"] / s["file_bytes"]
    )


def test_summary_counts_latents_side_information_and_overlap(trained):
    da = make_grid(40, 33, nan=True)
    ds = codec.encode(da, trained, stride=12, normalise=Normalisation(mode="patch"))
    s = codec_io.summary(ds)
    meta = codec_io.read_meta(ds)
    nr, nc = meta["counts"]["patch_rows"], meta["counts"]["patch_cols"]
    assert s["patches"] == nr * nc == 4 * 3  # overlap: more patches than 40*33/16^2
    side = 2 * nr * nc  # per-patch offset and scale
    assert s["stored_values"] > nr * nc * 8 + side  # plus the NaN mask stream
    assert s["cells"] == 40 * 33 and s["valid_cells"] == 40 * 33 - int(np.isnan(da.values).sum())
    assert s["cr_values"] == pytest.approx(s["cells"] / s["stored_values"])
    assert "stored values" in codec_io.summary_line(s)


def test_model_mismatch_is_refused_unless_forced(trained):
    ds = codec.encode(make_grid(30, 30), trained, stride=12)
    other = TinyAE(16, 8)
    with pytest.raises(ModelMismatchError, match="--force"):
        codec.decode(ds, other)
    assert codec.decode(ds, other, force=True).shape == (30, 30)
    with pytest.raises(ModelMismatchError):  # another latent size cannot be forced
        codec.decode(ds, TinyAE(16, 4), force=True)


def test_forcing_another_model_on_error_bounded_latents_warns(trained):
    ds = codec.encode(make_grid(30, 30), trained, stride=12, max_error=5.0)
    with pytest.warns(RuntimeWarning, match="does not hold"):
        codec.decode(ds, TinyAE(16, 8), force=True)


def test_bad_inputs_raise_topoae_errors(tmp_path, trained):
    with pytest.raises(InputError):
        codec.encode(xr.DataArray(np.zeros((2, 3, 4), np.float32)), trained)
    with pytest.raises(RegionError, match="NaN"):
        codec.encode(make_grid(20, 20) * np.nan, trained)
    with pytest.raises(ConfigError):
        codec.encode(make_grid(20, 20), trained, stride=17)
    with pytest.raises(ConfigError):
        codec.encode(make_grid(20, 20), trained, quantize="4bit")
    with pytest.raises(StoreError, match="does not exist"):
        codec_io.open_latents(tmp_path / "missing.nc")
    (tmp_path / "junk.nc").write_bytes(b"not a netcdf file at all")
    with pytest.raises(StoreError):
        codec_io.open_latents(tmp_path / "junk.nc")
    xr.Dataset({"a": ("x", np.arange(3))}).to_netcdf(tmp_path / "other.nc")
    with pytest.raises(StoreError, match="not a topoae latent file"):
        codec_io.open_latents(tmp_path / "other.nc")
    with pytest.raises(ConfigError):
        codec_io.latent_format(tmp_path / "lat.h5")


def _whole(da: xr.DataArray) -> xr.DataArray:
    """``da`` rounded to whole metres (integer-valued, like GEBCO's int16)."""
    return da.copy(data=np.round(da.values))


@pytest.mark.parametrize("suffix", [".nc", ".tif"])
@pytest.mark.parametrize("dtype", ["int16", "float32"])
@pytest.mark.parametrize("integer,max_error", [(True, 0.4), (True, 3.5), (False, 0.4)])
def test_decoded_grid_files_keep_the_bound_in_every_dtype(
    trained, tmp_path, suffix, dtype, integer, max_error
):
    """The bound holds for the values written: integer input is coded on the integer grid, so
    int16 output keeps it; for other input int16 output is refused, never silently broken."""
    from topoae.io import open_grid

    da = make_grid(40, 30, nan=True)
    da = _whole(da) if integer else da
    ds = codec.encode(da, trained, stride=12, max_error=max_error)
    grid = codec.decode(ds, trained, lazy=True)
    target = tmp_path / f"r{suffix}"
    if dtype == "int16" and not integer:
        with pytest.raises(ConfigError, match="float32 only"):
            codec.decode(ds, trained, dtype="int16")
        with pytest.raises(ConfigError, match="float32 only"):
            codec_io.save_grid(grid, target, dtype="int16")
        assert not target.exists()
        return
    path = codec_io.save_grid(grid, target, dtype=dtype)
    back = open_grid(path)
    np.testing.assert_allclose(back.lat.values, da.lat.values, rtol=0, atol=1e-9)
    np.testing.assert_allclose(back.lon.values, da.lon.values, rtol=0, atol=1e-9)
    err = np.abs(back.values.astype(np.float64) - da.values)
    assert np.nanmax(err) <= (np.floor(max_error) if integer else max_error)
    assert np.array_equal(np.isnan(back.values), np.isnan(da.values))


def test_output_dtype_defaults_to_the_inputs(trained):
    """int16 for integer-valued input (GEBCO), float32 otherwise; both stored at encode."""
    da = make_grid(40, 30, seed=2, nan=True)
    for grid, integer, dtype in ((_whole(da), True, "int16"), (da, False, "float32")):
        ds = codec.encode(grid, trained, stride=12, max_error=2.0)
        meta = codec_io.read_meta(ds)
        assert meta["grid"]["integer"] is integer and meta["grid"]["dtype"] == dtype
        assert meta["residual"]["integer"] is integer
        out = codec.decode(ds, trained)
        assert out.encoding["dtype"] == dtype and out.dtype == np.float32
        assert codec.decode(ds, trained, dtype="float32").encoding["dtype"] == "float32"
        if integer:  # whole metres on every valid cell, |error| <= floor(E)
            v = out.values[np.isfinite(out.values)]
            np.testing.assert_array_equal(v, np.rint(v))
            assert np.nanmax(np.abs(out.values - grid.values)) <= 2.0
    big = da.copy(data=np.full(da.shape, 40000.0, np.float32))  # whole, but not int16
    assert codec_io.read_meta(codec.encode(big, trained, stride=12))["grid"]["dtype"] == "float32"


@pytest.mark.parametrize("h,w", [(10, 10), (15, 40), (40, 15)])
def test_regions_smaller_than_a_patch_are_refused(trained, h, w):
    with pytest.raises(RegionError, match="at least 16x16 cells"):
        codec.encode(make_grid(h, w), trained)


def _projected(da: xr.DataArray) -> xr.DataArray:
    """``da`` on a north-up UTM grid: y (metres) descending, x ascending."""
    h, w = da.shape
    y = 3.9e6 + 450.0 * np.arange(h)[::-1]
    return da.rename(lat="y", lon="x").assign_coords(y=y, x=5e5 + 450.0 * np.arange(w))


@pytest.mark.parametrize("projected", [False, True])
def test_decoded_files_are_georeferenced_in_the_inputs_order(trained, tmp_path, projected):
    """GDAL and rioxarray read the CRS back; the NetCDF keeps the input's coordinate order,
    the GeoTIFF is north up; the dataset attributes are kept, with a history line added."""
    import netCDF4
    import rasterio
    import rioxarray

    from topoae.io.synthetic import synthetic_grid

    da = synthetic_grid(40, 36, seed=2)
    da = _projected(da) if projected else da
    epsg = 32654 if projected else 4326
    da = da.rio.write_crs(f"EPSG:{epsg}")
    da.attrs.update(title="a test grid", Conventions="CF-1.8", history="made in a test", source="t")
    out = codec.decode(codec.encode(da, trained, stride=12), trained, lazy=True)
    ydim = da.dims[0]
    path = codec_io.save_grid(out, tmp_path / "r.nc")
    with netCDF4.Dataset(path) as nc:
        assert nc["elevation"].grid_mapping == "spatial_ref"
    with xr.open_dataset(path, decode_coords="all") as f:
        assert f["elevation"].rio.crs.to_epsg() == epsg
        assert f["elevation"].dims == da.dims
        np.testing.assert_array_equal(f[ydim].values, da[ydim].values)  # same order as the input
        for k in ("title", "Conventions", "source"):
            assert f.attrs[k] == da.attrs[k]
        first, line = f.attrs["history"].splitlines()
        assert first == "made in a test"
        assert "reconstructed by topoae" in line and "patch codec" in line
    with rasterio.open(path) as r:  # GDAL: CRS and a north-up geotransform
        assert r.crs.to_epsg() == epsg and r.transform.e < 0
    tif = codec_io.save_grid(out, tmp_path / "r.tif")
    t = rioxarray.open_rasterio(tif)
    assert t.rio.crs.to_epsg() == epsg
    np.testing.assert_allclose(t.y.values, np.sort(da[ydim].values)[::-1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(t.isel(band=0).values, out.sortby(ydim, ascending=False).values)


# --- command line --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny (untrained) VAE checkpoint written with the project's checkpoint format."""
    from topoae.checkpoint import save_checkpoint
    from topoae.models import ModelConfig, build_model
    from topoae.training.config import TrainConfig

    cfg = TrainConfig(
        model=ModelConfig(
            kind="vae",
            patch_size=16,
            latent_dim=8,
            enc_filters=(4, 4, 4, 4),
            dec_filters=(4, 4, 4),
            hidden_dim=8,
        )
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    norm = {"mode": "global", "zmin": -10880.587890625, "zrange": 19493.744140625}
    save_checkpoint(path, build_model(cfg.model), cfg, normalise=norm)
    torch.manual_seed(1)
    other = path.with_name("other.pt")
    save_checkpoint(other, build_model(cfg.model), cfg, normalise=norm)
    return path, other


def _run(args):
    from click.testing import CliRunner

    from topoae.cli.main import cli

    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_cli_encode_decode_sample(checkpoint, tmp_path):
    from topoae.io import open_grid
    from topoae.io.synthetic import write_synthetic_gebco

    ckpt, other = checkpoint
    grid = write_synthetic_gebco(tmp_path / "g.nc", 50, 60, seed=3)
    lat = tmp_path / "lat.zarr"
    r = _run(
        [
            "encode",
            grid,
            "--model",
            ckpt,
            "--out",
            lat,
            "--quantize",
            "8bit",
            "--max-error",
            "2",
            "--keep-logvar",
            "--stride",
            "12",
        ]
    )
    assert r.exit_code == 0, r.output
    assert "stored values" in r.output and "bytes on disk" in r.output
    src = open_grid(grid)
    # GEBCO int16 input: int16 by default, and the bound holds on every cell in either dtype
    for dtype in (None, "int16", "float32"):
        out = tmp_path / f"rec-{dtype}.nc"
        r = _run(["decode", lat, "--model", ckpt, "--out", out, *(["--dtype", dtype] if dtype else [])])
        assert r.exit_code == 0, r.output
        with xr.open_dataset(out) as f:
            assert f["elevation"].encoding["dtype"] == np.dtype(dtype or "int16")
        rec = open_grid(out)
        assert rec.shape == src.shape
        np.testing.assert_array_equal(rec.lat.values, src.lat.values)
        assert np.abs(rec.values - src.values).max() <= 2.0
    r = _run(["decode", lat, "--model", other, "--out", tmp_path / "x.nc"])
    assert r.exit_code == 1 and "Error:" in r.output and "--force" in r.output
    assert not (tmp_path / "x.nc").exists()
    with pytest.warns(RuntimeWarning, match="does not hold"):
        r = _run(
            [
                "decode",
                lat,
                "--model",
                other,
                "--out",
                tmp_path / "x.nc",
                "--force",
                "--dtype",
                "int16",
            ]
        )
    assert r.exit_code == 0, r.output
    ens = tmp_path / "ens.nc"
    r = _run(["sample", lat, "--model", ckpt, "--n", "3", "--out", ens, "--seed", "4"])
    assert r.exit_code == 0, r.output
    with xr.open_dataset(ens) as e:
        assert e["elevation"].shape == (3, 50, 60)
        assert {"elevation_mean", "elevation_std"} <= set(e.data_vars)


def _lines(r) -> list[str]:
    return [ln for ln in r.output.splitlines() if ln.startswith("Error:")]


def test_cli_int16_of_a_float_bounded_file_is_refused(checkpoint, tmp_path):
    """Non-integer input: float32 by default within the bound; int16 is an error, no file."""
    from topoae.io import open_grid

    ckpt, _ = checkpoint
    grid = tmp_path / "f.nc"
    make_grid(40, 36, seed=4).to_dataset().to_netcdf(grid)
    lat = tmp_path / "lat.zarr"
    assert _run(["encode", grid, "--model", ckpt, "--out", lat, "--max-error", "1.5"]).exit_code == 0
    out = tmp_path / "rec.nc"
    r = _run(["decode", lat, "--model", ckpt, "--out", out])
    assert r.exit_code == 0, r.output
    with xr.open_dataset(out) as f:
        assert f["elevation"].encoding["dtype"] == np.float32
    assert np.abs(open_grid(out).values - open_grid(grid).values).max() <= 1.5
    bad = tmp_path / "rec16.nc"
    r = _run(["decode", lat, "--model", ckpt, "--out", bad, "--dtype", "int16"])
    assert r.exit_code == 1 and len(_lines(r)) == 1 and "float32 only" in _lines(r)[0]
    assert not bad.exists()


def test_cli_refuses_a_region_smaller_than_a_patch(checkpoint, tmp_path):
    ckpt, _ = checkpoint
    grid = tmp_path / "small.nc"
    make_grid(10, 10).to_dataset().to_netcdf(grid)
    out = tmp_path / "lat.zarr"
    r = _run(["encode", grid, "--model", ckpt, "--out", out])
    assert r.exit_code == 1 and len(_lines(r)) == 1
    assert "10x10 cells is too small" in r.output and "at least 16x16" in r.output
    assert not out.exists() and not [p for p in tmp_path.iterdir() if "lat" in p.name]


def test_cli_projected_grid_keeps_its_crs_and_orientation(checkpoint, tmp_path):
    """A north-up UTM NetCDF comes back north up, with its CRS (read by GDAL)."""
    import rasterio
    import rioxarray  # noqa: F401

    from topoae.io.synthetic import synthetic_grid

    ckpt, _ = checkpoint
    da = _projected(synthetic_grid(40, 36, seed=5)).rio.write_crs("EPSG:32654")
    da.attrs["units"] = "m"
    grid = tmp_path / "utm.nc"
    da.to_dataset(name="elevation").to_netcdf(grid)
    lat, out = tmp_path / "lat.zarr", tmp_path / "rec.nc"
    assert _run(["encode", grid, "--model", ckpt, "--out", lat, "--stride", "12"]).exit_code == 0
    r = _run(["decode", lat, "--model", ckpt, "--out", out])
    assert r.exit_code == 0, r.output
    with xr.open_dataset(out, decode_coords="all") as f:
        np.testing.assert_array_equal(f["y"].values, da["y"].values)
        np.testing.assert_array_equal(f["x"].values, da["x"].values)
        assert f["elevation"].rio.crs.to_epsg() == 32654
    with rasterio.open(out) as src:
        assert src.crs.to_epsg() == 32654


def test_cli_encode_reads_feet_with_units_ft(checkpoint, tmp_path, feet_nc):
    from topoae.io import open_grid

    ckpt, _ = checkpoint
    lat, out = tmp_path / "lat.zarr", tmp_path / "rec.nc"
    r = _run(["encode", feet_nc, "--model", ckpt, "--out", lat, "--units", "ft", "--max-error", "1"])
    assert r.exit_code == 0, r.output
    assert _run(["decode", lat, "--model", ckpt, "--out", out, "--dtype", "float32"]).exit_code == 0
    metres = open_grid(feet_nc, units="ft").values
    assert np.abs(open_grid(out).values - metres).max() <= 1.0


def _chunk_files(store, array):
    return sorted(f for f in (store / array / "c").rglob("*") if f.is_file())


def test_lost_latent_chunk_is_refused_naming_the_array(checkpoint, tmp_path):
    """Zarr reads a deleted chunk back as the fill value: the digests must catch it."""
    from topoae.io.synthetic import write_synthetic_gebco

    ckpt, _ = checkpoint
    grid = write_synthetic_gebco(tmp_path / "g.nc", 40, 50, seed=2)
    lat = tmp_path / "region.zarr"
    r = _run(["encode", grid, "--model", ckpt, "--out", lat, "--stride", "12"])
    assert r.exit_code == 0, r.output
    codec_io.open_latents(lat)  # intact: accepted
    chunks = _chunk_files(lat, "mu")
    assert chunks, "mu has no chunk files"
    chunks[0].unlink()
    with pytest.raises(StoreError, match="'mu'.*damaged"):
        codec_io.open_latents(lat)
    out = tmp_path / "rec.nc"
    r = _run(["decode", lat, "--model", ckpt, "--out", out])
    assert r.exit_code == 1
    assert r.output.startswith("Error:") and len(r.output.strip().splitlines()) == 1
    assert "'mu'" in r.output
    assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".rec.nc")]


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_latent_digests_cover_every_array(trained, tmp_path, suffix):
    ds = codec.encode(make_grid(30, 30, nan=True), trained, stride=12, max_error=5.0)
    path = codec_io.save_latents(ds, tmp_path / f"lat{suffix}")
    back = codec_io.open_latents(path)
    assert set(codec_io.read_meta(back)["digests"]) == {str(n) for n in ds.variables}
    damaged = back.copy(deep=True)
    damaged["residual"].values[0] ^= 1
    with pytest.raises(StoreError, match="'residual'"):
        codec_io.verify_digests(damaged)
    with pytest.raises(StoreError, match="'recon_hash' is missing"):
        codec_io.verify_digests(back.drop_vars("recon_hash"))


def test_cli_bad_input_is_one_line_error(checkpoint, tmp_path):
    ckpt, _ = checkpoint
    r = _run(["decode", tmp_path / "missing.zarr", "--model", ckpt, "--out", tmp_path / "o.nc"])
    assert (
        r.exit_code == 1
        and r.output.startswith("Error:")
        and len(r.output.strip().splitlines()) == 1
    )
    r = _run(["encode", tmp_path / "nothing.nc", "--model", ckpt, "--out", tmp_path / "l.zarr"])
    assert r.exit_code == 1 and "Error:" in r.output
