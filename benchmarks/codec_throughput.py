"""Encode/decode throughput (cells/s, MB/s of float32) and peak RSS of the codec.

Usage::

    python benchmarks/codec_throughput.py [--sizes 1024 4096] [--threads 1] [--device cpu]

Each measurement runs in a fresh subprocess (its ``VmHWM`` is that run's peak
RSS) on a synthetic GEBCO-format NetCDF (int16, written once into
``runs/codec_bench/``), through the same path as the CLI: ``open_grid`` (lazy)
-> ``encode`` -> ``save_latents`` (Zarr), and ``open_latents`` -> lazy
``decode`` -> ``save_grid`` (NetCDF float32). Two models: the small benchmark
model of ``codec_rd.py`` (patch 32, 10 latents) and the thesis VAE architecture
(patch 96, 100 latents, random weights: speed only). Times include file I/O.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "runs" / "codec_bench"


def thesis_checkpoint() -> Path:
    """A checkpoint of the thesis VAE architecture with random weights (for timing only)."""
    import torch

    from topoae.checkpoint import save_checkpoint
    from topoae.data.normalise import Normalisation
    from topoae.models import ModelConfig, build_model
    from topoae.training.config import TrainConfig

    path = WORK / "thesis_vae_random.pt"
    if not path.exists():
        torch.manual_seed(0)
        cfg = TrainConfig(model=ModelConfig(kind="vae"))
        save_checkpoint(path, build_model(cfg.model), cfg, normalise=Normalisation().to_dict())
    return path


def synthetic(n: int) -> Path:
    from topoae.io.synthetic import write_synthetic_gebco

    path = WORK / f"synthetic_{n}x{n}.nc"
    if not path.exists():
        write_synthetic_gebco(path, n, n, seed=11)
    return path


def one(kind: str, ckpt: str, grid: str, threads: int, device: str, out: str) -> dict:
    """Run one encode or decode in this process; returns timings and peak RSS."""
    import torch

    torch.set_num_threads(threads)
    import dask
    import dask.array  # noqa: F401  (imported before timing: lazy decoding uses it)

    from topoae import codec
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import files as codec_io
    from topoae.io import open_grid

    model = load_checkpoint(ckpt)
    da = open_grid(grid)
    cells = da.size
    latents = Path(out) / "lat.zarr"
    t0 = time.perf_counter()
    with dask.config.set(scheduler="synchronous"):
        if kind == "encode":
            ds = codec.encode(da, model, quantize="8bit", device=device)
            codec_io.save_latents(ds, latents, overwrite=True)
        else:
            rec = codec.decode(codec_io.open_latents(latents), model, device=device, lazy=True)
            codec_io.save_grid(rec, Path(out) / "rec.nc", overwrite=True)
    dt = time.perf_counter() - t0
    # VmHWM is this process image's own peak (ru_maxrss would include the parent's RSS at fork)
    status = Path("/proc/self/status").read_text().splitlines()
    rss = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    return {
        "kind": kind,
        "cells": cells,
        "seconds": dt,
        "cells_per_s": cells / dt,
        "mb_per_s": 4 * cells / dt / 1e6,
        "peak_rss_mib": rss,
        "threads": threads,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096])
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", nargs="+", default=["bench", "thesis"])
    ap.add_argument(
        "--json", default=str(REPO / "benchmarks" / "results" / "codec_throughput.json")
    )
    ap.add_argument(
        "--one", nargs=5, metavar=("KIND", "CKPT", "GRID", "THREADS", "OUT"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.one:
        kind, ckpt, grid, threads, out = args.one
        print(json.dumps(one(kind, ckpt, grid, int(threads), args.device, out)))
        return
    WORK.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(Path(__file__).parent))
    from codec_rd import load_model

    ckpts = {"bench": str(load_model(None).path), "thesis": str(thesis_checkpoint())}
    rows = []
    for name in args.models:
        for n in args.sizes:
            grid = synthetic(n)
            for threads in args.threads:
                out = WORK / f"tp_{name}_{n}_{threads}"
                out.mkdir(exist_ok=True)
                for kind in ("encode", "decode"):
                    cmd = [
                        sys.executable,
                        __file__,
                        "--device",
                        args.device,
                        "--one",
                        kind,
                        ckpts[name],
                        str(grid),
                        str(threads),
                        str(out),
                    ]
                    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
                    row = {
                        "model": name,
                        "size": n,
                        **json.loads(res.stdout.strip().splitlines()[-1]),
                    }
                    rows.append(row)
                    print(
                        f"{name:6s} {n:5d}^2 {kind:6s} threads {threads}: {row['seconds']:7.1f}s "
                        f"{row['cells_per_s'] / 1e6:6.2f} Mcells/s {row['mb_per_s']:6.1f} MB/s "
                        f"peak RSS {row['peak_rss_mib']:6.0f} MiB",
                        flush=True,
                    )
    Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
