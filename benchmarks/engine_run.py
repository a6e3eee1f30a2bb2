"""Wall time of a 100×100-cell, 900 s shallow-water run, as `topoae simulate` runs it.

Cases (each run in a fresh subprocess, so the OpenMP thread count is set before the
engine loads):

- ``flat``: a synthetic 500 km square basin, 4000 m deep, Gaussian hump in the middle.
- ``suruga``: the real 15″ GEBCO Suruga Bay grid (../shared/data) resampled to 101×101
  samples (100×100 cells, ~0.93 km), hump at the trough's mouth, coast with wetting/drying.

Engines: those of :mod:`topoae.simulation.engines`, by name, each run through its
:meth:`~topoae.simulation.base.Engine.run`: ``anuga`` (mesh build, initial conditions,
evolution) and ``geoclaw`` (topography, qinit and ``*.data`` files, the Fortran run (one
level, serial) and reading the gauges back). All sample 3 gauges every 5 s. Each engine
is prepared before timing (:meth:`~topoae.simulation.base.Engine.prepare`: GeoClaw's
executable is compiled once per machine and cached); that time is printed separately.
ANUGA runs with each count of ``--threads``; GeoClaw is serial and runs once per case.

For each case, engine and thread count: the median engine wall time over ``--repeat``
runs, and the CPU time per run of the child processes (the steadier figure when other
work shares the cores; it includes interpreter start-up). The 1-minute load average is
printed with each row.

    python benchmarks/engine_run.py [--engines anuga,geoclaw] [--threads 1,2]
                                    [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from topoae.simulation.engines import ENGINES, get_engine

REPO = Path(__file__).resolve().parents[1]
SURUGA = (
    REPO.parent
    / "shared"
    / "data"
    / "gebco_15s"
    / "gebco15s_suruga_bay_138.14-138.97E_34.62-35.46N.nc"
)

CHILD = r"""
import json, sys, time
import numpy as np, xarray as xr
from topoae.simulation.engines import get_engine
from topoae.simulation.projection import to_local_grid
from topoae.simulation.sources import GaussianSource, source_on_grid
case, engine, threads = sys.argv[1], get_engine(sys.argv[2]), int(sys.argv[3])
if case == "flat":
    x = np.linspace(-250e3, 250e3, 101)
    grid = xr.DataArray(np.full((101, 101), -4000.0), dims=("y", "x"),
                        coords={"x": x, "y": x}, attrs={"spacing_m": 5000.0})
    src = GaussianSource(1.0, 20e3)
    gauges = [(100e3, 0.0), (0.0, 150e3), (-200e3, -200e3)]
else:
    from topoae.io import open_grid
    grid = to_local_grid(open_grid(sys.argv[4]), max_cells=101)
    src = GaussianSource(1.0, 4e3, 4e3, -32e3)
    gauges = [(4e3, -5e3), (17.5e3, -21e3), (0.0, -40e3)]
eta0 = source_on_grid(src, grid)
t = time.perf_counter()
cfg = engine.make_config(duration=900.0, every=5.0, threads=threads)
run = engine.run(grid, eta0, gauges, cfg)
print(json.dumps({"wall_s": time.perf_counter() - t, "engine_s": run.wall_s,
                  "samples": int(run.eta.shape[0]),
                  "triangles": run.triangles,
                  "shape": list(grid.shape), "spacing_m": float(grid.attrs["spacing_m"]),
                  "depth_min_m": float(grid.min()),
                  "peak_m": [float(v) for v in np.nanmax(np.abs(run.eta), axis=0)]}))
"""

KEEP = ("samples", "triangles", "shape", "spacing_m", "depth_min_m", "peak_m")


def one(case: str, engine: str, threads: int) -> dict:
    """One run in a fresh interpreter; returns the child's JSON line."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    args = [sys.executable, "-c", CHILD, case, engine, str(threads)]
    if case == "suruga":
        args.append(str(SURUGA))
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed(case: str, engine: str, threads: int, repeat: int) -> dict:
    """``repeat`` runs of one case; median wall time and CPU per run (children included)."""
    c0 = os.times()
    runs = [one(case, engine, threads) for _ in range(repeat)]
    c1 = os.times()
    cpu = (c1.children_user + c1.children_system) - (c0.children_user + c0.children_system)
    walls = [r["engine_s"] for r in runs]
    return {
        "case": case,
        "engine": engine,
        "threads": threads,
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "max_s": max(walls),
        "cpu_per_run_s": cpu / repeat,
        "load_avg": os.getloadavg()[0],
        **{k: runs[0][k] for k in KEEP},
    }


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--engines", default=",".join(ENGINES), help=f"comma-separated: {', '.join(ENGINES)}"
    )
    ap.add_argument("--threads", type=_ints, default=[1, 2], help="ANUGA OpenMP thread counts")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    if set(engines) - set(ENGINES) or not engines:
        ap.error(f"--engines: choose from {', '.join(ENGINES)} (got {a.engines!r})")
    meta: dict = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    meta["prepare_s"] = {}
    for name in engines:
        engine = get_engine(name)
        t = time.perf_counter()
        engine.prepare(progress=lambda m: print(f"{m} ...", flush=True))
        meta["prepare_s"][name] = time.perf_counter() - t
        print(f"{engine.label}: prepared in {meta['prepare_s'][name]:.1f} s")
    cases = ["flat"] + (["suruga"] if SURUGA.exists() else [])
    results = []
    for case in cases:
        for engine in engines:
            for threads in a.threads if engine == "anuga" else [1]:  # GeoClaw runs serial
                row = timed(case, engine, threads, a.repeat)
                results.append(row)
                print(
                    f"{case:7s} {engine:8s} threads={threads}: median {row['median_s']:.2f} s "
                    f"(min {row['min_s']:.2f}, max {row['max_s']:.2f}) over {a.repeat} runs, "
                    f"CPU/run {row['cpu_per_run_s']:.2f} s (incl. start-up), "
                    f"load {row['load_avg']:.1f}, grid {row['shape']}, "
                    f"peaks {[round(p, 3) for p in row['peak_m']]}",
                    flush=True,
                )
    meta["results"] = results
    if a.json:
        a.json.write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
