"""Peak memory and time of ``topoae encode`` / ``decode`` (learned codec) against region size.

    python benchmarks/rd_memory.py --model topoae/weights/topoae-hyperprior-gebco15.pt [--sizes 1024,2048,4096]

Writes synthetic GEBCO-format NetCDF grids (int16, ``topoae.io.synthetic``) of each size,
runs the real CLI under ``/usr/bin/time -v`` with one torch thread, and records the peak
resident memory and the wall time of encode and decode. Bounded memory shows as a peak
that stays flat while the grid grows. Writes ``rd_memory.json`` / ``rd_memory.md`` under --out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str]) -> tuple[float, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    r = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    rss = float(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) / 1024
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", r.stderr).group(1)
    parts = [float(p) for p in m.split(":")]
    wall = sum(p * 60 ** k for k, p in enumerate(reversed(parts)))
    return rss, wall


def main() -> None:
    from topoae.io.synthetic import write_synthetic_gebco

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--sizes", default="1024,2048,4096")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(v) for v in a.sizes.split(",")):
            src = Path(tmp) / f"g{n}.nc"
            write_synthetic_gebco(src, n, n, seed=1)
            tae, rec = Path(tmp) / f"g{n}.tae", Path(tmp) / f"g{n}_rec.nc"
            e_rss, e_wall = timed(["topoae", "encode", str(src), "--model", a.model, "--quality", "3",
                                   "--out", str(tae)])
            d_rss, d_wall = timed(["topoae", "decode", str(tae), "--model", a.model, "--out", str(rec)])
            rows.append({"size": n, "cells": n * n, "bytes": tae.stat().st_size,
                         "encode_peak_mb": e_rss, "encode_s": e_wall,
                         "decode_peak_mb": d_rss, "decode_s": d_wall})
            print(rows[-1], flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "rd_memory.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [f"# Learned codec: peak memory and time against region size ({dt.date.today()}, one thread)", "",
             "| cells | file bytes | encode peak MB | encode s | decode peak MB | decode s |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']}×{r['size']} | {r['bytes']:,} | {r['encode_peak_mb']:.0f} | "
                     f"{r['encode_s']:.1f} | {r['decode_peak_mb']:.0f} | {r['decode_s']:.1f} |")
    (a.out / "rd_memory.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
