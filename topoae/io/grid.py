"""Turn whatever a file holds into topoae's canonical elevation DataArray.

Canonical form: 2-D, dims ``("lat", "lon")`` (geographic, ascending latitude
and longitude) or ``("y", "x")`` (projected), float32 metres positive up with
NaN for nodata, lazy (dask), attributes kept, CRS attached.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from topoae.errors import ConfigError, InputError, VariableError
from topoae.io.readers import open_any

#: Chunk edge (cells) of the dask arrays open_grid returns: 2048² float32 = 16 MiB.
DEFAULT_CHUNK = 2048

#: ``encoding`` key of open_grid's DataArray: the dims that run descending in the file
#: (made ascending here), so that a decoded grid is written back in the file's order.
DESCENDING = "topoae_descending"

#: ``encoding`` key of open_grid's DataArray: the attributes it added for its own bookkeeping
#: (``source``: the path read, ``variable``): not the data's, so the codecs do not store them.
READER_ATTRS = "topoae_reader_attrs"

#: ``encoding`` key of open_grid's DataArray: the file's global attributes (title,
#: Conventions, source, history, ...), kept apart from the variable's own attributes
#: (whose ``source`` is the path read) so that the codecs store them and a decoded
#: NetCDF writes them back as global attributes.
FILE_ATTRS = "topoae_global_attrs"

#: Names tried in order when no variable is given.
PREFERRED_NAMES = (
    "elevation",
    "z",
    "Band1",
    "band1",
    "ROSE",
    "DEPTH",
    "depth",
    "topo",
    "topography",
    "bathymetry",
    "bathy",
    "height",
    "altitude",
    "elev",
    "data",
)

#: Words in a lone variable's name, ``standard_name``, ``long_name`` or ``units`` that say
#: it holds elevation; a lone variable saying none of them is not taken without ``var``.
ELEVATION_WORDS = ("elev", "height", "depth", "bathy", "topo", "altitude", "relief", "orography")
#: The same for a sea-floor displacement grid (``kind="displacement"``).
DISPLACEMENT_WORDS = ("displacement", "uplift", "deformation", "subsidence", "dtopo")
_KIND_WORDS = {"elevation": ELEVATION_WORDS, "displacement": DISPLACEMENT_WORDS}
#: Exact names (lower case) that need no further evidence.
_KIND_NAMES = {
    "elevation": {"z", "band1", "dem", "hgt"},
    "displacement": {"z", "dz", "uz", "band1"},
}
_LENGTH_UNITS = {"m", "meter", "meters", "metre", "metres", "ft", "feet", "foot", "us_survey_foot"}

_LAT_NAMES = {"lat", "latitude", "y_lat", "nav_lat"}
_LON_NAMES = {"lon", "long", "longitude", "x_lon", "nav_lon"}
_FEET_UNITS = {"ft", "feet", "foot", "us_survey_foot"}
FOOT = 0.3048


def _candidates(ds: xr.Dataset) -> list[str]:
    return [
        str(n) for n, v in ds.data_vars.items() if v.ndim == 2 and np.issubdtype(v.dtype, np.number)
    ]


def _says(v: xr.DataArray, kind: str) -> bool:
    """Whether a variable's name or attributes say it holds ``kind`` (elevation or displacement)."""
    name = str(v.name).lower()
    if name in _KIND_NAMES[kind]:
        return True
    units = str(v.attrs.get("units", "")).strip().lower()
    if kind == "elevation" and units in _LENGTH_UNITS:
        return True
    texts = [name, units] + [
        str(v.attrs.get(k, "")).lower() for k in ("standard_name", "long_name")
    ]
    return any(w in t for w in _KIND_WORDS[kind] for t in texts)


def pick_variable(
    ds: xr.Dataset, var: str | None, source: str = "", *, kind: str = "elevation"
) -> str:
    """Return the elevation variable's name: ``var`` if given, else a detected one.

    Without ``var``, a known name (:data:`PREFERRED_NAMES`) is taken, else the only
    2-D numeric variable, but only when its name, ``standard_name``, ``long_name`` or
    ``units`` says it holds elevation (``kind="displacement"``: a displacement);
    anything else raises :class:`VariableError` listing the candidates.
    """
    if kind not in _KIND_WORDS:
        raise ConfigError(f"kind must be one of {', '.join(_KIND_WORDS)}, not {kind!r}")
    flag = "--var" if kind == "elevation" else f"--{kind}-var"
    cands = _candidates(ds)
    if var is not None:
        if var not in ds.data_vars:
            raise VariableError(
                f"variable {var!r} not in {source or 'the file'}; "
                f"candidates: {', '.join(cands) or 'none'}"
            )
        if ds[var].ndim != 2:
            raise VariableError(f"variable {var!r} has {ds[var].ndim} dims; expected 2")
        return var
    if not cands:
        raise VariableError(f"no 2-D numeric variable in {source or 'the file'}")
    for name in PREFERRED_NAMES:
        if name in cands:
            return name
    if len(cands) == 1:
        if _says(ds[cands[0]], kind):
            return cands[0]
        raise VariableError(
            f"the only 2-D variable in {source or 'the file'}, {cands[0]!r}, does not say it is "
            f"{kind} (name, standard_name, long_name, units); pass {flag} {cands[0]} if it is "
            f"(candidates: {', '.join(cands)})"
        )
    raise VariableError(
        f"cannot tell which variable is {kind} in {source or 'the file'}; "
        f"pass {flag}, one of: {', '.join(cands)}"
    )


def _axis_kind(name: str, coord: xr.DataArray | None) -> str | None:
    """Classify a dimension as 'lat', 'lon', 'y', 'x' or None."""
    attrs = coord.attrs if coord is not None else {}
    units = str(attrs.get("units", "")).lower()
    std = str(attrs.get("standard_name", "")).lower()
    long = str(attrs.get("long_name", "")).lower()
    axis = str(attrs.get("axis", "")).upper()
    low = name.lower()
    if (
        std == "latitude"
        or units.startswith("degrees_n")
        or low in _LAT_NAMES
        or low.endswith("_y")
        and "degree" in units
    ):
        return "lat"
    if (
        std == "longitude"
        or units.startswith("degrees_e")
        or low in _LON_NAMES
        or low.endswith("_x")
        and "degree" in units
    ):
        return "lon"
    if "latitude" in long:
        return "lat"
    if "longitude" in long:
        return "lon"
    if axis == "Y" or low in {"y", "row", "rows"}:
        return "y"
    if axis == "X" or low in {"x", "col", "cols", "column"}:
        return "x"
    return None


def _looks_geographic(da: xr.DataArray) -> bool:
    y, x = da[da.dims[0]].values, da[da.dims[1]].values
    return bool(np.all(np.abs(y) <= 90.0001) and np.all(np.abs(x) <= 360.0001))


def canonical_dims(da: xr.DataArray) -> xr.DataArray:
    """Rename the two dims to ('lat','lon') or ('y','x'), in that order."""
    kinds = {}
    for dim in da.dims:
        coord = da.coords.get(dim, None)
        kinds[dim] = _axis_kind(str(dim), coord)
    ydim = next((d for d, k in kinds.items() if k in ("lat", "y")), None)
    xdim = next((d for d, k in kinds.items() if k in ("lon", "x")), None)
    if ydim is None or xdim is None or ydim == xdim:
        ydim, xdim = da.dims  # fall back to storage order (row, column)
    for d in (ydim, xdim):
        if d not in da.coords:
            raise InputError(f"dimension {d!r} has no coordinate values; cannot place the grid")
    da = da.transpose(ydim, xdim)
    geographic = kinds.get(ydim) == "lat" or kinds.get(xdim) == "lon"
    if not geographic and kinds.get(ydim) == "y" and _looks_geographic(da):
        # GMT writes x/y for some lon/lat grids (e.g. bathy_1m.nc); units decide.
        yunits = str(da[ydim].attrs.get("units", "")).lower()
        geographic = "degree" in yunits or (
            not yunits and _looks_geographic(da) and float(np.ptp(da[xdim].values)) <= 360
        )
    names = ("lat", "lon") if geographic else ("y", "x")
    da = da.rename({ydim: "_y", xdim: "_x"}).rename({"_y": names[0], "_x": names[1]})
    return da


def _drop_seam(da: xr.DataArray) -> xr.DataArray:
    """Drop a repeated last longitude column (0/360 or -180/180 grids)."""
    if da.dims[1] != "lon" or da.sizes["lon"] < 3:
        return da
    lon = da["lon"].values
    step = float(np.median(np.diff(lon)))
    span = float(lon[-1] - lon[0])
    if abs(span - 360.0) < 0.5 * abs(step):
        return da.isel(lon=slice(0, -1))
    return da


def _descending_dims(da: xr.DataArray) -> list[str]:
    """The dims whose coordinate runs from high to low."""
    out = []
    for dim in da.dims:
        values = da[dim].values
        if values.size > 1 and values[0] > values[-1]:
            out.append(str(dim))
    return out


def _ascending(da: xr.DataArray) -> xr.DataArray:
    return da.isel({d: slice(None, None, -1) for d in _descending_dims(da)})


def _to_metres(da: xr.DataArray, units: str | None) -> xr.DataArray:
    declared = str(units or da.attrs.get("units", "")).strip().lower()
    if declared in _FEET_UNITS:
        da = da * np.float32(FOOT)
        da.attrs["converted_from"] = "feet"
    return da


def open_grid(
    path: str | os.PathLike,
    *,
    var: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    units: str | None = None,
    chunk: int = DEFAULT_CHUNK,
    kind: str = "elevation",
) -> xr.DataArray:
    """Open an elevation grid lazily in topoae's canonical form.

    Parameters
    ----------
    path
        NetCDF (GEBCO, GMT, CF), GeoTIFF, ESRI ASCII, GeoClaw ``.tt3`` or Zarr.
    var
        Elevation variable; detected when ``None`` (see :func:`pick_variable`: a known
        name, or the only 2-D variable when its name or attributes say elevation).
    bbox
        ``(west, south, east, north)`` in degrees (or in the grid's x/y units for a
        projected grid); may cross the antimeridian (``west > east``) on a grid that
        spans it (see :func:`topoae.io.bbox.subset_bbox`).
    units
        Override the file's units (``"m"`` or ``"ft"``); feet are converted to metres.
    chunk
        Edge of the dask chunks, in cells.
    kind
        What the grid holds, for detecting a lone variable: ``"elevation"`` or
        ``"displacement"`` (a sea-floor displacement grid).

    Returns
    -------
    xr.DataArray
        2-D float32 metres, positive up, NaN for nodata, dims ``(lat, lon)`` or ``(y, x)``
        ascending, lazy, with ``attrs`` from the file plus ``source``, ``variable``, ``units``;
        ``encoding[DESCENDING]`` lists the dims that run descending in the file,
        ``encoding[FILE_ATTRS]`` holds the file's global attributes.
    """
    p = Path(path)
    ds = open_any(p)
    name = pick_variable(ds, var, str(p), kind=kind)
    da = ds[name]
    da = canonical_dims(da)
    da = da.chunk({d: min(chunk, n) for d, n in da.sizes.items()})
    descending = _descending_dims(da)
    da = _ascending(da)
    da = _drop_seam(da)
    keep_attrs = dict(da.attrs)
    if not np.issubdtype(da.dtype, np.floating) or da.dtype != np.float32:
        da = da.astype(np.float32)
    da = _to_metres(da, units)
    da.attrs = {**keep_attrs, **{k: v for k, v in da.attrs.items() if k == "converted_from"}}
    for k in (
        "_FillValue",
        "missing_value",
        "scale_factor",
        "add_offset",
        "actual_range",
        "valid_range",
        "valid_min",
        "valid_max",
    ):
        da.attrs.pop(k, None)
    da.attrs.update(source=str(p), variable=name, units="m")
    da.name = name
    da = _attach_crs(da, ds)
    if bbox is not None:
        from topoae.io.bbox import subset_bbox

        da = subset_bbox(da, bbox)
    da.encoding = {**da.encoding, DESCENDING: descending, FILE_ATTRS: dict(ds.attrs),
                   READER_ATTRS: ("source", "variable")}
    return da


def data_attrs(da: xr.DataArray) -> dict:
    """``da.attrs`` without what :func:`open_grid` added for its own bookkeeping."""
    skip = set(da.encoding.get(READER_ATTRS, ()))
    return {k: v for k, v in da.attrs.items() if k not in skip}


def file_attrs(da: xr.DataArray) -> dict:
    """The global attributes of the file ``da`` was read from (empty if none)."""
    return dict(da.encoding.get(FILE_ATTRS) or {})


def descending_dims(da: xr.DataArray) -> list[str]:
    """The dims of ``da`` that ran descending in the file it was read from."""
    return [str(d) for d in da.encoding.get(DESCENDING, ()) if d in da.dims]


def _append_history(attrs: dict, line: str) -> dict:
    old = attrs.get("history")
    return {**attrs, "history": f"{old}\n{line}" if old else line}


def add_history(da: xr.DataArray, line: str, stored_file_attrs: dict | None = None) -> None:
    """Append ``line`` to the CF ``history`` of a reconstructed grid: of its attributes, and of
    the source file's global attributes when a codec stored them (kept, with the line, in
    ``encoding[FILE_ATTRS]`` for :func:`topoae.codec.files.save_grid`)."""
    da.attrs = _append_history(da.attrs, line)
    if stored_file_attrs:
        da.encoding[FILE_ATTRS] = _append_history(dict(stored_file_attrs), line)


def _attach_crs(da: xr.DataArray, ds: xr.Dataset) -> xr.DataArray:
    import rioxarray  # noqa: F401

    da = da.drop_vars([c for c in da.coords if c not in da.dims], errors="ignore")
    if da.dims == ("lat", "lon"):
        da = da.rio.set_spatial_dims(x_dim="lon", y_dim="lat").rio.write_crs("EPSG:4326")
    else:
        crs = None
        try:
            crs = ds.rio.crs
            gm = ds[da.name].attrs.get("grid_mapping", ds[da.name].encoding.get("grid_mapping"))
            if crs is None and gm in ds.variables:  # CF: the grid_mapping variable holds the CRS
                crs = ds.set_coords(gm)[da.name].rio.crs
        except Exception:  # no CRS information in the file
            crs = None
        da = da.rio.set_spatial_dims(x_dim="x", y_dim="y")
        if crs is not None:
            da = da.rio.write_crs(crs)
    return da
