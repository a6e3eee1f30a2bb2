"""ANUGA input: the bathymetry as an ESRI ASCII grid (``.asc``) in local metres.

ANUGA works in metres: a geographic grid is put on a local transverse Mercator
grid (:func:`topoae.simulation.projection.to_local_grid`) and written with
``xllcenter``/``yllcenter`` (the first sample's centre, the meaning ANUGA's own
``grd2array`` gives the corner keys too), one ``cellsize``, ``NODATA_value`` and rows
from north to south. A ``.prj`` (ESRI WKT) records the projection for GIS tools, and
``anuga.json`` gives the domain extent and the gauges in the same metres.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import xarray as xr

from topoae._atomic import atomic_path
from topoae._version import __version__
from topoae.errors import RegionError
from topoae.simulation.projection import local_points, to_local_grid

NODATA = -9999


def write_asc(
    path: str | os.PathLike, grid: xr.DataArray, *, fmt: str = "%.3f", overwrite: bool = False
) -> Path:
    """Write a metric ``z(y, x)`` grid with square cells as an ESRI ASCII grid."""
    x, y = np.asarray(grid["x"].values), np.asarray(grid["y"].values)
    dx, dy = np.diff(x), np.diff(y)
    if x.size < 2 or y.size < 2 or np.any(dx <= 0) or np.any(dy <= 0):
        raise RegionError("an .asc grid needs increasing x/y with at least 2×2 cells")
    cell = float(dx.mean())
    if np.ptp(dx) > 1e-6 * cell or np.ptp(dy) > 1e-6 * cell or abs(dy.mean() - cell) > 1e-6 * cell:
        raise RegionError("an .asc grid needs square, evenly spaced cells")
    z = np.where(np.isfinite(grid.values), grid.values, NODATA)
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "w") as fh:
        fh.write(f"ncols {x.size}\nnrows {y.size}\n")
        fh.write(f"xllcenter {x[0]:.6f}\nyllcenter {y[0]:.6f}\n")
        fh.write(f"cellsize {cell:.6f}\nNODATA_value {NODATA}\n")
        np.savetxt(fh, z[::-1], fmt=fmt)
    return Path(path)


def export_anuga(
    bathymetry: xr.DataArray,
    out_dir: str | os.PathLike,
    *,
    origin: tuple[float, float] | None = None,
    spacing: float | None = None,
    max_cells: int | None = None,
    gauges: tuple[tuple[float, float], ...] = (),
    provenance: dict | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write ``bathymetry.asc``, ``bathymetry.prj`` and ``anuga.json`` into ``out_dir``."""
    grid = to_local_grid(bathymetry, origin=origin, spacing=spacing, max_cells=max_cells)
    x, y = grid["x"].values, grid["y"].values
    pts = local_points(gauges, grid)
    meta = {
        "topoae_version": __version__,
        "source": bathymetry.attrs.get("source"),
        "extent_m": {"x": [float(x[0]), float(x[-1])], "y": [float(y[0]), float(y[-1])]},
        "spacing_m": grid.attrs.get("spacing_m"),
        "projection": grid.attrs.get("projection"),
        "origin": {k: v for k, v in grid.attrs.items() if k.startswith("origin")},
        "filled_cells": grid.attrs.get("filled_cells"),
        "gauges_m": [list(p) for p in pts],
        "provenance": provenance or {},
    }
    out = Path(out_dir)
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir(parents=True)
        write_asc(tmp / "bathymetry.asc", grid)
        proj = grid.attrs.get("projection", "")
        if proj.startswith("+proj"):
            from pyproj import CRS
            from pyproj.enums import WktVersion

            (tmp / "bathymetry.prj").write_text(CRS.from_proj4(proj).to_wkt(WktVersion.WKT1_ESRI))
        (tmp / "anuga.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return {p.name: p for p in sorted(out.iterdir())}
