"""Prepare the 15″ GEBCO tiles for the rate–distortion codec: split by file, cache as int16.

    python benchmarks/make_rd_data.py [--tiles ../shared/data/gebco_15s/tiles] [--out data_cache] [--pack]

Writes ``data_cache/gebco15_tiles.npz`` (``names`` and an int16 stack
``(T, 512, 512)``; fill −32768 kept) for the trainer (plain numpy, so it also
runs on a GPU machine without zarr/netCDF4), and — only if it does not exist yet —
``benchmarks/rd_split.json``: whole tiles assigned to train / val / test, the test
set stratified by kind (trench, open ocean, coast, land, shelf). The split is
committed before training and never regenerated, so held-out tiles stay held out.
Tiles that overlap another tile go to the same split as it.

``--pack`` also writes ``data_cache/gpu/gebco15_tiles.tpk``: the training and validation
tiles only, losslessly packed (:mod:`topoae.training.tilepack`, 22 MB) for a lent GPU
machine, whose working tree and carried paths share 64 MiB (``benchmarks/gpu_train.sh``).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import xarray as xr

HERE = Path(__file__).resolve().parent
SPLIT = HERE / "rd_split.json"


def classify(z: np.ndarray) -> str:
    ocean = float(np.mean(z < 0))
    if np.nanmin(z) < -6000:
        return "trench"
    if ocean > 0.98:
        return "shelf" if np.nanmax(z) > -300 or np.nanmedian(z) > -200 else "open-ocean"
    if ocean < 0.15:
        return "land"
    return "coast"


def bounds(name: str) -> tuple[float, float]:
    lat, lon = (float(v) for v in re.match(r"Tile_(-?[\d.]+)_(-?[\d.]+)", name).groups())
    return lat, lon


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", default=str(HERE.parent.parent / "shared/data/gebco_15s/tiles"))
    ap.add_argument("--out", default=str(HERE.parent / "data_cache"))
    ap.add_argument("--pack", action="store_true",
                    help="also write gpu/gebco15_tiles.tpk (train and val tiles, for a GPU machine)")
    args = ap.parse_args()
    files = sorted(Path(args.tiles).glob("Tile_*.nc"))
    if not files:
        raise SystemExit(f"no Tile_*.nc under {args.tiles}")
    names, stack, kinds = [], [], {}
    for f in files:
        with xr.open_dataset(f, mask_and_scale=False) as ds:
            a = np.asarray(ds["elevation"].values, dtype=np.int16)
            if ds["lat"].values[0] > ds["lat"].values[-1]:
                a = a[::-1]
        if a.shape != (512, 512):
            continue
        names.append(f.stem)
        stack.append(a)
        zf = np.where(a == -32768, np.nan, a.astype(np.float64))
        kinds[f.stem] = classify(zf)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "gebco15_tiles.npz", names=np.array(names), tiles=np.stack(stack))
    print(f"wrote {out / 'gebco15_tiles.npz'}: {len(names)} tiles")
    if SPLIT.exists():
        print(f"{SPLIT} exists; kept")
    else:
        write_split(names, kinds)
    if args.pack:
        from topoae.training import tilepack

        split = json.loads(SPLIT.read_text())
        wanted = set(split["train"]) | set(split["val"])
        keep = [i for i, n in enumerate(names) if n in wanted]
        if not keep:
            raise SystemExit(f"no training or validation tile of {SPLIT} under {args.tiles}")
        path = out / "gpu" / "gebco15_tiles.tpk"
        path.parent.mkdir(parents=True, exist_ok=True)
        size = tilepack.write(path, [names[i] for i in keep], np.stack([stack[i] for i in keep]))
        print(f"wrote {path}: {len(keep)} tiles, {size / 1e6:.1f} MB")


def write_split(names: list[str], kinds: dict[str, str]) -> None:
    """The train / val / test split of the tiles (run once: the split is then committed)."""
    rng = np.random.default_rng(2026)
    test, val = [], []
    for kind, n_test, n_val in (("trench", 2, 0), ("open-ocean", 2, 0), ("coast", 6, 3),
                                ("land", 1, 0), ("shelf", 1, 0)):
        pool = [n for n in names if kinds[n] == kind]
        rng.shuffle(pool)
        test += pool[:n_test]
        val += pool[n_test:n_test + n_val]
    # overlapping tiles (centres closer than one tile width) follow the held-out one
    def near(a: str, b: str) -> bool:
        (la, lo), (lb, lob) = bounds(a), bounds(b)
        return abs(la - lb) < 2.14 and abs(lo - lob) < 2.14

    for group in (test, val):
        for n in list(names):
            if n not in test and n not in val and any(near(n, g) for g in group):
                group.append(n)
    train = [n for n in names if n not in test and n not in val]
    SPLIT.write_text(json.dumps(
        {"note": "whole 15-arc-second GEBCO tiles per split; fixed before training",
         "kinds": kinds, "test": sorted(test), "val": sorted(val), "train": sorted(train)},
        indent=1) + "\n")
    print(f"wrote {SPLIT}: train {len(train)}, val {len(val)}, test {len(test)}")


if __name__ == "__main__":
    main()
