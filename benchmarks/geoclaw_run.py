"""Wall time of a 100×100-cell, 900 s GeoClaw run: the cases of ``anuga_run.py``.

Cases (each run in a fresh subprocess, like ``anuga_run.py``):

- ``flat``: a synthetic 500 km square basin, 4000 m deep, Gaussian hump in the middle.
- ``suruga``: the real 15″ GEBCO Suruga Bay grid (../shared/data) resampled to 101×101
  samples (100×100 cells, ~0.93 km), hump at the trough's mouth, coast with wetting/drying.

A run is :func:`topoae.simulation.geoclaw_engine.run_geoclaw`: writing topography,
qinit and ``*.data`` files, the Fortran run (one level, no refinement, serial) and
reading the 3 gauges back at 5 s. The executable is compiled before timing (once per
machine, cached); its compile time is reported separately when it was not cached.
With ``--anuga`` the ANUGA run of the same case is timed beside it (1 thread).

    python benchmarks/geoclaw_run.py [--repeat 3] [--anuga] [--json out.json]
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
from topoae.simulation.engine import EngineConfig, run_anuga
from topoae.simulation.geoclaw_engine import run_geoclaw
from topoae.simulation.projection import to_local_grid
from topoae.simulation.sources import GaussianSource, source_on_grid
case, engine = sys.argv[1], sys.argv[2]
if case == "flat":
    x = np.linspace(-250e3, 250e3, 101)
    grid = xr.DataArray(np.full((101, 101), -4000.0), dims=("y", "x"),
                        coords={"x": x, "y": x}, attrs={"spacing_m": 5000.0})
    src = GaussianSource(1.0, 20e3)
    gauges = [(100e3, 0.0), (0.0, 150e3), (-200e3, -200e3)]
else:
    from topoae.io import open_grid
    grid = to_local_grid(open_grid(sys.argv[3]), max_cells=101)
    src = GaussianSource(1.0, 4e3, 4e3, -32e3)
    gauges = [(4e3, -5e3), (17.5e3, -21e3), (0.0, -40e3)]
eta0 = source_on_grid(src, grid)
run_fn = run_geoclaw if engine == "geoclaw" else run_anuga
t, c = time.perf_counter(), time.process_time()
run = run_fn(grid, eta0, gauges, EngineConfig(duration=900.0, every=5.0, threads=1))
print(json.dumps({"wall_s": time.perf_counter() - t, "engine_s": run.wall_s,
                  "cpu_s": time.process_time() - c, "samples": int(run.eta.shape[0]),
                  "shape": list(grid.shape), "spacing_m": float(grid.attrs["spacing_m"]),
                  "peak_m": [float(v) for v in np.nanmax(np.abs(run.eta), axis=0)]}))
"""


def one(case: str, engine: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", CHILD, case, engine]
    if case == "suruga":
        args.append(str(SURUGA))
    t = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    # the child's CPU time misses the Fortran subprocess: count the children's too
    row["process_s"] = time.perf_counter() - t
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--anuga", action="store_true", help="also time ANUGA on each case")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    from topoae.simulation.geoclaw_engine import cache_dir, geoclaw_executable

    t = time.perf_counter()
    exe = geoclaw_executable()
    compile_s = time.perf_counter() - t
    print(f"xgeoclaw: {exe} ({compile_s:.1f} s to find or compile; cache {cache_dir()})")
    cases = ["flat"] + (["suruga"] if SURUGA.exists() else [])
    engines = ["geoclaw"] + (["anuga"] if a.anuga else [])
    results = []
    for case in cases:
        for engine in engines:
            c0 = os.times()
            runs = [one(case, engine) for _ in range(a.repeat)]
            c1 = os.times()
            cpu_children = (c1.children_user + c1.children_system) - (
                c0.children_user + c0.children_system
            )
            walls = [r["engine_s"] for r in runs]
            row = {
                "case": case,
                "engine": engine,
                "median_s": statistics.median(walls),
                "min_s": min(walls),
                "max_s": max(walls),
                "cpu_per_run_s": cpu_children / a.repeat,
                "load_avg": os.getloadavg()[0],
                **{k: runs[0][k] for k in ("samples", "shape", "spacing_m", "peak_m")},
            }
            results.append(row)
            print(
                f"{case:7s} {engine:8s}: median {row['median_s']:.2f} s "
                f"(min {row['min_s']:.2f}, max {row['max_s']:.2f}) over {a.repeat} runs, "
                f"CPU/run {row['cpu_per_run_s']:.2f} s (incl. start-up), "
                f"load {row['load_avg']:.1f}, grid {row['shape']}, "
                f"peaks {[round(p, 3) for p in row['peak_m']]}",
                flush=True,
            )
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "compile_or_lookup_s": compile_s,
        "results": results,
    }
    if a.json:
        a.json.write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
