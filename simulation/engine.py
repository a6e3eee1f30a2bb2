"""Run ANUGA (2-D nonlinear shallow-water equations) on a metric bathymetry grid.

:class:`AnugaEngine` is the ``"anuga"`` :class:`~topoae.simulation.base.Engine`: one
call runs one bathymetry from rest with an initial sea-surface displacement and
samples the water surface at gauges every ``every`` seconds. The mesh is
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
from collections.abc import Callable

import numpy as np

from topoae.errors import DependencyError
from topoae.simulation.base import (
    FLOW_ALGORITHMS,
    Engine,
    EngineConfig,
    GaugeRun,
    engine_inputs,
)

__all__ = [
    "FLOW_ALGORITHMS",
    "AnugaEngine",
    "EngineConfig",
    "GaugeRun",
    "engine_inputs",
    "import_anuga",
    "run_anuga",
]


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


class AnugaEngine(Engine):
    """ANUGA's finite volumes on the structured cross mesh (see the module's docstring)."""

    name = "anuga"
    label = "ANUGA"
    config_class = EngineConfig

    def prepare(self, progress: Callable[[str], None] | None = None) -> None:
        import_anuga()

    def _solve(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, e0: np.ndarray,
               pts: np.ndarray, cfg: EngineConfig) -> GaugeRun:
        from scipy.interpolate import RegularGridInterpolator

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
            # Stage at centroids: set at vertices, a coastal triangle with wet and dry corners
            # would hold water above sea level on land, which then runs off (spurious waves at
            # rest).
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


#: The function form, :meth:`AnugaEngine.run` (``run_anuga(bathymetry, eta0, gauges, config)``).
run_anuga = AnugaEngine().run
