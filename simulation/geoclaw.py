"""GeoClaw input: topotype-3 topography (``.tt3``) and dtopo-type-3 displacement files.

Formats as GeoClaw's ``topotools``/``dtopotools`` read them (header lines are
``value  label``; data rows run from north to south):

- topotype 3: ``ncols``, ``nrows``, ``xlower``, ``ylower`` (the lower-left *data point*,
  GeoClaw's default "lower" registration), ``cellsize`` (``dx`` or ``dx dy``),
  ``nodata_value``; then ``nrows`` lines of ``ncols`` values.
- dtopo type 3: ``mx``, ``my``, ``mt``, ``xlower``, ``ylower``, ``t0``, ``dx``, ``dy``,
  ``dt``; then for each time, ``my`` rows of ``mx`` values (metres of uplift).

Geographic grids are written in longitude/latitude (GeoClaw ``coordinate_system = 2``);
projected ones in their metres (``coordinate_system = 1``).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Hashable
from pathlib import Path

import numpy as np
import xarray as xr

from topoae._atomic import atomic_path
from topoae._version import __version__
from topoae.errors import ConfigError, RegionError
from topoae.simulation.projection import (
    LocalProjection,
    default_origin,
    fill_nearest,
    is_geographic,
)
from topoae.simulation.sources import OkadaSource, align_displacement, check_displacement

NODATA = -99999


def _regular_step(c: np.ndarray, name: Hashable) -> float:
    d = np.diff(c)
    if c.size < 2 or np.any(d <= 0) or np.ptp(d) > 1e-6 * abs(d.mean()):
        raise RegionError(f"coordinate {name} must be increasing and evenly spaced")
    return float(d.mean())


def _write_rows(fh, z: np.ndarray, fmt: str) -> None:
    for row in z[::-1]:  # north to south
        fh.write(" ".join(fmt % v for v in row))
        fh.write("\n")


def write_tt3(
    path: str | os.PathLike, grid: xr.DataArray, *, fmt: str = "%.3f", overwrite: bool = False
) -> Path:
    """Write a canonical grid as a GeoClaw topotype-3 file (NaN filled with nearest)."""
    a, b = grid.dims
    x, y = np.asarray(grid[b].values, np.float64), np.asarray(grid[a].values, np.float64)
    dx, dy = _regular_step(x, b), _regular_step(y, a)
    z, _ = fill_nearest(np.asarray(grid.values, np.float64))
    cell = f"{dx:.15e}" if abs(dx - dy) <= 1e-9 * dx else f"{dx:.15e} {dy:.15e}"
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "w") as fh:
        fh.write(f"{x.size:<24d} ncols\n{y.size:<24d} nrows\n")
        fh.write(f"{x[0]:<24.15e} xlower\n{y[0]:<24.15e} ylower\n")
        fh.write(f"{cell:<24s} cellsize\n{NODATA:<24d} nodata_value\n")
        _write_rows(fh, z, fmt)
    return Path(path)


def read_tt3(path: str | os.PathLike) -> xr.DataArray:
    """Read a topotype-3 file written by :func:`write_tt3` (or GeoClaw) into ``z(y, x)``."""
    with open(path) as fh:
        head = [fh.readline().split() for _ in range(6)]
        z = np.loadtxt(fh, ndmin=2)

    def val(i: int) -> list[float]:
        nums = []
        for tok in head[i]:
            with contextlib.suppress(ValueError):
                nums.append(float(tok))
        return nums

    nx, ny = int(val(0)[0]), int(val(1)[0])
    x0, y0 = val(2)[0], val(3)[0]
    cs = val(4)
    dx, dy = cs[0], cs[-1]
    nodata = val(5)[0]
    z = z.reshape(ny, nx)[::-1].astype(np.float64)
    z[z == nodata] = np.nan
    return xr.DataArray(
        z,
        dims=("y", "x"),
        coords={"x": x0 + dx * np.arange(nx), "y": y0 + dy * np.arange(ny)},
        name="z",
    )


def write_dtopo3(
    path: str | os.PathLike,
    x: np.ndarray,
    y: np.ndarray,
    dz: np.ndarray,
    *,
    times: tuple[float, ...] = (1.0,),
    fmt: str = "%.6e",
    overwrite: bool = False,
) -> Path:
    """Write vertical displacement ``dz(y, x)`` (m) as GeoClaw dtopo type 3.

    ``dz`` is applied in full at every time in ``times`` (an instantaneous rupture);
    ``times`` must be evenly spaced.
    """
    dx, dy = _regular_step(np.asarray(x), "x"), _regular_step(np.asarray(y), "y")
    t = np.asarray(times, np.float64)
    dt = float(np.diff(t).mean()) if t.size > 1 else 0.0
    dz = np.nan_to_num(np.asarray(dz, np.float64), nan=0.0)
    with atomic_path(path, overwrite=overwrite) as tmp, open(tmp, "w") as fh:
        fh.write(f"{len(x):<24d} mx\n{len(y):<24d} my\n{t.size:<24d} mt\n")
        fh.write(f"{x[0]:<24.15e} xlower\n{y[0]:<24.15e} ylower\n{t[0]:<24.15e} t0\n")
        fh.write(f"{dx:<24.15e} dx\n{dy:<24.15e} dy\n{dt:<24.15e} dt\n")
        for _ in t:
            _write_rows(fh, dz, fmt)
    return Path(path)


def okada_on_native_grid(
    okada: OkadaSource, grid: xr.DataArray, origin: tuple[float, float] | None = None
) -> np.ndarray:
    """Evaluate Okada faults at the sample points of a canonical grid (lon/lat or x/y)."""
    a, b = grid.dims
    gx, gy = np.meshgrid(grid[b].values, grid[a].values)
    if is_geographic(grid):
        lon0, lat0 = origin or default_origin(grid)
        px, py = LocalProjection(lon0, lat0).forward(gx, gy)
        return okada.displacement(px, py, origin_lon=lon0, origin_lat=lat0)
    return okada.displacement(gx, gy)


def export_geoclaw(
    bathymetry: xr.DataArray,
    out_dir: str | os.PathLike,
    *,
    displacement: xr.DataArray | None = None,
    okada: OkadaSource | None = None,
    provenance: dict | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write ``topo.tt3`` (+ ``dtopo.tt3`` with a source) and a README into ``out_dir``."""
    if displacement is not None and okada is not None:
        raise ConfigError("give either a displacement grid or Okada faults, not both")
    geographic = is_geographic(bathymetry)
    if displacement is not None:  # a projected one with a CRS goes to lon/lat
        displacement = align_displacement(displacement, bathymetry)
    if displacement is not None and is_geographic(displacement) != geographic:
        raise ConfigError("bathymetry and displacement must both be geographic or both x/y")
    uz = check_displacement(displacement, bathymetry) if displacement is not None else None
    out = Path(out_dir)
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir(parents=True)
        write_tt3(tmp / "topo.tt3", bathymetry)
        has_d = displacement is not None or okada is not None
        if has_d:
            # the deformation on its own grid, or Okada's evaluated on the bathymetry's
            on = displacement if displacement is not None else bathymetry
            if uz is None:
                uz = okada_on_native_grid(okada, bathymetry)
            a, b = on.dims
            write_dtopo3(tmp / "dtopo.tt3", on[b].values, on[a].values, uz)
        cs = 2 if geographic else 1
        (tmp / "README.md").write_text(
            f"# GeoClaw input written by topoae {__version__}\n\n"
            f"- `topo.tt3`: topotype 3 (`topo_data.topofiles.append([3, 'topo.tt3'])`).\n"
            + (
                "- `dtopo.tt3`: dtopo type 3 (`dtopo_data.dtopofiles.append([3, 'dtopo.tt3'])`).\n"
                if has_d
                else ""
            )
            + f"- Coordinates are {'longitude/latitude' if geographic else 'metres'}: set "
            f"`clawdata.coordinate_system = {cs}`; elevation in metres, positive up.\n"
        )
        (tmp / "topoae.json").write_text(
            json.dumps(
                {
                    "topoae_version": __version__,
                    "source": bathymetry.attrs.get("source"),
                    "okada": okada.describe() if okada is not None else None,
                    "provenance": provenance or {},
                },
                indent=2,
                default=str,
            )
            + "\n"
        )
    return {p.name: p for p in sorted(out.iterdir())}
