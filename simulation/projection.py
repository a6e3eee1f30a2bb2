"""Put an elevation grid on a regular metric grid around an origin.

Shallow-water engines (ExaHyPE through ASAGI, ANUGA, GeoClaw in Cartesian mode)
want ``x``/``y`` in metres. A geographic grid is projected with a transverse
Mercator centred on the origin (conformal; the scale error stays below 0.1 %
within ~300 km of the origin) and resampled bilinearly onto a regular grid that
lies wholly inside the projected footprint of the source, so every output cell
is backed by data. A projected grid (dims ``y, x`` in metres) is only shifted
so that the origin is ``(0, 0)``.

Output cells never hold NaN: nodata in the source is filled with the nearest
valid value first (ASAGI has no fill value) and the count is recorded in
``attrs["filled_cells"]``.

The way back, :func:`to_geographic`, puts a projected grid whose frame is known (a
CRS, or a :class:`LocalProjection`) on a regular longitude/latitude grid, so that a
projected sea-floor displacement can be a source on a geographic bathymetry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from topoae import nanfill as _nanfill
from topoae.errors import ConfigError, RegionError

if TYPE_CHECKING:
    from pyproj import CRS

#: Metres per degree of latitude on the WGS84 mean sphere (for default spacings only).
M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class LocalProjection:
    """A transverse Mercator projection centred on ``(lon0, lat0)``, metres."""

    lon0: float
    lat0: float

    @property
    def proj4(self) -> str:
        """PROJ string of the projection (written into output attributes)."""
        return (
            f"+proj=tmerc +lat_0={self.lat0:.10g} +lon_0={self.lon0:.10g} +k=1 "
            "+x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
        )

    def _transformer(self):
        from pyproj import Transformer

        return Transformer.from_crs("EPSG:4326", self.proj4, always_xy=True)

    def forward(self, lon, lat) -> tuple[np.ndarray, np.ndarray]:
        """Longitude/latitude (degrees) to local ``x``/``y`` (metres)."""
        lon = np.asarray(lon, dtype=np.float64)
        # keep longitudes within 180° of the origin so 0–360 and ±180 grids agree
        lon = (lon - self.lon0 + 180.0) % 360.0 - 180.0 + self.lon0
        x, y = self._transformer().transform(lon, np.asarray(lat, dtype=np.float64))
        return np.asarray(x), np.asarray(y)

    def inverse(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        """Local ``x``/``y`` (metres) to longitude/latitude (degrees, near ``lon0``)."""
        lon, lat = self._transformer().transform(
            np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64), direction="INVERSE"
        )
        lon = (np.asarray(lon) - self.lon0 + 180.0) % 360.0 - 180.0 + self.lon0
        return lon, np.asarray(lat)


def parse_point(text: str) -> tuple[float, float]:
    """Parse ``"LON,LAT"`` (or ``"X,Y"``) into two floats (raises :class:`ConfigError`)."""
    try:
        a, b = (float(v) for v in str(text).split(","))
    except ValueError:
        raise ConfigError(f"point {text!r} is not two numbers LON,LAT") from None
    if not (np.isfinite(a) and np.isfinite(b)):
        raise ConfigError(f"point {text!r} is not finite")
    return a, b


def local_points(points, grid: xr.DataArray) -> list[tuple[float, float]]:
    """Put ``(lon, lat)`` (or projected ``(x, y)``) points into ``grid``'s local metres."""
    out = []
    for a, b in points:
        if "origin_lon" in grid.attrs:
            x, y = LocalProjection(grid.attrs["origin_lon"], grid.attrs["origin_lat"]).forward(a, b)
            out.append((float(x), float(y)))
        else:
            out.append(
                (
                    float(a) - grid.attrs.get("origin_x", 0.0),
                    float(b) - grid.attrs.get("origin_y", 0.0),
                )
            )
    return out


def is_geographic(da: xr.DataArray) -> bool:
    """True for a canonical ``(lat, lon)`` grid, False for ``(y, x)``."""
    if tuple(da.dims) == ("lat", "lon"):
        return True
    if tuple(da.dims) == ("y", "x"):
        return False
    raise ConfigError(f"grid dims {da.dims} are neither (lat, lon) nor (y, x)")


def fill_nearest(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Replace NaN (and ±inf) by the nearest finite value; return the array and the count filled."""
    out, bad = _nanfill.fill_nearest(values, finite=True)
    return out, 0 if bad is None else int(bad.sum())


def default_origin(da: xr.DataArray) -> tuple[float, float]:
    """Centre of the grid's coordinate box (lon, lat) or (x, y)."""
    a, b = da.dims
    return (float(da[b].values[[0, -1]].mean()), float(da[a].values[[0, -1]].mean()))


def native_spacing(da: xr.DataArray, origin_lat: float | None = None) -> float:
    """The grid's finest cell edge in metres (degrees converted at the origin's latitude)."""
    a, b = da.dims
    dy = float(np.abs(np.diff(da[a].values)).min()) if da.sizes[a] > 1 else np.inf
    dx = float(np.abs(np.diff(da[b].values)).min()) if da.sizes[b] > 1 else np.inf
    if is_geographic(da):
        lat = float(origin_lat if origin_lat is not None else da["lat"].values.mean())
        dy, dx = dy * M_PER_DEG, dx * M_PER_DEG * max(np.cos(np.radians(lat)), 1e-6)
    step = min(dx, dy)
    if not np.isfinite(step) or step <= 0:
        raise RegionError("the grid needs at least 2×2 cells with distinct coordinates")
    return step


def _inscribed_box(proj: LocalProjection, lat: np.ndarray, lon: np.ndarray):
    """Largest axis-aligned box inside the projected footprint of the grid's centres."""
    n = 64
    lat_s = np.linspace(lat[0], lat[-1], n)
    lon_s = np.linspace(lon[0], lon[-1], n)
    xl, _ = proj.forward(np.full(n, lon[0]), lat_s)
    xr_, _ = proj.forward(np.full(n, lon[-1]), lat_s)
    _, yb = proj.forward(lon_s, np.full(n, lat[0]))
    _, yt = proj.forward(lon_s, np.full(n, lat[-1]))
    return float(xl.max()), float(xr_.min()), float(yb.max()), float(yt.min())


def _axes(
    box: tuple[float, float, float, float], step: float, max_cells: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Square-celled sample axes inside ``box = (x0, x1, y0, y1)``, centred in it.

    With ``max_cells``, the one step grows until neither axis has more samples.
    """
    x0, x1, y0, y1 = box
    if max_cells is not None:
        if max_cells < 2:
            raise ConfigError("max_cells must be at least 2")
        step = max(step, max(x1 - x0, y1 - y0) / (max_cells - 1) * (1 + 1e-12))
    out = []
    for lo, hi in ((x0, x1), (y0, y1)):
        n = int(np.floor((hi - lo) / step + 1e-9)) + 1
        if n < 2:
            raise RegionError("the region is smaller than two cells at this spacing")
        pad = (hi - lo - (n - 1) * step) / 2.0  # centre the samples in the covered box
        out.append(lo + pad + step * np.arange(n))
    return out[0], out[1]


def to_local_grid(
    da: xr.DataArray,
    *,
    origin: tuple[float, float] | None = None,
    spacing: float | None = None,
    max_cells: int | None = None,
    fill: bool = True,
) -> xr.DataArray:
    """Resample a canonical grid onto a regular metric grid centred on ``origin``.

    Parameters
    ----------
    da
        Canonical grid from :func:`topoae.io.open_grid`: dims ``(lat, lon)`` in degrees or
        ``(y, x)`` in metres; elevation in metres, positive up, NaN for nodata.
    origin
        ``(lon, lat)`` (geographic) or ``(x, y)`` (projected) that becomes ``(0, 0)``;
        default: the centre of the grid.
    spacing
        Output cell edge in metres; default: the source's finest cell edge.
    max_cells
        Cap on the number of samples along each axis (the spacing grows to fit).
    fill
        Fill NaN with the nearest valid value (required for ASAGI and the engines).

    Returns
    -------
    xr.DataArray
        float64 ``z(y, x)`` in metres, ``x``/``y`` ascending cell centres in metres, attrs
        ``origin_lon``/``origin_lat`` (or ``origin_x``/``origin_y``), ``projection``,
        ``spacing_m``, ``filled_cells`` and the source's ``source``/``variable``.
    """
    from scipy.interpolate import RegularGridInterpolator

    geographic = is_geographic(da)
    if origin is None:
        origin = default_origin(da)
    values = np.asarray(da.values, dtype=np.float64)
    filled = 0
    if fill:
        values, filled = fill_nearest(values)
    a, b = da.dims
    ya, xa = np.asarray(da[a].values, np.float64), np.asarray(da[b].values, np.float64)
    for name, v in ((a, ya), (b, xa)):
        if v.size < 2 or not np.all(np.diff(v) > 0):
            raise RegionError(f"coordinate {name} must increase strictly with at least 2 values (a "
                              "simulation needs a regular grid)")
    if spacing is not None and not (np.isfinite(spacing) and spacing > 0):
        raise ConfigError(f"spacing must be a positive number of metres, got {spacing}")
    attrs = {k: da.attrs[k] for k in ("source", "variable") if k in da.attrs}
    if geographic:
        proj = LocalProjection(float(origin[0]), float(origin[1]))
        if not -90.0 < proj.lat0 < 90.0:
            raise ConfigError(f"origin latitude {proj.lat0} is outside (-90, 90)")
        step = float(spacing) if spacing is not None else native_spacing(da, proj.lat0)
        x0, x1, y0, y1 = _inscribed_box(proj, ya, xa)
        if x1 <= x0 or y1 <= y0:
            raise RegionError("the grid's projected footprint is empty")
        x, y = _axes((x0, x1, y0, y1), step, max_cells)
        gx, gy = np.meshgrid(x, y)
        lon, lat = proj.inverse(gx, gy)
        # source longitudes may be offset by 360° from the origin's convention
        lon = lon + 360.0 * np.round((xa.mean() - lon) / 360.0)
        interp = RegularGridInterpolator(
            (ya, xa), values, method="linear", bounds_error=False, fill_value=None
        )
        z = interp(np.stack([np.clip(lat, ya[0], ya[-1]), np.clip(lon, xa[0], xa[-1])], axis=-1))
        attrs.update(origin_lon=proj.lon0, origin_lat=proj.lat0, projection=proj.proj4)
    else:
        ox, oy = float(origin[0]), float(origin[1])
        if spacing is None and max_cells is None:
            x, y, z = xa - ox, ya - oy, values
            step = native_spacing(da)
        else:
            step = float(spacing) if spacing is not None else native_spacing(da)
            x, y = _axes((xa[0], xa[-1], ya[0], ya[-1]), step, max_cells)
            interp = RegularGridInterpolator((ya, xa), values, method="linear")
            gx, gy = np.meshgrid(x, y)
            z = interp(np.stack([gy, gx], axis=-1))
            x, y = x - ox, y - oy
        attrs.update(origin_x=ox, origin_y=oy, projection="source grid, shifted")
    step_x = float(np.diff(x).mean()) if x.size > 1 else step
    attrs.update(spacing_m=step_x, filled_cells=filled, units="m")
    out = xr.DataArray(
        np.asarray(z, np.float64),
        dims=("y", "x"),
        coords={
            "x": ("x", np.asarray(x, np.float64), {"units": "m"}),
            "y": ("y", np.asarray(y, np.float64), {"units": "m"}),
        },
        name="z",
        attrs=attrs,
    )
    return out


def regrid_like(
    da: xr.DataArray, like: xr.DataArray, *, fill: bool = True, must_cover: bool = True
) -> xr.DataArray:
    """Resample ``da`` onto the metric grid of ``like`` (a :func:`to_local_grid` result).

    Raises :class:`RegionError` when ``da`` does not cover ``like``'s extent; with
    ``must_cover=False`` (a source smaller than the domain) cells outside it are NaN.
    """
    from scipy.interpolate import RegularGridInterpolator

    values = np.asarray(da.values, dtype=np.float64)
    if fill:
        values, _ = fill_nearest(values)
    a, b = da.dims
    ya, xa = np.asarray(da[a].values, np.float64), np.asarray(da[b].values, np.float64)
    gx, gy = np.meshgrid(like["x"].values, like["y"].values)
    if is_geographic(da):
        if "origin_lon" not in like.attrs:
            raise ConfigError("cannot put a geographic grid on a projected grid's cells")
        proj = LocalProjection(float(like.attrs["origin_lon"]), float(like.attrs["origin_lat"]))
        qx, qy = proj.inverse(gx, gy)
        qx = qx + 360.0 * np.round((xa.mean() - qx) / 360.0)
    else:
        if "origin_lon" in like.attrs:  # its x/y are not the local grid's metres
            raise ConfigError(
                "cannot put a projected grid on a geographic grid's cells; "
                "reproject it first (to_geographic)"
            )
        qx = gx + float(like.attrs.get("origin_x", 0.0))
        qy = gy + float(like.attrs.get("origin_y", 0.0))
    # Cell-centred grids cover half a cell beyond their outer centres; the inscribed box of the
    # original can bulge that little past a same-extent grid's outer centres.
    tol_x = 0.5 * abs(xa[1] - xa[0]) if xa.size > 1 else 1e-6
    tol_y = 0.5 * abs(ya[1] - ya[0]) if ya.size > 1 else 1e-6
    if must_cover and (
        qx.min() < xa[0] - tol_x
        or qx.max() > xa[-1] + tol_x
        or qy.min() < ya[0] - tol_y
        or qy.max() > ya[-1] + tol_y
    ):
        raise RegionError(
            f"{da.attrs.get('source', 'the grid')} does not cover the "
            "simulation domain of the original bathymetry"
        )
    if must_cover:  # within the tolerance: the outer centres' values
        qx, qy = np.clip(qx, xa[0], xa[-1]), np.clip(qy, ya[0], ya[-1])
    interp = RegularGridInterpolator(
        (ya, xa), values, method="linear", bounds_error=False, fill_value=np.nan
    )
    z = interp(np.stack([qy, qx], axis=-1))
    return like.copy(data=np.asarray(z, np.float64))


def grid_crs(da: xr.DataArray) -> CRS | None:
    """The CRS a grid carries (as :func:`topoae.io.open_grid` attaches it), or None."""
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    from pyproj import CRS

    try:
        crs = da.rio.crs
    except Exception:  # an unreadable spatial_ref / grid_mapping counts as none
        return None
    return None if crs is None else CRS.from_user_input(crs.to_wkt())


def frame_crs(frame: LocalProjection | CRS | str) -> CRS:
    """A :class:`pyproj.CRS` for a :class:`LocalProjection`, a CRS or a CRS string."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if isinstance(frame, LocalProjection):
        return CRS.from_proj4(frame.proj4)
    try:
        return CRS.from_user_input(frame)
    except CRSError as exc:
        raise ConfigError(f"{frame!r} is not a CRS: {exc}") from None


def _covering_axis(lo: float, hi: float, step: float) -> np.ndarray:
    """Evenly spaced samples of ``step`` centred on ``[lo, hi]`` that reach both ends."""
    n = int(np.ceil((hi - lo) / step - 1e-9)) + 1
    return 0.5 * (lo + hi) + step * (np.arange(n) - 0.5 * (n - 1))


def to_geographic(
    da: xr.DataArray, frame: LocalProjection | CRS | str | None = None
) -> xr.DataArray:
    """Resample a projected grid onto a regular longitude/latitude grid over its footprint.

    Parameters
    ----------
    da
        Projected grid, dims ``(y, x)`` in metres of ``frame`` (any value unit, NaN for nodata).
    frame
        The projection ``da``'s ``x``/``y`` belong to: a :class:`LocalProjection` (metres of a
        transverse Mercator centred on its origin), a :class:`pyproj.CRS`, or a string
        :meth:`pyproj.CRS.from_user_input` takes (``"EPSG:32654"``); default the CRS ``da``
        carries (:func:`grid_crs`). :class:`ConfigError` when there is none.

    Returns
    -------
    xr.DataArray
        float64 ``z(lat, lon)``, degrees ascending, covering the lon/lat bounding box of
        ``da``'s footprint with cells about as large as ``da``'s (converted at the footprint's
        centre); bilinear between ``da``'s cell centres, NaN outside them. Longitudes stay
        within 180° of the footprint's centre. Attrs: ``da``'s, plus ``reprojected_from``
        (the frame as a CRS string); CRS EPSG:4326.
    """
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    from pyproj import Transformer
    from scipy.interpolate import RegularGridInterpolator

    if is_geographic(da):
        raise ConfigError("the grid is already geographic (lat, lon)")
    crs = frame_crs(frame) if frame is not None else grid_crs(da)
    if crs is None:
        raise ConfigError(
            f"{da.attrs.get('source', 'the projected grid')} has no CRS; give its frame"
        )
    y = np.asarray(da["y"].values, np.float64)
    x = np.asarray(da["x"].values, np.float64)
    if x.size < 2 or y.size < 2:
        raise RegionError("the grid needs at least 2×2 cells to be reprojected")
    to_geo = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    n = 65  # samples per side of the footprint's outline (its edges curve in lon/lat)
    sx, sy = np.linspace(x[0], x[-1], n), np.linspace(y[0], y[-1], n)
    ex = np.concatenate([sx, np.full(n, x[-1]), sx, np.full(n, x[0])])
    ey = np.concatenate([np.full(n, y[0]), sy, np.full(n, y[-1]), sy])
    lon_c, lat_c = to_geo.transform(0.5 * (x[0] + x[-1]), 0.5 * (y[0] + y[-1]))
    lon_e, lat_e = (np.asarray(v, np.float64) for v in to_geo.transform(ex, ey))
    if not (np.isfinite(lon_e).all() and np.isfinite(lat_e).all() and np.isfinite(lon_c)):
        raise RegionError(f"the grid's x/y do not map onto the globe in {crs.to_string()}")
    lon_e = lon_c + (lon_e - lon_c + 180.0) % 360.0 - 180.0
    dx, dy = float(np.abs(np.diff(x)).min()), float(np.abs(np.diff(y)).min())
    dlat = dy / M_PER_DEG
    dlon = dx / (M_PER_DEG * max(np.cos(np.radians(lat_c)), 1e-6))
    lon = _covering_axis(float(lon_e.min()), float(lon_e.max()), dlon)
    lat = _covering_axis(max(float(lat_e.min()), -90.0), min(float(lat_e.max()), 90.0), dlat)
    lat = lat[np.abs(lat) <= 90.0]
    glon, glat = np.meshgrid(lon, lat)
    to_frame = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    qx, qy = (np.asarray(v, np.float64) for v in to_frame.transform(glon, glat))
    ok = np.isfinite(qx) & np.isfinite(qy)
    interp = RegularGridInterpolator(
        (y, x), np.asarray(da.values, np.float64), bounds_error=False, fill_value=np.nan
    )
    z = np.full(glon.shape, np.nan)
    z[ok] = interp(np.stack([qy[ok], qx[ok]], axis=-1))
    attrs = {**da.attrs, "reprojected_from": crs.to_string(), "units": da.attrs.get("units", "m")}
    out = xr.DataArray(
        z,
        dims=("lat", "lon"),
        coords={
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
        },
        name=da.name,
        attrs=attrs,
    )
    return out.rio.set_spatial_dims(x_dim="lon", y_dim="lat").rio.write_crs("EPSG:4326")
