"""Fit the starting counts of the context coder's primed frames (``.tae`` format 6).

    python benchmarks/fit_outlier_prior.py [--tiles 24] [--strength 1024]

The context coder (:mod:`topoae.codec.context_coder`) adapts its counts within each tile's
stream, starting from one generic table. A tile's outlier stream at the middle levels holds a
few hundred corrections spread over 144 contexts, so much of it pays for that learning. This
script codes ``--tiles`` training tiles (``benchmarks/rd_split.json``; held-out tiles never)
at every quality level of the shipped model, counts the outlier symbols per context, and writes
those counts, smoothed and scaled to ``--strength`` per context, to ``--out`` (default
``runs/context_counts.npy``). Shipped as ``topoae/assets/context_counts.npy`` (with its SHA-256
in ``context_coder.COUNTS_SHA256``), they are frozen: files made with them decode only with them,
so other counts are a new format, never a replacement of that file.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "gebco_15s" / "tiles"


def main() -> None:
    import torch

    from topoae import zoo
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import context_coder as cc
    from topoae.codec import learned
    from topoae.io import open_grid

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=24)
    ap.add_argument("--strength", type=float, default=1024.0)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "context_counts.npy")
    a = ap.parse_args()
    if a.out.resolve() == cc.COUNTS_FILE.resolve():
        raise SystemExit(f"{a.out} is the shipped, frozen counts: write elsewhere (a new format)")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    rd = learned.as_rd_model(load_checkpoint(zoo.default_model_path()))
    split = json.loads((REPO / "benchmarks" / "rd_split.json").read_text())
    names = list(np.random.default_rng(1).permutation(split["train"]))[:a.tiles]
    seen: list[np.ndarray] = []
    plain = learned._encode_outliers

    def record(z, base, step):  # the outlier symbols each tile codes
        e = np.where(np.isfinite(z), z - base.astype(np.float32).astype(np.float64), 0.0)
        seen.append(learned._outlier_symbols(e, step))
        return plain(z, base, step)

    learned._encode_outliers = record
    primed = cc.primed_counts  # the counts being fitted may not exist yet: primed frames start
    cc.primed_counts = lambda: np.tile(cc.PRIOR, (cc.CONTEXTS, 1))  # from the generic ones here
    counts = np.zeros((cc.CONTEXTS, cc.K))
    try:
        for name in names:
            grid = open_grid(DATA / f"{name}.nc").load()
            for level in range(rd.levels):
                seen.clear()
                learned.encode(grid, rd, level=level)
                for q in seen:
                    counts += cc.context_counts(q)
            print(name, flush=True)
    finally:
        learned._encode_outliers = plain
        cc.primed_counts = primed
    p = (counts + 0.5) / (counts + 0.5).sum(1, keepdims=True)
    table = np.maximum(1, np.rint(p * a.strength)).astype(np.int32)
    np.save(a.out, table)
    print(f"wrote {a.out}: {int(counts.sum())} symbols from {len(names)} tiles x {rd.levels} levels")


if __name__ == "__main__":
    main()
