"""Run GeoClaw (Clawpack's 2-D shallow-water code) on a metric bathymetry grid.

:class:`GeoClawEngine` is the ``"geoclaw"`` :class:`~topoae.simulation.base.Engine`,
the same contract as ANUGA's: one bathymetry, from rest, an initial sea-surface
displacement, the water surface sampled at gauges every ``every`` seconds. GeoClaw
runs in Cartesian metres (``coordinate_system = 1``) on one uniform level (no adaptive
refinement, so runs compare cell for cell with ANUGA): the grid's samples span the
domain and each of its ``(ny-1)·(nx-1)`` cells is one finite volume. Topography is a topotype-3 file, the initial surface a qinit type-4 file
(surface elevation η, wet cells only), walls are ``wall`` (reflective) or ``extrap``
(transmissive) boundaries; Manning friction when ``friction > 0``.

GeoClaw is Fortran: the Python package ``clawpack`` writes the ``*.data`` inputs and reads
gauges back, and the executable ``xgeoclaw`` is compiled once (GeoClaw's own Makefile,
``make .exe``, with gfortran) from Clawpack's Fortran sources and cached. The pip wheel of
clawpack ships no Fortran sources: point ``CLAW`` at a Clawpack source tree (the
unpacked sdist or a git checkout), or unpack the sdist of the installed version into
``<cache>/clawpack-<version>``, where ``<cache>`` is ``$TOPOAE_CACHE`` or
``~/.cache/topoae``. GeoClaw records gauges at its own time steps; they are
interpolated linearly to the sampling times.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import xarray as xr

from topoae.errors import DependencyError, RegionError
from topoae.simulation.base import Engine, EngineConfig, GaugeRun

DRY_TOLERANCE = 1e-3  # m; as ANUGA's gauge reading (NaN while drier than this)

_MAKEFILE = """\
CLAWMAKE = $(CLAW)/clawutil/src/Makefile.common
CLAW_PKG = geoclaw
EXE = xgeoclaw
GEOLIB = $(CLAW)/geoclaw/src/2d/shallow
include $(GEOLIB)/Makefile.geoclaw
SOURCES = \\
  $(CLAW)/riemann/src/rpn2_geoclaw.f \\
  $(CLAW)/riemann/src/rpt2_geoclaw.f \\
  $(CLAW)/riemann/src/geoclaw_riemann_utils.f
include $(CLAWMAKE)
"""


def cache_dir() -> Path:
    """Where Clawpack sources may be unpacked and ``xgeoclaw`` is cached."""
    return Path(os.environ.get("TOPOAE_CACHE") or Path.home() / ".cache" / "topoae")


def import_clawpack():
    """Import clawpack (its data classes); one-line :class:`DependencyError` if missing."""
    # clawpack.pyclaw opens ./pyclaw.log when first imported: keep it out of the caller's
    # folder by importing from the cache folder
    here = os.getcwd()
    logs = cache_dir()
    try:
        logs.mkdir(parents=True, exist_ok=True)
    except OSError:
        logs = Path(tempfile.gettempdir())
    os.chdir(logs)
    try:
        import clawpack
        from clawpack.clawutil import data  # noqa: F401
        from clawpack.geoclaw import data as geodata  # noqa: F401
        from clawpack.pyclaw import gauges  # noqa: F401
    except ImportError:
        raise DependencyError(
            "GeoClaw needs clawpack: pip install 'topoae[simulate]' (or pip install clawpack)"
        ) from None
    finally:
        os.chdir(here)
    return clawpack


def fortran_compiler() -> str:
    """The Fortran compiler (``$FC`` or gfortran) and make; :class:`DependencyError` if absent."""
    fc = os.environ.get("FC") or "gfortran"
    if shutil.which(fc) is None:
        raise DependencyError(
            f"GeoClaw needs a Fortran compiler: {fc} not found (install gfortran)"
        )
    if shutil.which("make") is None:
        raise DependencyError("GeoClaw needs make to build its Fortran code (install make)")
    return fc


def clawpack_sources() -> Path:
    """A Clawpack source tree holding GeoClaw's Fortran (``$CLAW`` or the cache)."""
    version = import_clawpack().__version__
    cands = [os.environ["CLAW"]] if os.environ.get("CLAW") else []
    cands.append(str(cache_dir() / f"clawpack-{version}"))
    for c in cands:
        if (Path(c) / "geoclaw" / "src" / "2d" / "shallow" / "Makefile.geoclaw").is_file():
            return Path(c)
    raise DependencyError(
        f"GeoClaw's Fortran sources not found: set CLAW to a Clawpack {version} source tree "
        f"(pip download clawpack=={version} --no-binary :all: --no-deps, unpack it) "
        f"or unpack it as {cands[-1]}"
    )


def geoclaw_executable() -> Path:
    """Path of ``xgeoclaw``, compiled on first use (GeoClaw's Makefile) and cached.

    The cache key is the clawpack version and the compiler's name; the build runs in a
    temporary folder and the executable is renamed into place, so no half-written
    binary is ever found. (GeoClaw's Makefile puts its object files next to the
    sources, in the Clawpack tree.)
    """
    version = import_clawpack().__version__
    fc = os.environ.get("FC") or "gfortran"
    exe = cache_dir() / f"geoclaw-{version}-{Path(fc).name}" / "xgeoclaw"
    if exe.is_file():
        return exe
    fc = fortran_compiler()
    src = clawpack_sources()
    exe.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="build-", dir=exe.parent) as tmp:
        (Path(tmp) / "Makefile").write_text(_MAKEFILE)
        env = {
            **os.environ,
            "CLAW": str(src),
            "FC": fc,
            "FFLAGS": os.environ.get("FFLAGS", "-O2"),
            "CLAW_PYTHON": os.environ.get("CLAW_PYTHON", sys.executable),
        }
        done = subprocess.run(
            ["make", ".exe"], cwd=tmp, env=env, capture_output=True, text=True, check=False
        )
        built = Path(tmp) / "xgeoclaw"
        if done.returncode != 0 or not built.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            raise DependencyError(f"compiling GeoClaw failed: {tail[0]}")
        os.replace(built, exe)
    return exe


def _write_qinit(path: Path, x: np.ndarray, y: np.ndarray, eta: np.ndarray) -> None:
    """GeoClaw qinit file: ``x y eta`` per line, rows from north to south."""
    gx, gy = np.meshgrid(x, y[::-1])
    np.savetxt(path, np.column_stack([gx.ravel(), gy.ravel(), eta[::-1].ravel()]), fmt="%.10e")


def _rundata(x, y, depth_max: float, gauges: np.ndarray, cfg: EngineConfig):
    """GeoClaw's run data (what a ``setrun.py`` returns) for one uniform-grid run."""
    from clawpack.clawutil import data

    rd = data.ClawRunData("geoclaw", 2)
    cd = rd.clawdata
    cd.lower = [float(x[0]), float(y[0])]
    cd.upper = [float(x[-1]), float(y[-1])]
    cd.num_cells = [x.size - 1, y.size - 1]
    cd.num_eqn, cd.num_aux, cd.capa_index = 3, 1, 0
    cd.t0 = 0.0
    cd.output_style = 1
    cd.num_output_times = 1
    cd.tfinal = float(cfg.duration)
    cd.output_t0 = False
    cd.output_format = "ascii"
    cd.output_q_components = "all"
    cd.output_aux_components = "none"
    cd.verbosity = 0
    cd.dt_variable = True
    dx = min(float(x[1] - x[0]), float(y[1] - y[0]))
    cd.dt_initial = 0.2 * dx / np.sqrt(9.81 * max(depth_max, 1.0))
    cd.dt_max = 1e99
    cd.cfl_desired, cd.cfl_max = 0.75, 1.0
    cd.steps_max = 10**7
    cd.order = 2
    cd.dimensional_split = "unsplit"
    cd.transverse_waves = 2
    cd.num_waves = 3
    cd.limiter = ["mc", "mc", "mc"]
    cd.use_fwaves = True
    cd.source_split = "godunov"
    cd.num_ghost = 2
    bc = "wall" if cfg.boundary == "reflective" else "extrap"
    cd.bc_lower = [bc, bc]
    cd.bc_upper = [bc, bc]
    cd.checkpt_style = 0
    amr = rd.amrdata
    amr.amr_levels_max = 1
    amr.refinement_ratios_x = [2]
    amr.refinement_ratios_y = [2]
    amr.refinement_ratios_t = [2]
    amr.aux_type = ["center"]
    amr.flag_richardson = False
    amr.flag2refine = False
    amr.regrid_interval = 10**6
    geo = rd.geo_data
    geo.gravity = 9.81
    geo.coordinate_system = 1
    geo.coriolis_forcing = False
    geo.sea_level = 0.0
    geo.dry_tolerance = DRY_TOLERANCE
    geo.friction_forcing = cfg.friction > 0
    geo.manning_coefficient = float(cfg.friction)
    geo.friction_depth = 1e6
    rd.refinement_data.variable_dt_refinement_ratios = True
    rd.topo_data.topofiles.append([3, "topo.tt3"])
    rd.qinit_data.qinit_type = 4
    rd.qinit_data.qinitfiles.append(["qinit.xyz"])
    rd.gaugedata.min_time_increment = 0.0
    for i, (gx, gy) in enumerate(gauges):
        rd.gaugedata.gauges.append([i + 1, float(gx), float(gy), 0.0, 1e10])
    return rd


class GeoClawEngine(Engine):
    """GeoClaw's finite volumes on one uniform level (see the module's docstring).

    Of :class:`~topoae.simulation.base.EngineConfig` it ignores ``flow_algorithm``
    (ANUGA's); :attr:`GaugeRun.triangles` is 0 (GeoClaw has cells, ``(ny-1)·(nx-1)``).
    """

    name = "geoclaw"
    label = "GeoClaw"
    config_class = EngineConfig

    def prepare(self, progress: Callable[[str], None] | None = None) -> None:
        if progress is not None:
            progress("preparing GeoClaw (compiled on first use, then cached)")
        geoclaw_executable()

    def _solve(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, e0: np.ndarray,
               pts: np.ndarray, cfg: EngineConfig) -> GaugeRun:
        from topoae.simulation.geoclaw import write_tt3

        exe = geoclaw_executable()  # imports clawpack
        from clawpack.pyclaw.gauges import GaugeSolution

        # η where wet (sea level 0 otherwise), as ANUGA's stage = max(η, b) on wet cells
        eta_init = np.where(z < 0.0, np.maximum(e0, z), 0.0)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="topoae-geoclaw-") as tmp:
            work = Path(tmp)
            grid = xr.DataArray(z, dims=("y", "x"), coords={"x": x, "y": y})
            write_tt3(work / "topo.tt3", grid, fmt="%.6f")
            _write_qinit(work / "qinit.xyz", x, y, eta_init)
            rd = _rundata(x, y, float(-z.min()), pts, cfg)
            rd.write(out_dir=str(work))
            done = subprocess.run(
                [str(exe)],
                cwd=work,
                capture_output=True,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": str(cfg.threads)},
                check=False,
            )
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise RegionError(
                    f"GeoClaw stopped with status {done.returncode}: {' | '.join(tail)}"
                )
            n = int(round(cfg.duration / cfg.every))
            times = np.arange(n + 1) * float(cfg.every)
            times = times[times <= cfg.duration + 1e-9]
            cols = []
            for g in range(len(pts)):
                sol = GaugeSolution(gauge_id=g + 1, path=str(work))
                t = np.asarray(sol.t, np.float64)
                h, eta = np.asarray(sol.q[0], np.float64), np.asarray(sol.q[-1], np.float64)
                t, idx = np.unique(t, return_index=True)  # a time recorded twice: keep one
                eta_t = np.interp(times, t, eta[idx])
                h_t = np.interp(times, t, h[idx])
                cols.append(np.where(h_t > DRY_TOLERANCE, eta_t, np.nan))
        wall = time.perf_counter() - t0
        return GaugeRun(time=times, eta=np.stack(cols, axis=1), wall_s=wall, triangles=0)


#: The function form, :meth:`GeoClawEngine.run`
#: (``run_geoclaw(bathymetry, eta0, gauges, config)``).
run_geoclaw = GeoClawEngine().run
