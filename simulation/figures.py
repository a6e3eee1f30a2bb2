"""Figures of a shallow-water check: gauge series per bathymetry, and the domain map."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from topoae._atomic import atomic_path


def plot_gauges(
    path: str | os.PathLike,
    time: np.ndarray,
    series: dict[str, np.ndarray],
    *,
    gauge_names: list[str],
    bands: dict[str, np.ndarray] | None = None,
    title: str = "",
    overwrite: bool = False,
) -> Path:
    """Water height vs time, one panel per gauge, one line per bathymetry.

    ``series[name]`` is ``eta[time, gauge]`` (m); ``bands[name]`` is ``[3, time, gauge]``
    (low, median, high quantiles), drawn as a shaded band with its median dashed.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(gauge_names)
    fig, axes = plt.subplots(n, 1, figsize=(9, 2.6 * n + 0.6), sharex=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for g, ax in enumerate(axes[:, 0]):
        for i, (name, eta) in enumerate(series.items()):
            style = {
                "lw": 1.6 if i == 0 else 1.1,
                "color": "k" if i == 0 else colours[(i - 1) % len(colours)],
            }
            if name.startswith("flat"):
                style.update(ls=":", color="0.45")
            ax.plot(time, eta[:, g], label=name, **style)
        for j, (name, band) in enumerate((bands or {}).items()):
            c = colours[(len(series) + j) % len(colours)]
            ax.fill_between(
                time,
                band[0, :, g],
                band[-1, :, g],
                color=c,
                alpha=0.25,
                lw=0,
                label=f"{name} 5–95 %",
            )
            ax.plot(
                time, band[len(band) // 2, :, g], color=c, ls="--", lw=1.0, label=f"{name} median"
            )
        ax.set_ylabel(f"{gauge_names[g]}\nwater height (m)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper right", fontsize=8, ncol=2)
    axes[-1, 0].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=120, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(path)


def plot_domain(
    path: str | os.PathLike,
    bathymetry: xr.DataArray,
    gauges: list[tuple[float, float]],
    gauge_names: list[str],
    eta0: xr.DataArray | None = None,
    overwrite: bool = False,
) -> Path:
    """Map of the simulation grid (km) with gauges and the initial displacement contours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = bathymetry["x"].values / 1000.0, bathymetry["y"].values / 1000.0
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    z = bathymetry.values
    lim = float(np.nanmax(np.abs(z))) or 1.0
    im = ax.pcolormesh(x, y, z, cmap="terrain", vmin=-lim, vmax=lim, shading="auto")
    fig.colorbar(im, ax=ax, label="elevation (m)")
    if eta0 is not None and float(np.nanmax(np.abs(eta0.values))) > 0:
        ax.contour(x, y, eta0.values, levels=6, colors="r", linewidths=0.8)
    for (gx, gy), name in zip(gauges, gauge_names, strict=True):
        ax.plot(gx / 1000.0, gy / 1000.0, "k^", ms=7)
        ax.annotate(name, (gx / 1000.0, gy / 1000.0), xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("x (km)")
    ax.set_ylabel("y (km)")
    ax.set_aspect("equal")
    fig.tight_layout()
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
    return Path(path)
