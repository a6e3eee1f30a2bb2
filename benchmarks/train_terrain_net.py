"""Train the terrain feature network shipped in ``topoae/weights/terrain_features.pt``.

It learns to predict slope, curvature and roughness at four scales from real
patches (the train split of a patch store built from ``../shared/data`` with
the Tohoku box excluded), see :class:`topoae.perceptual.TerrainFeatures`.

    python benchmarks/train_terrain_net.py /work/stores/real_patch.zarr --steps 3000
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import numpy as np
import torch

from topoae.data.dataset import PatchDataset
from topoae.perceptual import (
    TERRAIN_WEIGHTS,
    fit_terrain_features,
    save_terrain_features,
    terrain_targets,
)

OUT = Path(__file__).resolve().parents[1] / "topoae" / "weights" / TERRAIN_WEIGHTS


def load(store: str, split: str) -> torch.Tensor:
    ds = PatchDataset(store, split=split, augment="none")
    return torch.from_numpy(
        np.stack([ds.read(i) for i in range(len(ds))])[:, None].astype(np.float32)
    )


@torch.no_grad()
def relative_error(net: torch.nn.Module, x: torch.Tensor) -> float:
    """Mean relative squared error of the predicted maps on ``x`` (0 perfect, 1 = predicting 0)."""
    x = (x - x.mean(dim=(-2, -1), keepdim=True)) / (x.std(dim=(-2, -1), keepdim=True) + 1e-6)
    errs = []
    for pred, t in zip(net.predict(x), terrain_targets(x), strict=True):
        errs.append(
            (((pred - t) ** 2).mean(dim=(0, 2, 3)) / (t**2).mean(dim=(0, 2, 3))).mean().item()
        )
    return float(np.mean(errs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train, val = load(args.store, "train"), load(args.store, "val")
    t0 = time.perf_counter()

    def log(step: int, loss: float) -> None:
        if step % 250 == 0:
            print(f"step {step:5d}  loss {loss:.4f}  {time.perf_counter() - t0:.0f} s", flush=True)

    net = fit_terrain_features(
        train, steps=args.steps, batch_size=args.batch, seed=args.seed, log=log
    )
    seconds = time.perf_counter() - t0
    val_err = relative_error(net, val)
    meta = {
        "task": "predict slope magnitude, Laplacian and 3x3 roughness at 4 dyadic scales",
        "store": str(Path(args.store).resolve()),
        "train_patches": len(train),
        "steps": args.steps,
        "batch": args.batch,
        "seed": args.seed,
        "seconds": round(seconds, 1),
        "val_relative_error": round(val_err, 4),
        "date": dt.date.today().isoformat(),
        "data": "real grids of ../shared/data (ETOPO, GMT regional, land DEMs), Tohoku box excluded",
    }
    save_terrain_features(net, args.out, meta=meta)
    print(f"val relative error {val_err:.4f}; {seconds:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
