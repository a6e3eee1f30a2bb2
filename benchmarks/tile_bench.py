"""Tiling throughput and peak memory: a synthetic 20000×20000 int16 GEBCO grid and the largest real grid.

Each case runs ``topoae tile`` in a fresh subprocess and reads its peak RSS
(``ru_maxrss`` of the child), so the figure is the whole process's high-water mark.

    python benchmarks/tile_bench.py [--size 20000] [--workdir /tmp/topoae-bench]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource  # noqa: F401  (used in the child's code)
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "etopo_global" / "etopo5_global_5min_ferret.cdf"


def run_case(name: str, grid: Path, out: Path, extra: list[str]) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    args = ["tile", str(grid), "--out", str(out), *extra]
    # The child reports its own high-water mark (RUSAGE_CHILDREN would be the max over all cases).
    code = ("import resource, sys\nfrom topoae.cli.main import main\ntry:\n    main(sys.argv[1:])\n"
            "except SystemExit as e:\n    rc = e.code\n"
            "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\nsys.exit(rc)")
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    secs = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"{name}: {proc.stderr.strip()}")
    peak_kb = int(proc.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    import xarray as xr

    with xr.open_dataset(grid, decode_times=False) as ds:
        var = next(v for v in ds.data_vars if ds[v].ndim == 2)
        cells = ds[var].size
        in_mb = cells * ds[var].dtype.itemsize / 1e6
    return {
        "case": name,
        "cells": cells,
        "input_MB": in_mb,
        "seconds": secs,
        "MB_s": in_mb / secs,
        "Mcells_s": cells / secs / 1e6,
        "peak_rss_MB": peak_kb / 1024,
        "summary": proc.stdout.strip().splitlines()[-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=20000)
    ap.add_argument("--workdir", default="/tmp/topoae-bench")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    grid = work / f"synthetic_{args.size}.nc"
    if not grid.exists():
        from topoae.io.synthetic import write_synthetic_gebco

        t = time.perf_counter()
        write_synthetic_gebco(grid, args.size, args.size, seed=0)
        print(f"generated {grid} in {time.perf_counter() - t:.0f} s")
    rows = [run_case(f"synthetic {args.size}x{args.size} int16", grid, work / "syn.zarr", [])]
    rows.append(
        run_case(
            f"synthetic {args.size}x{args.size} int16, stride 48, patch norm",
            grid,
            work / "syn48.zarr",
            ["--stride", "48", "--normalise", "patch"],
        )
    )
    if REAL.exists():
        rows.append(run_case("ETOPO5 global 2161x4320 float32", REAL, work / "etopo5.zarr", []))
    print(
        f"\nTiling benchmark, {dt.date.today()}, {platform.node()} ({os.cpu_count()} cores), "
        f"Python {platform.python_version()}\n"
    )
    print("| case | cells | input MB | s | input MB/s | Mcells/s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {r['cells']:,} | {r['input_MB']:.0f} | {r['seconds']:.1f} | {r['MB_s']:.1f} | "
            f"{r['Mcells_s']:.2f} | {r['peak_rss_MB']:.0f} |"
        )
    for r in rows:
        print(f"- {r['case']}: {r['summary']}")


if __name__ == "__main__":
    main()
