"""Wall time of a 100×100-cell, 900 s ANUGA run, as `topoae simulate` runs it.

Cases (each in a fresh subprocess, so the OpenMP thread count is set before ANUGA loads):

- ``flat``: a synthetic 500 km square basin, 4000 m deep, Gaussian hump in the middle.
- ``suruga``: the real 15″ GEBCO Suruga Bay grid (../shared/data) resampled to 101×101
  samples (100×100 cells, ~0.93 km), hump at the trough's mouth, coast with wetting/drying.

Each case runs with 1 and 2 OpenMP threads, ``--repeat`` times; the median wall time and
the median CPU time of the process are reported (CPU time is the steadier figure when
other work shares the 2 cores; the 1-minute load average is printed with each case).
A run is the engine only (:func:`topoae.simulation.engine.run_anuga`): mesh build,
initial conditions, evolution and gauge sampling every 5 s at 3 gauges.

    python benchmarks/anuga_run.py [--repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
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
from topoae.simulation.projection import to_local_grid
from topoae.simulation.sources import GaussianSource, source_on_grid
case, threads = sys.argv[1], int(sys.argv[2])
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
t, c = time.perf_counter(), time.process_time()
run = run_anuga(grid, eta0, gauges, EngineConfig(duration=900.0, every=5.0, threads=threads))
print(json.dumps({"wall_s": time.perf_counter() - t, "engine_s": run.wall_s,
                  "cpu_s": time.process_time() - c,
                  "triangles": run.triangles, "samples": int(run.eta.shape[0]),
                  "shape": list(grid.shape), "spacing_m": float(grid.attrs["spacing_m"]),
                  "depth_min_m": float(grid.min())}))
"""


def one(case: str, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    args = [sys.executable, "-c", CHILD, case, str(threads)]
    if case == "suruga":
        args.append(str(SURUGA))
    out = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    cases = ["flat"] + (["suruga"] if SURUGA.exists() else [])
    results = []
    for case in cases:
        for threads in (1, 2):
            runs = [one(case, threads) for _ in range(a.repeat)]
            walls = [r["engine_s"] for r in runs]
            cpus = [r["cpu_s"] for r in runs]
            row = {
                "case": case,
                "threads": threads,
                "median_s": statistics.median(walls),
                "min_s": min(walls),
                "max_s": max(walls),
                "cpu_median_s": statistics.median(cpus),
                "load_avg": os.getloadavg()[0],
                **{
                    k: runs[0][k]
                    for k in ("triangles", "samples", "shape", "spacing_m", "depth_min_m")
                },
            }
            results.append(row)
            print(
                f"{case:7s} threads={threads}: median {row['median_s']:.2f} s "
                f"(min {row['min_s']:.2f}, max {row['max_s']:.2f}) over {a.repeat} runs, "
                f"CPU {row['cpu_median_s']:.2f} s, load {row['load_avg']:.1f}, "
                f"{row['triangles']} triangles, grid {row['shape']}",
                flush=True,
            )
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "results": results,
    }
    if a.json:
        a.json.write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
