"""Run ANUGA (2-D nonlinear shallow-water equations) on a metric bathymetry grid.

One call runs one bathymetry from rest with an initial sea-surface displacement
and samples the water surface at gauges every ``every`` seconds. The mesh is
ANUGA's structured "cross" mesh: one vertex per grid sample, four triangles per
grid cell, so a grid of (ny, nx) samples gives 4·(nx−1)·(ny−1) triangles.
Boundaries are reflective walls (or transmissive) on all four sides.

ANUGA's kernels use OpenMP; small runs are several times faster on one thread
(``threads=1``, the default), so the thread count is set before each run.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from dataclasses import dataclass

import numpy as np
import xarray as xr

from topoae.errors import ConfigError, DependencyError, RegionError

FLOW_ALGORITHMS = ("DE0", "DE1", "DE2")


@dataclass(frozen=True)
class EngineConfig:
    """ANUGA run settings (recorded in the outputs of ``topoae simulate``).

    ``friction`` is Manning's n; ``boundary`` is ``"reflective"`` or ``"transmissive"``.
    """

    duration: float = 7500.0
    every: float = 5.0
    flow_algorithm: str = "DE0"
    friction: float = 0.0
    boundary: str = "reflective"
    threads: int = 1

    def __post_init__(self) -> None:
        if not (self.duration > 0 and self.every > 0 and self.every <= self.duration):
            raise ConfigError("duration and sampling interval must be > 0 s, interval ≤ duration")
        if self.flow_algorithm not in FLOW_ALGORITHMS:
            raise ConfigError(f"flow algorithm must be one of {', '.join(FLOW_ALGORITHMS)}")
        if self.boundary not in ("reflective", "transmissive"):
            raise ConfigError("boundary must be 'reflective' or 'transmissive'")
        if self.friction < 0 or self.threads < 1:
            raise ConfigError("friction must be ≥ 0 and threads ≥ 1")


@dataclass(frozen=True)
class GaugeRun:
    """Water-surface elevation (m above still water) at gauges: ``eta[time, gauge]``."""

    time: np.ndarray
    eta: np.ndarray
    wall_s: float
    triangles: int


def import_anuga():
    """Import ANUGA quietly (it prints an MPI notice on import); clear error if missing."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import anuga
    except ImportError:
        raise DependencyError(
            "ANUGA is not installed: pip install 'topoae[simulate]' (or pip install anuga)"
        ) from None
    return anuga


def engine_inputs(
    bathymetry: xr.DataArray, eta0: xr.DataArray | np.ndarray, gauges: list[tuple[float, float]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check an engine's inputs; returns ``x, y, z, eta0, gauges`` as float64 arrays."""
    x = np.asarray(bathymetry["x"].values, np.float64)
    y = np.asarray(bathymetry["y"].values, np.float64)
    z = np.asarray(bathymetry.values, np.float64)
    e0 = np.asarray(getattr(eta0, "values", eta0), np.float64)
    if e0.shape != z.shape:
        raise ConfigError(f"initial displacement shape {e0.shape} != bathymetry {z.shape}")
    if not (np.all(np.isfinite(z)) and np.all(np.isfinite(e0))):
        raise RegionError("bathymetry and initial displacement must hold no NaN")
    if x.size < 3 or y.size < 3:
        raise RegionError("the simulation grid needs at least 3×3 samples")
    pts = np.asarray(gauges, np.float64).reshape(-1, 2)
    if pts.size == 0:
        raise ConfigError("give at least one gauge")
    inside = (pts[:, 0] >= x[0]) & (pts[:, 0] <= x[-1]) & (pts[:, 1] >= y[0]) & (pts[:, 1] <= y[-1])
    if not inside.all():
        raise RegionError(f"gauge {pts[~inside][0].tolist()} (m) lies outside the domain")
    return x, y, z, e0, pts


def run_anuga(
    bathymetry: xr.DataArray,
    eta0: xr.DataArray | np.ndarray,
    gauges: list[tuple[float, float]],
    config: EngineConfig | None = None,
) -> GaugeRun:
    """Run ANUGA on a metric grid and sample the water surface at ``gauges``.

    Parameters
    ----------
    bathymetry
        ``z(y, x)`` in metres, positive up, regular ``x``/``y`` in metres (no NaN), e.g. from
        :func:`topoae.simulation.projection.to_local_grid`.
    eta0
        Initial sea-surface displacement (m) on the same cells (added over wet cells only).
    gauges
        ``(x, y)`` in the grid's metres; each must lie inside the grid.
    config
        :class:`EngineConfig`.

    Returns
    -------
    GaugeRun
        ``time`` (s, from 0 to duration every ``every``) and ``eta`` (m), shape (T, G);
        a gauge on dry land reads NaN while dry.
    """
    from scipy.interpolate import RegularGridInterpolator

    cfg = config or EngineConfig()
    x, y, z, e0, pts = engine_inputs(bathymetry, eta0, gauges)

    os.environ["OMP_NUM_THREADS"] = str(cfg.threads)
    anuga = import_anuga()
    anuga.set_omp_num_threads(cfg.threads, verbose=False)

    elev = RegularGridInterpolator((y, x), z, bounds_error=False, fill_value=None)
    disp = RegularGridInterpolator((y, x), e0, bounds_error=False, fill_value=None)

    def f_elev(px, py):
        return elev(np.stack([py, px], axis=-1))

    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        domain = anuga.rectangular_cross_domain(
            x.size - 1,
            y.size - 1,
            len1=float(x[-1] - x[0]),
            len2=float(y[-1] - y[0]),
            origin=(float(x[0]), float(y[0])),
        )
        domain.set_store(False)
        domain.set_flow_algorithm(cfg.flow_algorithm)
        domain.set_quantity("elevation", f_elev, location="vertices")
        domain.set_quantity("friction", float(cfg.friction))
        # Stage at centroids: set at vertices, a coastal triangle with wet and dry corners would
        # hold water above sea level on land, which then runs off (spurious waves at rest).
        cxy = domain.get_centroid_coordinates(absolute=True)
        bed_c = domain.quantities["elevation"].centroid_values
        eta_c = disp(np.stack([cxy[:, 1], cxy[:, 0]], axis=-1))
        stage_c = np.where(bed_c < 0.0, np.maximum(eta_c, bed_c), bed_c)
        domain.set_quantity("stage", numeric=stage_c, location="centroids")
        if cfg.boundary == "reflective":
            br = anuga.Reflective_boundary(domain)
        else:
            br = anuga.Transmissive_boundary(domain)
        domain.set_boundary({"left": br, "right": br, "top": br, "bottom": br})
        # the triangle holding each gauge, found once; its centroid value is sampled
        tri = np.array([domain.get_triangle_containing_point(p) for p in pts], dtype=np.int64)
        stage_q = domain.quantities["stage"]
        bed = domain.quantities["elevation"].centroid_values[tri].copy()
        times, rows = [], []
        for t in domain.evolve(yieldstep=float(cfg.every), finaltime=float(cfg.duration)):
            s = stage_q.centroid_values[tri]
            rows.append(np.where(s - bed > 1e-3, s, np.nan))
            times.append(float(t))
    wall = time.perf_counter() - t0
    return GaugeRun(
        time=np.asarray(times),
        eta=np.asarray(rows, np.float64),
        wall_s=wall,
        triangles=int(domain.number_of_triangles),
    )
