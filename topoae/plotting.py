"""Figures of elevation grids and codec errors.

Hillshading uses :class:`matplotlib.colors.LightSource`. Figures are built with
the object-oriented :class:`matplotlib.figure.Figure` (Agg canvas), never
``pyplot``, so no global backend state is touched and nothing opens a window.
matplotlib is imported inside the functions only: ``import topoae.plotting``
is cheap.

Orientation: topoae grids are latitude-ascending (row 0 is the southern row).
A :class:`xarray.DataArray` says its own orientation through its first
coordinate; a plain array is taken as row 0 = south unless ``origin="upper"``
is given. Every map is drawn north-up.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from topoae._atomic import atomic_path
from topoae.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

__all__ = [
    "error_histogram",
    "grid_geometry",
    "hillshade",
    "panel_figure",
    "rate_distortion",
    "save_figure",
    "topo_cmap",
]

_M_PER_DEG = 111_320.0
Origin = Literal["lower", "upper"]


def grid_geometry(z: Any, *, origin: Origin = "lower") -> dict[str, Any]:
    """North-up array, cell spacing in metres and map extent of a grid.

    Parameters
    ----------
    z : array-like or xarray.DataArray
        2-D grid. A DataArray with ``(lat, lon)`` dims gets its spacing from
        the degrees (metres on the sphere at the mean latitude); with ``(y, x)``
        dims its coordinates are taken as metres. Other inputs get unit spacing.
    origin : {"lower", "upper"}
        Row 0 is south ("lower", topoae's convention) or north, for plain arrays.

    Returns
    -------
    dict
        ``z`` (float64, north-up), ``dx``, ``dy`` (metres or 1), ``extent``
        ``(left, right, bottom, top)`` for ``imshow`` or None, ``units``, and
        ``flipped`` (whether ``z`` was turned upside down to be north-up).
    """
    dims = getattr(z, "dims", None)
    coords = getattr(z, "coords", None)
    arr = np.asarray(z, dtype=np.float64)
    if arr.ndim != 2:
        raise InputError(f"expected a 2-D grid, got shape {arr.shape}")
    dx = dy = 1.0
    extent = None
    units = "cell"
    if dims is not None and coords is not None and all(d in coords for d in dims):
        ydim, xdim = dims
        yv = np.asarray(coords[ydim], dtype=np.float64)
        xv = np.asarray(coords[xdim], dtype=np.float64)
        origin = "lower" if yv.size < 2 or yv[-1] >= yv[0] else "upper"
        if yv.size >= 2 and xv.size >= 2:
            sy = abs(float(yv[1] - yv[0]))
            sx = abs(float(xv[1] - xv[0]))
            extent = (
                float(xv.min()) - sx / 2,
                float(xv.max()) + sx / 2,
                float(yv.min()) - sy / 2,
                float(yv.max()) + sy / 2,
            )
            if ydim.startswith("lat") and xdim.startswith("lon"):
                dy = sy * _M_PER_DEG
                dx = sx * _M_PER_DEG * max(math.cos(math.radians(float(yv.mean()))), 1e-6)
                units = "deg"
            else:
                dx, dy = sx, sy
                units = "m"
    flipped = origin == "lower"
    if flipped:
        arr = arr[::-1]
    return {"z": arr, "dx": dx, "dy": dy, "extent": extent, "units": units, "flipped": flipped}


def hillshade(
    z: Any,
    *,
    dx: float | None = None,
    dy: float | None = None,
    azdeg: float = 315.0,
    altdeg: float = 45.0,
    vert_exag: float = 1.0,
    origin: Origin = "lower",
) -> np.ndarray:
    """Illumination (0 shadow .. 1 lit) of a grid, same shape and orientation as ``z``.

    The light comes from azimuth ``azdeg`` (degrees clockwise from north) at
    ``altdeg`` above the horizon. ``dx``/``dy`` (metres) default to the grid's
    own spacing (see :func:`grid_geometry`). NaN cells stay NaN.
    """
    from matplotlib.colors import LightSource

    g = grid_geometry(z, origin=origin)
    north_up = g["z"]
    nan = np.isnan(north_up)
    filled = np.where(nan, np.nanmean(north_up) if (~nan).any() else 0.0, north_up)
    ls = LightSource(azdeg=azdeg, altdeg=altdeg)
    hs = ls.hillshade(
        filled, vert_exag=vert_exag, dx=dx if dx else g["dx"], dy=dy if dy else g["dy"]
    )
    hs = np.where(nan, np.nan, hs)
    return hs[::-1] if g["flipped"] else hs


def topo_cmap() -> Colormap:
    """Blue below sea level, earth tones above (pair it with a norm centred on 0 m)."""
    import matplotlib as mpl
    from matplotlib.colors import LinearSegmentedColormap

    sea = mpl.colormaps["Blues_r"](np.linspace(0.05, 0.85, 128))
    land = mpl.colormaps["terrain"](np.linspace(0.25, 1.0, 128))
    return LinearSegmentedColormap.from_list("topoae_topo", np.vstack([sea, land]))


def _topo_norm(vmin: float, vmax: float):
    """Sea level at the middle of :func:`topo_cmap`, whatever the data's range (all-sea stays blue)."""
    from matplotlib.colors import TwoSlopeNorm

    return TwoSlopeNorm(vcenter=0.0, vmin=min(vmin, -1.0), vmax=max(vmax, 1.0))


def _shaded_panel(ax, geo: dict[str, Any], norm, cmap, title: str) -> None:
    from matplotlib.colors import LightSource

    z = geo["z"]
    nan = np.isnan(z)
    filled = np.where(nan, norm.vmin, z)
    rgba = LightSource(azdeg=315, altdeg=45).shade(
        filled, cmap=cmap, norm=norm, blend_mode="soft", dx=geo["dx"], dy=geo["dy"]
    )
    rgba[nan, 3] = 0.0
    ax.imshow(rgba, extent=geo["extent"], origin="upper", interpolation="nearest")
    ax.set_title(title)
    _label_axes(ax, geo)


def _label_axes(ax, geo: dict[str, Any]) -> None:
    if geo["units"] == "deg":
        ax.set_xlabel("longitude (°E)")
        ax.set_ylabel("latitude (°N)")
    elif geo["units"] == "m":
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")


def panel_figure(
    original: Any,
    reconstruction: Any,
    *,
    title: str | None = None,
    error_limit: float | None = None,
    origin: Origin = "lower",
) -> Figure:
    """Three maps side by side: hillshaded original, reconstruction, and error.

    Parameters
    ----------
    original, reconstruction : array-like or xarray.DataArray, metres
        2-D grids of one shape; coordinates are taken from ``original``.
    title : str, optional
        Figure title (e.g. codec name, ratio and RMSE).
    error_limit : float, optional
        Colour limit of the error map (metres, symmetric); default the 99.9th
        percentile of the absolute error.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    geo_o = grid_geometry(original, origin=origin)
    rec = np.asarray(reconstruction, dtype=np.float64)
    if rec.shape != geo_o["z"].shape:
        raise InputError(
            f"shapes differ: original {geo_o['z'].shape} vs reconstruction {rec.shape}"
        )
    geo_r = dict(geo_o, z=rec[::-1] if geo_o["flipped"] else rec)
    err = geo_r["z"] - geo_o["z"]
    vmin, vmax = float(np.nanmin(geo_o["z"])), float(np.nanmax(geo_o["z"]))
    norm = _topo_norm(vmin, vmax)
    cmap = topo_cmap()
    from matplotlib.cm import ScalarMappable

    h, w = err.shape
    ratio = geo_o["dy"] / geo_o["dx"] if geo_o["units"] != "cell" else 1.0
    aspect = min(max(h / w * ratio, 0.2), 3.0)  # panel height / width on paper
    panel_w = 4.2
    fig = Figure(figsize=(3 * panel_w + 2.6, panel_w * aspect + 1.3), layout="constrained")
    gs = fig.add_gridspec(1, 6, width_ratios=[1, 1, 0.05, 0.12, 1, 0.05])
    axes = [fig.add_subplot(gs[0, i]) for i in (0, 1, 4)]
    _shaded_panel(axes[0], geo_o, norm, cmap, "original")
    _shaded_panel(axes[1], geo_r, norm, cmap, "reconstruction")
    fig.colorbar(
        ScalarMappable(norm=norm, cmap=cmap), cax=fig.add_subplot(gs[0, 2]), label="elevation (m)"
    )
    fig.add_subplot(gs[0, 3]).set_axis_off()
    finite = np.abs(err[np.isfinite(err)])
    lim = error_limit or (float(np.percentile(finite, 99.9)) if finite.size else 1.0) or 1.0
    im = axes[2].imshow(
        err,
        extent=geo_o["extent"],
        origin="upper",
        cmap="RdBu_r",
        vmin=-lim,
        vmax=lim,
        interpolation="nearest",
    )
    fig.colorbar(im, cax=fig.add_subplot(gs[0, 5]), label="reconstruction − original (m)")
    axes[2].set_title("error")
    _label_axes(axes[2], geo_o)
    for ax in axes:
        if geo_o["units"] == "deg":
            ax.set_aspect(1.0 / max(math.cos(math.radians(_mid_lat(geo_o))), 1e-6))
        else:
            ax.set_aspect("equal")
    for ax in axes[1:]:
        ax.set_ylabel("")
    if title:
        fig.suptitle(title)
    return fig


def _mid_lat(geo: dict[str, Any]) -> float:
    ext = geo["extent"]
    return 0.0 if ext is None else (ext[2] + ext[3]) / 2


def error_histogram(
    errors: Mapping[str, Any], *, bins: int = 121, limit: float | None = None, log: bool = True
) -> Figure:
    """Histogram of reconstruction errors (metres), one step line per codec.

    Parameters
    ----------
    errors : mapping of name -> array-like
        Residuals ``reconstruction - original``; NaNs are dropped.
    bins : int
        Number of bins over ``[-limit, limit]``.
    limit : float, optional
        Half-width of the range; default the largest 99.9th percentile of |error|.
    log : bool
        Logarithmic count axis (tails matter for a tsunami model).
    """
    from matplotlib.figure import Figure

    if not errors:
        raise InputError("no errors to plot")
    data = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in errors.items()}
    data = {k: v[np.isfinite(v)] for k, v in data.items()}
    if limit is None:
        limit = max(
            (float(np.percentile(np.abs(v), 99.9)) for v in data.values() if v.size), default=1.0
        )
    limit = limit or 1.0
    edges = np.linspace(-limit, limit, bins + 1)
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.subplots()
    for name, v in data.items():
        counts, _ = np.histogram(np.clip(v, -limit, limit), bins=edges)
        ax.stairs(counts, edges, label=name)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("reconstruction − original (m)")
    ax.set_ylabel("cells")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def rate_distortion(
    curves: Mapping[str, Sequence[tuple[float, float]]],
    *,
    ylabel: str = "RMSE (m)",
    title: str | None = None,
    log_y: bool = True,
) -> Figure:
    """Distortion against compression ratio, one line per codec.

    Parameters
    ----------
    curves : mapping of name -> sequence of (ratio, distortion)
        Points are sorted by ratio; a single point is drawn as a marker.
    ylabel : str
        What the distortion is (default RMSE in metres).
    log_y : bool
        Logarithmic distortion axis; the ratio axis is always logarithmic.
    """
    from matplotlib.figure import Figure

    if not curves:
        raise InputError("no rate-distortion points to plot")
    fig = Figure(figsize=(7.0, 4.8), layout="constrained")
    ax = fig.subplots()
    markers = "osD^v<>pP*hX"
    for i, (name, pts) in enumerate(curves.items()):
        good = sorted((float(r), float(d)) for r, d in pts if np.isfinite(r) and np.isfinite(d))
        if not good:
            continue
        r, d = zip(*good, strict=True)
        ax.plot(
            r,
            d,
            marker=markers[i % len(markers)],
            label=name,
            lw=2 if name.startswith("topoae") else 1.2,
        )
    from matplotlib.ticker import FuncFormatter, LogFormatter

    # Each tick labelled with its own value (%g): a ScalarFormatter on a log axis uses
    # one fixed number of decimals (or an offset) and prints 1e-5 as "0.0000".
    plain = FuncFormatter(lambda v, _pos: f"{v:g}")
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plain)
        ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
    ax.set_xlabel("compression ratio (float32 bytes / compressed bytes)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def save_figure(
    fig: Figure, path: str | os.PathLike, *, overwrite: bool = False, dpi: int = 110
) -> None:
    """Write ``fig`` atomically (format from the suffix, e.g. ``.png``, ``.pdf``)."""
    suffix = os.fspath(path).rsplit(".", 1)[-1].lower()
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=dpi, format=suffix)
