"""The shallow-water check: original vs reconstructed (vs flat) bathymetry, gauge by gauge.

:func:`shallow_water_check` puts the original on a local metric grid, resamples
every compared grid (and every ensemble member) onto exactly those cells, adds a
flat baseline at the original's mean depth, runs the engine on each from the same
initial sea surface, and compares each run's gauge series with the original's.
:func:`write_check` writes the series (CSV), metrics (CSV and JSON), the figure and
a record of the configuration.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Hashable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from topoae._atomic import atomic_path
from topoae._json import jsonable
from topoae._version import __version__
from topoae.errors import ConfigError, InputError, RegionError
from topoae.simulation.base import Engine, EngineConfig, GaugeRun
from topoae.simulation.engines import DEFAULT_ENGINE, engine_class, get_engine, parse_engine
from topoae.simulation.gauges import compare_series, quantile_bands
from topoae.simulation.projection import (
    LocalProjection,
    local_points,
    regrid_like,
    to_local_grid,
)
from topoae.simulation.sources import (
    GaussianSource,
    OkadaSource,
    align_displacement,
    check_displacement,
    source_on_grid,
)

QUANTILES = (0.05, 0.5, 0.95)


@dataclass(frozen=True)
class CheckConfig:
    """What a check runs (recorded in ``run.json``).

    ``gauges`` and ``origin`` are ``(lon, lat)`` for geographic grids, ``(x, y)`` metres for
    projected ones; with no gauges, three are placed automatically in deep water.
    ``max_cells`` caps the samples per axis of the simulation grid (run time grows with
    its square); ``flat`` adds the flat baseline at the original's mean depth.
    ``amplitude``/``radius`` (m) and ``source_at`` (like ``gauges``; default the origin)
    define the default Gaussian source; ``radius=None`` is 5 % of the domain's short side
    (at least 3 cells). ``engine_name`` picks the shallow-water code by its name in
    :mod:`topoae.simulation.engines` (``"anuga"``, ``"geoclaw"``); ``engine`` holds its
    settings, an instance of that engine's ``config_class``.
    """

    engine: EngineConfig = field(default_factory=EngineConfig)
    gauges: tuple[tuple[float, float], ...] = ()
    origin: tuple[float, float] | None = None
    spacing: float | None = None
    max_cells: int | None = 150
    flat: bool = True
    rel_threshold: float = 0.05
    amplitude: float = 1.0
    radius: float | None = None
    source_at: tuple[float, float] | None = None
    engine_name: str = DEFAULT_ENGINE

    def __post_init__(self) -> None:
        object.__setattr__(self, "engine_name", parse_engine(self.engine_name))
        wanted = engine_class(self.engine_name).config_class
        if not isinstance(self.engine, wanted):
            raise ConfigError(
                f"engine {self.engine_name!r} takes {wanted.__name__} settings, "
                f"not {type(self.engine).__name__}"
            )


@dataclass
class CheckResult:
    """Everything a check produced (in memory)."""

    time: np.ndarray
    series: dict[str, np.ndarray]  # run name -> eta[time, gauge]
    bands: dict[str, np.ndarray]  # ensemble name -> [q, time, gauge]
    members: dict[str, np.ndarray]  # ensemble name -> [member, time, gauge]
    metrics: list[dict]  # one row per (run, gauge)
    gauges_m: list[tuple[float, float]]
    gauges_lonlat: list[tuple[float, float]] | None
    grid: xr.DataArray
    eta0: xr.DataArray
    wall_s: dict[str, float]
    record: dict


def default_gauges(
    grid: xr.DataArray, source_xy: tuple[float, float] = (0.0, 0.0), n: int = 3
) -> list[tuple[float, float]]:
    """Deep-water points at growing distances from the source (local metres)."""
    x, y = grid["x"].values, grid["y"].values
    z = grid.values
    gx, gy = np.meshgrid(x, y)
    wet = z < min(-10.0, 0.5 * float(np.nanmin(z)))
    if not wet.any():
        wet = z < 0
    if not wet.any():
        raise RegionError("the original bathymetry has no cell below sea level")
    inner = np.zeros_like(wet)
    inner[2:-2, 2:-2] = True
    cand = wet & inner if (wet & inner).any() else wet
    r = np.hypot(gx - source_xy[0], gy - source_xy[1])
    rmax = float(r[cand].max())
    out = []
    for frac in np.linspace(0.3, 0.75, n):
        i = np.unravel_index(np.argmin(np.where(cand, np.abs(r - frac * rmax), np.inf)), r.shape)
        out.append((float(gx[i]), float(gy[i])))
    return out


def load_ensemble(path: str | os.PathLike) -> list[xr.DataArray] | None:
    """Members of a ``topoae sample`` ensemble (a ``member`` dim), canonical; None if not one."""
    from topoae.io import open_grid

    try:
        ds = xr.open_dataset(path)
    except Exception:  # not NetCDF/xarray-readable: let open_grid report it
        return None
    with ds:
        names = [n for n, v in ds.data_vars.items() if "member" in v.dims and v.ndim == 3]
        if not names:
            return None
        var = "elevation" if "elevation" in names else names[0]
        spatial = [d for d in ds[var].dims if d != "member"]
        # topoae sample writes <var>_mean / <var>_std next to the members
        ref_name = next((n for n in (f"{var}_mean", "mean") if n in ds.data_vars), None)
        if ref_name is not None and set(ds[ref_name].dims) == set(spatial):
            spatial = list(ds[ref_name].dims)  # same axis order as the mean's
        raw = ds[var].transpose("member", *spatial).load()
    ref = open_grid(path, var=ref_name) if ref_name is not None else None
    members = []
    for i in range(raw.sizes["member"]):
        m = raw.isel(member=i, drop=True)
        if ref is not None:
            m = m.rename(dict(zip(m.dims, ref.dims, strict=True)))
            m = m.sortby(list(m.dims)).reindex_like(ref, method="nearest")
            m.attrs = dict(ref.attrs)
        else:
            canon: dict[Hashable, str] = {
                "lat": "lat",
                "latitude": "lat",
                "lon": "lon",
                "longitude": "lon",
                "y": "y",
                "x": "x",
            }
            if any(d not in canon for d in m.dims):
                raise InputError(
                    f"ensemble {path}: cannot tell the axes {m.dims}; "
                    "write a 'mean' variable or name dims lat/lon or y/x"
                )
            m = m.rename({d: canon[d] for d in m.dims}).sortby(list(m.dims))
        m = m.astype(np.float64)
        m.attrs["source"] = f"{path}[member={i}]"
        members.append(m)
    if len(members) < 2:
        raise InputError(f"ensemble {path} has fewer than two members")
    return members


def _run(
    engine: Engine,
    name: str,
    grid: xr.DataArray,
    eta0: xr.DataArray,
    gauges,
    cfg: CheckConfig,
    wall: dict,
) -> GaugeRun:
    run = engine.run(grid, eta0, gauges, cfg.engine)
    wall[name] = run.wall_s
    return run


def shallow_water_check(
    original: xr.DataArray,
    *,
    compared: dict[str, xr.DataArray] | None = None,
    ensembles: dict[str, list[xr.DataArray]] | None = None,
    source: GaussianSource | OkadaSource | xr.DataArray | None = None,
    config: CheckConfig | None = None,
    progress=None,
) -> CheckResult:
    """Run the engine on the original, each compared grid, each member and a flat baseline.

    Parameters
    ----------
    original
        Canonical grid (:func:`topoae.io.open_grid`), metres positive up.
    compared
        ``name -> grid``: reconstructions to judge; each must cover the original's domain.
    ensembles
        ``name -> [member grids]`` (e.g. from :func:`load_ensemble`).
    source
        Initial sea surface: a :class:`GaussianSource` (local metres), an
        :class:`OkadaSource`, or a displacement grid (a projected one on a geographic
        original is reprojected from its CRS, :func:`~.sources.align_displacement`);
        default the Gaussian hump that ``config`` describes.
    config
        :class:`CheckConfig`.
    progress
        Optional callable ``progress(message)`` told before each run.
    """
    cfg = config or CheckConfig()
    engine = get_engine(cfg.engine_name)
    tell = progress or (lambda _msg: None)
    grid = to_local_grid(original, origin=cfg.origin, spacing=cfg.spacing, max_cells=cfg.max_cells)
    if float(grid.min()) >= 0:
        raise RegionError("the original bathymetry has no cell below sea level")
    x, y = grid["x"].values, grid["y"].values
    if source is None:
        span = min(x[-1] - x[0], y[-1] - y[0])
        radius = cfg.radius or max(0.05 * span, 3 * grid.attrs["spacing_m"])
        sx, sy = local_points([cfg.source_at], grid)[0] if cfg.source_at else (0.0, 0.0)
        source = GaussianSource(amplitude=cfg.amplitude, radius=radius, x=sx, y=sy)
    if isinstance(source, xr.DataArray):
        source = align_displacement(source, original)  # x/y on lon/lat: from its CRS
        check_displacement(source, original, wrap_lon=True)
        # 0 outside the displacement grid, as in the ExaHyPE and GeoClaw inputs
        eta0 = regrid_like(source, grid, fill=False, must_cover=False).fillna(0.0)
    else:
        eta0 = source_on_grid(source, grid)
    src_xy = (source.x, source.y) if isinstance(source, GaussianSource) else (0.0, 0.0)
    gauges = local_points(cfg.gauges, grid) if cfg.gauges else default_gauges(grid, src_xy)
    geographic = "origin_lon" in grid.attrs
    lonlat = None
    if geographic:
        proj = LocalProjection(grid.attrs["origin_lon"], grid.attrs["origin_lat"])
        lo, la = proj.inverse([g[0] for g in gauges], [g[1] for g in gauges])
        lonlat = [
            (float(a), float(b)) for a, b in zip(np.atleast_1d(lo), np.atleast_1d(la), strict=True)
        ]
    wall: dict[str, float] = {}
    tell("original")
    ref = _run(engine, "original", grid, eta0, gauges, cfg, wall)
    series = {"original": ref.eta}
    for name, da in (compared or {}).items():
        if name in series:
            raise ConfigError(f"two runs are named {name!r}")
        tell(name)
        series[name] = _run(engine, name, regrid_like(da, grid), eta0, gauges, cfg, wall).eta
    if cfg.flat:
        wet = grid.values < 0
        depth = float(grid.values[wet].mean())
        flat = grid.copy(data=np.full(grid.shape, depth))
        tell(f"flat ({depth:.0f} m)")
        series[f"flat {depth:.0f} m"] = _run(engine, "flat", flat, eta0, gauges, cfg, wall).eta
    members: dict[str, np.ndarray] = {}
    bands: dict[str, np.ndarray] = {}
    for name, mlist in (ensembles or {}).items():
        runs = []
        for i, m in enumerate(mlist):
            tell(f"{name} member {i + 1}/{len(mlist)}")
            runs.append(
                _run(engine, f"{name}[{i}]", regrid_like(m, grid), eta0, gauges, cfg, wall).eta
            )
        members[name] = np.stack(runs)
        bands[name] = quantile_bands(members[name], QUANTILES)
    t = ref.time
    names = [f"G{i + 1}" for i in range(len(gauges))]
    rows = []
    others = [(n, s) for n, s in series.items() if n != "original"]
    others += [(f"{n} median", b[len(QUANTILES) // 2]) for n, b in bands.items()]
    others += [(f"{n}[{i}]", mem[i]) for n, mem in members.items() for i in range(len(mem))]
    for name, s in others:
        for g, gname in enumerate(names):
            m = compare_series(t, ref.eta[:, g], s[:, g], rel_threshold=cfg.rel_threshold)
            rows.append({"run": name, "gauge": gname, **m.as_dict()})
    record = {
        "topoae_version": __version__,
        "engine": cfg.engine_name,
        "config": asdict(cfg),
        "original": original.attrs.get("source"),
        "compared": {n: da.attrs.get("source") for n, da in (compared or {}).items()},
        "ensembles": {n: len(v) for n, v in (ensembles or {}).items()},
        "source": (
            source.describe()
            if isinstance(source, OkadaSource)
            else asdict(source)
            if isinstance(source, GaussianSource)
            else {
                "grid": source.attrs.get("source"),
                "frame": source.attrs.get("reprojected_from"),
            }
        ),
        "grid": {
            "nx": int(x.size),
            "ny": int(y.size),
            "spacing_m": grid.attrs["spacing_m"],
            "projection": grid.attrs.get("projection"),
            "origin": {k: v for k, v in grid.attrs.items() if k.startswith("origin")},
            "filled_cells": grid.attrs.get("filled_cells"),
            "triangles": ref.triangles,  # ANUGA's mesh; 0 for GeoClaw
            "cells": int((x.size - 1) * (y.size - 1)),
        },
        "gauges": [
            {
                "name": n,
                "x_m": g[0],
                "y_m": g[1],
                **({"lon": lonlat[i][0], "lat": lonlat[i][1]} if lonlat else {}),
            }
            for i, (n, g) in enumerate(zip(names, gauges, strict=True))
        ],
        "wall_s": wall,
    }
    return CheckResult(
        time=t,
        series=series,
        bands=bands,
        members=members,
        metrics=rows,
        gauges_m=gauges,
        gauges_lonlat=lonlat,
        grid=grid,
        eta0=eta0,
        wall_s=wall,
        record=record,
    )


def _fmt(v) -> str:
    return (
        ""
        if isinstance(v, float) and not np.isfinite(v)
        else (f"{v:.6g}" if isinstance(v, float) else str(v))
    )


def write_check(
    result: CheckResult, out_dir: str | os.PathLike, *, overwrite: bool = False
) -> dict[str, Path]:
    """Write gauge CSVs, ``metrics.csv``/``.json``, ``gauges.png``, ``domain.png``, ``run.json``."""
    from topoae.simulation.figures import plot_domain, plot_gauges

    names = [f"G{i + 1}" for i in range(len(result.gauges_m))]
    out = Path(out_dir)
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir(parents=True)
        for g, gname in enumerate(names):
            cols = ["time_s", *result.series]
            data = [result.time, *(s[:, g] for s in result.series.values())]
            for ens, band in result.bands.items():
                for q, b in zip(QUANTILES, band, strict=True):
                    cols.append(f"{ens} q{int(round(q * 100)):02d}")
                    data.append(b[:, g])
            with open(tmp / f"gauge_{gname}.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(cols)
                for row in zip(*data, strict=True):
                    w.writerow([_fmt(float(v)) for v in row])
        if result.metrics:
            with open(tmp / "metrics.csv", "w", newline="") as fh:
                dw = csv.DictWriter(fh, fieldnames=list(result.metrics[0]))
                dw.writeheader()
                for r in result.metrics:
                    dw.writerow({k: _fmt(v) for k, v in r.items()})
        clean = jsonable(result.metrics, strict=True)
        (tmp / "metrics.json").write_text(json.dumps(clean, indent=2) + "\n")
        (tmp / "run.json").write_text(json.dumps(result.record, indent=2, default=str) + "\n")
        plot_gauges(
            tmp / "gauges.png",
            result.time,
            result.series,
            gauge_names=names,
            bands=result.bands,
            title="Water height at gauges",
        )
        plot_domain(tmp / "domain.png", result.grid, result.gauges_m, names, result.eta0)
    return {p.name: p for p in sorted(out.iterdir())}
