"""Seam quality of the codec: error on patch borders vs interiors, with and without blending.

Usage::

    python benchmarks/codec_seams.py [--checkpoint CKPT] [--picture benchmarks/results/codec_seams.jpg]

Uses the benchmark model of ``codec_rd.py`` (trained there when no checkpoint
is given). Seams sit at multiples of the stride along each axis (the layout of
:mod:`topoae.codec.blending`). Two measures per setting:

- ``RMSE border / interior``: error of the cells next to a seam (distance <= 1)
  and of the cells at least 3 cells from any seam;
- ``jump ratio``: mean |e[i] - e[i-1]| of the error ``e`` across seams, divided
  by the same mean everywhere else (1.0: the seams are invisible in the error).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from codec_rd import EVAL_GRIDS, REPO, eval_grid, load_model

SETTINGS = [  # (label, stride as a function of the patch, window)
    ("no overlap", lambda p: p, "cosine"),
    ("overlap P/8, nearest (no blending)", lambda p: p - p // 8, "nearest"),
    ("overlap P/8, uniform mean", lambda p: p - p // 8, "uniform"),
    ("overlap P/8, cosine", lambda p: p - p // 8, "cosine"),
    ("overlap P/16, cosine", lambda p: p - p // 16, "cosine"),
    ("overlap P/4, cosine", lambda p: p - p // 4, "cosine"),
]

PICTURED = {SETTINGS[0][0], SETTINGS[1][0], SETTINGS[3][0]}


def seam_distance(n: int, stride: int) -> np.ndarray:
    """Distance (cells) of each index 0..n-1 to the nearest seam (a boundary at a multiple of stride)."""
    i = np.arange(n)
    # seam between cells k*stride - 1 and k*stride: distance 0 for both neighbours
    before = i % stride  # cells since the last seam
    after = stride - 1 - before  # cells before the next one
    return np.minimum(before, after)


def seam_stats(err: np.ndarray, stride: int) -> dict:
    dr = seam_distance(err.shape[0], stride)[:, None]
    dc = seam_distance(err.shape[1], stride)[None, :]
    d = np.minimum(dr, dc)
    border, interior = d <= 1, d >= 3
    rmse = lambda m: float(np.sqrt(np.nanmean(err[m] ** 2)))  # noqa: E731
    jumps, rest = [], []
    for axis in (0, 1):
        e = np.moveaxis(err, axis, 0)
        j = np.abs(np.diff(e, axis=0))  # j[i-1] = |e[i] - e[i-1]|
        across = (np.arange(1, e.shape[0]) % stride) == 0
        jumps.append(j[across].ravel())
        rest.append(j[~across].ravel())
    jump, background = np.nanmean(np.concatenate(jumps)), np.nanmean(np.concatenate(rest))
    return {
        "rmse": float(np.sqrt(np.nanmean(err**2))),
        "rmse_border": rmse(np.broadcast_to(border, err.shape)),
        "rmse_interior": rmse(np.broadcast_to(interior, err.shape)),
        "jump_ratio": float(jump / background),
    }


def picture(grid, recons: dict, path: Path) -> None:
    """Hillshades of the original and reconstructions, and their errors."""
    from matplotlib.figure import Figure

    from topoae.plotting import hillshade, save_figure

    items = [("original", grid.values)] + list(recons.items())
    fig = Figure(figsize=(3.0 * len(items), 5.8), layout="constrained")
    axes = fig.subplots(2, len(items))
    lim = max(np.nanpercentile(np.abs(r - grid.values), 99) for r in recons.values())
    for col, (title, z) in enumerate(items):
        da = grid.copy(data=z)
        axes[0, col].imshow(hillshade(da), cmap="gray", origin="lower", vmin=0, vmax=1)
        axes[0, col].set_title(title, fontsize=9)
        if col:
            im = axes[1, col].imshow(
                z - grid.values, cmap="RdBu_r", origin="lower", vmin=-lim, vmax=lim
            )
            axes[1, col].set_title("error (m)", fontsize=9)
        else:
            axes[1, 0].imshow(grid.values, cmap="terrain", origin="lower")
            axes[1, 0].set_title("elevation (m)", fontsize=9)
        for r in (0, 1):
            axes[r, col].set_xticks([])
            axes[r, col].set_yticks([])
    fig.colorbar(im, ax=axes[1, -1], shrink=0.8)
    save_figure(fig, path, overwrite=True, dpi=72)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--picture", default=str(REPO / "benchmarks" / "results" / "codec_seams.jpg"))
    ap.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "codec_seams.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from topoae import codec
    from topoae.codec import files as codec_io

    model = load_model(args.checkpoint)
    patch = model.model.patch_size
    rows = []
    for label, rel, bbox in [EVAL_GRIDS[0], EVAL_GRIDS[2], EVAL_GRIDS[3]]:
        grid = eval_grid(rel, bbox)
        print(f"\n{label}: {grid.shape}")
        recons = {}
        for name, stride_of, window in SETTINGS:
            stride = stride_of(patch)
            t0 = time.perf_counter()
            ds = codec.encode(grid, model, stride=stride, window=window, quantize="8bit")
            out = codec.decode(ds, model).values
            st = seam_stats(out.astype(np.float64) - grid.values, stride)
            cr = codec_io.summary(ds)["cr_payload_bytes"]
            rows.append(
                {
                    "grid": label,
                    "setting": name,
                    "stride": stride,
                    "window": window,
                    "cr_payload": cr,
                    **st,
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(
                f"  {name:36s} CR {cr:6.1f}  rmse {st['rmse']:7.2f}  border {st['rmse_border']:7.2f}"
                f"  interior {st['rmse_interior']:7.2f}  jump ratio {st['jump_ratio']:5.2f}"
            )
            if label == EVAL_GRIDS[0][0] and name in PICTURED:
                recons[f"{name}\nrmse {st['rmse']:.1f} m, jump ratio {st['jump_ratio']:.2f}"] = out
        if recons:
            picture(grid, recons, Path(args.picture))
            print(f"  picture -> {args.picture}")
    Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
