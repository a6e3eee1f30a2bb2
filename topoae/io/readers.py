"""Open the grid formats real users have, lazily, as raw ``xr.Dataset`` objects.

Each reader returns what is in the file, lazily but without dask chunks (the
caller chunks by dimension name once it knows which dims are which: a
contiguous NetCDF variable opened with ``chunks={}`` would be a single chunk
and be read whole). Choosing the
elevation variable and normalising dims/orientation is done in
:mod:`topoae.io.grid`.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from topoae.errors import InputError


def _reason(exc: Exception) -> str:
    """First line of a library's error message (some span many lines), without a trailing
    pointer to what followed ("..., see:")."""
    text = str(exc).strip()
    if "did not find a match in any of xarray's currently installed IO backends" in text:
        return "not a NetCDF or HDF5 file (no installed reader recognises it)"
    first = text.splitlines()[0] if text else type(exc).__name__
    return re.sub(r"[,;]?\s*(see|See)\s*:?\s*$", "", first).rstrip(" :,;") or type(exc).__name__


NETCDF_SUFFIXES = {".nc", ".nc4", ".cdf", ".grd", ".netcdf", ".h5", ".hdf5"}
RASTER_SUFFIXES = {".tif", ".tiff", ".asc", ".vrt", ".img"}
GEOCLAW_SUFFIXES = {".tt3", ".topo3"}


def open_netcdf(path: Path) -> xr.Dataset:
    """Open a NetCDF-3/4 (or GMT ``.grd``) file lazily."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # odd CF attributes in real files
        try:
            return xr.open_dataset(path, decode_times=False, mask_and_scale=True)
        except Exception as exc:  # netCDF4, h5netcdf and scipy raise many types
            raise InputError(f"cannot read {path} as NetCDF: {_reason(exc)}") from None


def open_raster(path: Path) -> xr.Dataset:
    """Open a GeoTIFF / ESRI ASCII / any GDAL raster through rioxarray."""
    import rioxarray  # noqa: F401  (registers the .rio accessor)

    try:
        da = rioxarray.open_rasterio(path, masked=True, cache=False)
    except Exception as exc:
        raise InputError(f"cannot read {path} as a raster: {_reason(exc)}") from None
    if not isinstance(da, xr.DataArray):
        raise InputError(f"{path} holds several rasters; expected one elevation grid")
    if "band" in da.dims:
        if da.sizes["band"] != 1:
            raise InputError(f"{path} has {da.sizes['band']} bands; expected one elevation band")
        da = da.isel(band=0, drop=True)
    da.name = "elevation" if da.name is None else da.name
    return da.to_dataset()


def open_zarr(path: Path) -> xr.Dataset:
    """Open an xarray-written Zarr store."""
    try:
        return xr.open_zarr(path, chunks=None, decode_times=False)
    except Exception as exc:
        raise InputError(f"cannot read {path} as a Zarr grid: {_reason(exc)}") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def open_geoclaw_tt3(path: Path) -> xr.Dataset:
    """Read a GeoClaw topotype-3 file (ESRI-like header, rows from north to south)."""
    header: dict[str, float] = {}
    try:
        with open(path, encoding="ascii", errors="strict") as fh:
            for _ in range(6):
                a, b = fh.readline().split()[:2]
                # "ncols 451" (ESRI order) or "451 ncols" (GeoClaw order)
                key, value = (b, a) if _is_number(a) else (a, b)
                header[key.lower()] = float(value)
            values = np.loadtxt(fh, dtype=np.float64, ndmin=2)
    except (OSError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read {path} as a GeoClaw topotype-3 file: {_reason(exc)}"
        ) from None
    ncols, nrows = int(header["ncols"]), int(header["nrows"])
    values = values.reshape(-1)
    if values.size != ncols * nrows:
        raise InputError(f"{path}: header says {nrows}x{ncols} cells, file has {values.size}")
    z = values.reshape(nrows, ncols).astype(np.float32)
    nodata = header.get("nodata_value", header.get("nodatavalue"))
    if nodata is not None:
        z[z == np.float32(nodata)] = np.nan
    x0 = header.get("xllcorner", header.get("xll", header.get("xllcenter")))
    y0 = header.get("yllcorner", header.get("yll", header.get("yllcenter")))
    if x0 is None or y0 is None:
        raise InputError(f"{path}: the header gives no lower-left corner (xllcorner, yllcorner)")
    d = header["cellsize"]
    # GeoClaw treats xll/yll of topotype files as the lower-left *cell centre*.
    lon = x0 + d * np.arange(ncols)
    lat = y0 + d * np.arange(nrows)
    da = xr.DataArray(
        z[::-1],
        dims=("lat", "lon"),
        coords={"lat": lat, "lon": lon},
        name="elevation",
        attrs={"units": "m"},
    )
    return da.to_dataset()


def open_any(path: Path) -> xr.Dataset:
    """Dispatch on the file suffix (or directory for Zarr)."""
    if not path.exists():
        raise InputError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if path.is_dir() or suffix == ".zarr":
        return open_zarr(path)
    if suffix == ".asc":
        # ESRI ASCII through GDAL; GeoClaw writes the same grid with "value key" headers.
        try:
            return open_raster(path)
        except InputError:
            return open_geoclaw_tt3(path)
    if suffix in RASTER_SUFFIXES:
        return open_raster(path)
    if suffix in GEOCLAW_SUFFIXES:
        return open_geoclaw_tt3(path)
    if suffix in NETCDF_SUFFIXES:
        return open_netcdf(path)
    # Unknown suffix: try NetCDF first, then GDAL.
    try:
        return open_netcdf(path)
    except InputError:
        return open_raster(path)
