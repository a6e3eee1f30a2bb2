"""Subset a canonical grid by a bounding box, across the antimeridian if needed."""

from __future__ import annotations

import numpy as np
import xarray as xr

from topoae.errors import RegionError


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """Parse ``"W,S,E,N"`` into four floats (raises :class:`RegionError`)."""
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        raise RegionError(f"bbox {text!r} is not four numbers W,S,E,N") from None
    if len(parts) != 4:
        raise RegionError(f"bbox {text!r} must have four numbers W,S,E,N, got {len(parts)}")
    w, s, e, n = parts
    if s >= n:
        raise RegionError(f"bbox {text!r}: south ({s}) must be below north ({n})")
    return w, s, e, n


def _wrap(lon: float, lo: float) -> float:
    """Map ``lon`` into the 360° window starting at ``lo``."""
    return (lon - lo) % 360.0 + lo


def subset_bbox(da: xr.DataArray, bbox: tuple[float, float, float, float]) -> xr.DataArray:
    """Return the cells of ``da`` whose centres fall inside ``bbox``.

    For geographic grids the box's longitudes may use either convention
    (−180…180 or 0…360) and may cross the antimeridian (``west > east``, or a
    box that runs past the grid's last longitude). The result's longitudes are
    monotonic increasing and may exceed the grid's range (e.g. 170…190) so that
    the subset stays one contiguous piece. A regional grid (less than 360°) is never
    wrapped: ``west > east`` is refused (:class:`RegionError`) unless the grid itself
    runs across the meridian where the box wraps (e.g. a 150…210 grid and 170,…,-170),
    and so is a box that would take two separate pieces of it.
    """
    w, s, e, n = (float(v) for v in bbox)
    if s >= n:
        raise RegionError(f"bbox south ({s}) must be below north ({n})")
    ydim, xdim = da.dims
    y = da[ydim].values
    eps = 1e-6 * float(np.abs(np.diff(y[:2])).max()) if y.size > 1 else 0.0
    sub = da.isel({ydim: np.flatnonzero((y >= s - eps) & (y <= n + eps))})
    if xdim != "lon":
        if w >= e:
            raise RegionError(f"bbox west ({w}) must be left of east ({e}) on a projected grid")
        x = da[xdim].values
        sub = sub.isel({xdim: np.flatnonzero((x >= w) & (x <= e))})
    else:
        sub = _subset_lon(sub, w, e)
    if sub.sizes[ydim] == 0 or sub.sizes[xdim] == 0:
        ext = (
            float(da[xdim].min()),
            float(da[ydim].min()),
            float(da[xdim].max()),
            float(da[ydim].max()),
        )
        raise RegionError(
            f"bbox {w},{s},{e},{n} is outside the grid (extent {ext[0]:g},{ext[1]:g},"
            f"{ext[2]:g},{ext[3]:g})"
        )
    sub.attrs = {**da.attrs, "bbox": [w, s, e, n]}
    return sub


def _holds_seam(lon: np.ndarray, step: float, w: float, e: float) -> bool:
    """Whether a regional grid holds the meridian where a ``west > east`` box wraps.

    The box runs east from ``w`` to ``e + 360`` and wraps at the 180° meridian
    (−180…180 convention) or at 0°/360° (0…360 convention); a regional grid can serve
    it only where its own longitudes run across that meridian (e.g. 150…210).
    """
    lo, span = float(lon[0]) - step / 2, float(lon[-1] - lon[0]) + step
    seams = np.arange(180.0 * np.ceil(w / 180.0), e + 360.0, 180.0)
    return bool(np.any((seams - lo) % 360.0 < span))


def _subset_lon(da: xr.DataArray, w: float, e: float) -> xr.DataArray:
    lon = da["lon"].values
    step = float(np.median(np.diff(lon))) if lon.size > 1 else 0.0
    full_circle = float(lon[-1] - lon[0]) + step >= 360.0 - 1e-6
    width = 360.0 if e - w >= 360.0 else (e - w) % 360.0
    if not full_circle:
        if w > e and not _holds_seam(lon, step, w, e):
            raise RegionError(
                f"bbox west ({w:g}) > east ({e:g}) crosses the antimeridian, but the grid is "
                f"regional (longitudes {lon[0]:g} to {lon[-1]:g}) and does not: only a grid "
                "spanning 360° can be crossed; give west < east"
            )
        # Regional grid: nothing to wrap; use whichever 360° shift of the box overlaps most.
        best = max(
            (w + k * 360.0 for k in (-1, 0, 1)),
            key=lambda a: min(a + width, lon[-1]) - max(a, lon[0]),
        )
        keep = ((lon >= best) & (lon <= best + width)) | (width >= 360.0)  # 360°: all of it
        d, tol = (lon - w) % 360.0, 1e-6 * step
        if np.any((d > tol) & (d < width - tol) & ~keep):
            raise RegionError(
                f"bbox west {w:g} to east {e:g} covers two separate pieces of this regional grid "
                f"(longitudes {lon[0]:g} to {lon[-1]:g}); give one contiguous box"
            )
        return da.isel(lon=np.flatnonzero(keep))
    eps = 1e-6 * step
    start = (w - lon[0]) % 360.0 + lon[0]
    stop = start + width
    first = np.flatnonzero((lon >= start - eps) & (lon <= stop + eps))
    if stop <= lon[-1] + step / 2:
        out = da.isel(lon=first)
    else:
        # The box runs past the grid's last column: append its wrapped-around part, +360°.
        second = np.flatnonzero((lon + 360.0 <= stop + eps) & (lon + 360.0 > lon[-1]))
        wrapped = da.isel(lon=second)
        wrapped = wrapped.assign_coords(lon=wrapped["lon"] + 360.0)
        out = xr.concat([da.isel(lon=first), wrapped], dim="lon")
    # Express the result in the box's own convention (a box given as -10..10 on a
    # 0..360 grid comes back as -10..10, not 350..370).
    if out.sizes["lon"]:
        shift = 360.0 * np.round((w - float(out["lon"][0])) / 360.0)
        if shift:
            out = out.assign_coords(lon=out["lon"] + shift)
    return out
