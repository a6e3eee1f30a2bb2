"""ASAGI-readable NetCDF grids, the layout ExaHyPE (1 and 2) and sam(oa)² read.

The layout follows the GMT-written file ExaHyPE's Tohoku scenario ships
(``tohoku_gebco_ucsb3_2000m_hawaii_displ.nc``): ``NETCDF3_CLASSIC``, global
``Conventions = "COARDS/CF-1.0"``, ``title`` and ``node_offset = 1`` (cell-centred
samples), dimensions ``x`` then ``y``, 1-D ``double x(x)`` and ``double y(y)`` in
metres with ``actual_range`` spanning the cell edges, and ``float z(y, x)`` in
metres with its ``actual_range``. ASAGI supports neither ``_FillValue`` nor
scale/offset packing, so ``z`` is written unpacked, with no fill value and no NaN.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from topoae._atomic import atomic_path
from topoae.errors import InputError, RegionError

CONVENTIONS = "COARDS/CF-1.0"


def write_asagi(
    path: str | os.PathLike,
    grid: xr.DataArray,
    *,
    title: str | None = None,
    attrs: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``grid`` (dims ``(y, x)``, metres) as an ASAGI NetCDF; return the path.

    Raises :class:`RegionError` if ``grid`` holds NaN/inf or its coordinates are not
    strictly increasing and evenly spaced (ASAGI assumes a regular grid).
    """
    import netCDF4

    if tuple(grid.dims) != ("y", "x"):
        raise RegionError(f"ASAGI grids need dims (y, x), got {grid.dims}")
    z = np.asarray(grid.values, dtype=np.float32)
    if not np.all(np.isfinite(z)):
        raise RegionError("ASAGI grids cannot hold NaN (fill nodata first)")
    x = np.asarray(grid["x"].values, np.float64)
    y = np.asarray(grid["y"].values, np.float64)
    for name, c in (("x", x), ("y", y)):
        d = np.diff(c)
        if c.size < 2 or np.any(d <= 0):
            raise RegionError(f"coordinate {name} must be strictly increasing with ≥ 2 values")
        if np.ptp(d) > 1e-6 * abs(d.mean()):
            raise RegionError(f"coordinate {name} must be evenly spaced for ASAGI")
    dx, dy = float(np.diff(x).mean()), float(np.diff(y).mean())
    p = Path(path)
    with atomic_path(p, overwrite=overwrite) as tmp:
        ds = netCDF4.Dataset(tmp, "w", format="NETCDF3_CLASSIC")
        try:
            ds.Conventions = CONVENTIONS
            ds.title = title or p.name
            ds.node_offset = np.int32(1)
            for k, v in (attrs or {}).items():
                ds.setncattr(k, v)
            ds.createDimension("x", x.size)
            ds.createDimension("y", y.size)
            vx = ds.createVariable("x", "f8", ("x",), fill_value=False)
            vy = ds.createVariable("y", "f8", ("y",), fill_value=False)
            vz = ds.createVariable("z", "f4", ("y", "x"), fill_value=False)
            vx.long_name, vx.units = "x", "m"
            vy.long_name, vy.units = "y", "m"
            vz.long_name, vz.units = "z", "m"
            vx.actual_range = np.array([x[0] - dx / 2, x[-1] + dx / 2])
            vy.actual_range = np.array([y[0] - dy / 2, y[-1] + dy / 2])
            vz.actual_range = np.array([float(z.min()), float(z.max())])
            vx[:] = x
            vy[:] = y
            vz[:] = z
        finally:
            ds.close()
    return p


def check_asagi(path: str | os.PathLike) -> dict:
    """Read an ASAGI NetCDF back with netCDF4 and check the layout; return a summary.

    Raises :class:`InputError` on any departure from the layout in this module's doc.
    """
    import netCDF4

    p = Path(path)
    try:
        ds = netCDF4.Dataset(p, "r")
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc}") from None
    try:
        problems = []
        if ds.file_format != "NETCDF3_CLASSIC":
            problems.append(f"format {ds.file_format}")
        if getattr(ds, "Conventions", None) != CONVENTIONS:
            problems.append("Conventions")
        if list(ds.dimensions) != ["x", "y"]:
            problems.append(f"dims {list(ds.dimensions)}")
        v = ds.variables
        if set(v) != {"x", "y", "z"}:
            problems.append(f"variables {sorted(v)}")
            raise InputError(f"{p} is not an ASAGI grid: " + ", ".join(problems))
        if v["x"].dtype != np.float64 or v["y"].dtype != np.float64:
            problems.append("x/y not double")
        if v["z"].dtype != np.float32 or v["z"].dimensions != ("y", "x"):
            problems.append("z not float(y, x)")
        for bad in ("_FillValue", "scale_factor", "add_offset", "missing_value"):
            if bad in v["z"].ncattrs():
                problems.append(f"z has {bad}")
        v["z"].set_auto_maskandscale(False)
        x, y, z = v["x"][:].data, v["y"][:].data, v["z"][:]
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) <= 0):
            problems.append("coordinates not increasing")
        if not np.all(np.isfinite(z)):
            problems.append("z holds NaN/inf")
        if problems:
            raise InputError(f"{p} breaks the ASAGI layout: " + ", ".join(problems))
        return {
            "path": str(p),
            "nx": int(x.size),
            "ny": int(y.size),
            "x": (float(x[0]), float(x[-1])),
            "y": (float(y[0]), float(y[-1])),
            "z": (float(z.min()), float(z.max())),
        }
    finally:
        ds.close()


def read_asagi(path: str | os.PathLike) -> xr.DataArray:
    """Read an ASAGI NetCDF into a ``z(y, x)`` DataArray (float32 metres)."""
    import netCDF4

    p = Path(path)
    with netCDF4.Dataset(p, "r") as ds:
        ds.set_auto_maskandscale(False)
        x = np.array(ds.variables["x"][:])
        y = np.array(ds.variables["y"][:])
        z = np.array(ds.variables["z"][:])
        attrs = {k: ds.getncattr(k) for k in ds.ncattrs()}
    return xr.DataArray(z, dims=("y", "x"), coords={"x": x, "y": y}, name="z", attrs=attrs)
