"""Is a new hyperprior checkpoint better than the shipped one? Held-out RMSE at equal bytes.

    python benchmarks/compare_networks.py runs/rd/best.pt [--against topoae/weights/...pt]

The check made before shipping a checkpoint (the validation loss is too noisy to decide:
over ``runs/rd`` it moved by a median 7 % between evaluations 500 steps apart, 23 % at the
90th percentile). Both networks code 6 held-out
15″ test tiles of ``benchmarks/rd_split.json`` (trench, open ocean ×2, coast ×2, shelf) and
the Suruga Bay tile at every quality level with the probability tables
:func:`topoae.codec.tables.freeze` builds from each network, so the comparison is of the
networks, not of refitted tables. Per
region: the candidate's RMSE over the reference's, each interpolated in log–log at 50, 100,
200 and 400× between its levels (the ratios of whole ``.tae`` files); then the geometric
mean over the regions. Below 1: the candidate is better.

``--refit-tables N`` compares what ``ship_learned.py --synthesis CANDIDATE --refit-tables N``
would ship against the shipped weights: the reference codes with its stored tables, the
candidate (a ``topoae.training.synth`` checkpoint: its analysis changed, its densities and
context the reference's, its hyper-synthesis and gains too unless it ran with ``--hyper``) with
the reference's tables fitted again to its own symbols on N training tiles.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from rd_learned import interp_rmse, regions

REPO = Path(__file__).resolve().parents[1]
NAMES = ("Tile_-16.3_-73.3", "Tile_-6.82_86.01", "Tile_15.62_80.54", "Tile_22.06_135.2",
         "Tile_28.13_34.51", "Tile_39.53_-72.2", "suruga")
TARGETS = (50, 100, 200, 400)


def _frozen(path: Path, stored: bool = False):
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned, tables

    lm = load_checkpoint(path)
    if stored:  # the tables shipped with the weights (refitted ones included)
        return learned.as_rd_model(lm)
    net = lm.model.eval()
    return learned.RDModel(net=net, tables=tables.freeze(net.z_density), model_id=lm.model_id)


def _refitted(path: Path, against: Path, n: int):
    """The candidate's network with the reference's stored tables fitted to its symbols on
    ``n`` training tiles (:mod:`topoae.codec.table_fit`)."""
    from ship_learned import fit_tables, load_network

    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned

    ref = _frozen(against, True)
    _, _, cfg, _ = load_network(against)
    lm = load_checkpoint(path)
    rd = learned.RDModel(net=lm.model.eval(), tables=ref.tables, model_id=lm.model_id)
    return learned.RDModel(net=rd.net, tables=fit_tables(rd, cfg, n), model_id=lm.model_id)


def _curve(grid, rd) -> list[tuple[float, float]]:
    from topoae import metrics
    from topoae.codec import learned

    x = np.asarray(grid.values, np.float64)
    out = []
    for lev in range(rd.levels):
        h, s = learned.encode(grid, rd, level=lev)
        y = learned.decode(h, s, rd).values.astype(np.float64)
        out.append((x.size * 4 / len(learned.to_bytes(h, s)), metrics.rmse(x, y)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("candidate", type=Path)
    ap.add_argument("--against", type=Path,
                    default=REPO / "topoae" / "weights" / "topoae-hyperprior-gebco15.pt")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stored-tables", action="store_true",
                    help="code with the tables stored in each file (both shipped weights, e.g. a "
                         "release that adds a latent context against the one before)")
    ap.add_argument("--refit-tables", type=int, default=0, metavar="N",
                    help="the reference with its stored tables, the candidate with those tables fitted "
                         "to its symbols on N training tiles (a synthesis/analysis fine-tune, as shipped)")
    a = ap.parse_args()
    import torch

    from topoae.io import open_grid

    torch.set_num_threads(a.threads)
    if a.refit_tables:
        ref, cand = _frozen(a.against, True), _refitted(a.candidate, a.against, a.refit_tables)
    else:
        ref, cand = _frozen(a.against, a.stored_tables), _frozen(a.candidate, a.stored_tables)
    paths = regions(False)
    logs: dict[int, list[float]] = {t: [] for t in TARGETS}
    for name in NAMES:
        if not paths[name].exists():
            print(f"skip {name}: {paths[name]} missing")
            continue
        grid = open_grid(paths[name]).load()
        c0, c1 = _curve(grid, ref), _curve(grid, cand)
        row = []
        for t in TARGETS:
            r0 = interp_rmse([p[0] for p in c0], [p[1] for p in c0], t)
            r1 = interp_rmse([p[0] for p in c1], [p[1] for p in c1], t)
            if np.isfinite(r0) and np.isfinite(r1):
                logs[t].append(math.log(r1 / r0))
                row.append(f"{t}x {r1 / r0:.3f}")
        print(f"{name:18s} " + " ".join(row), flush=True)
    print("candidate / reference RMSE at equal bytes (geometric mean): "
          + ", ".join(f"{t}x {math.exp(np.mean(v)):.3f}" for t, v in logs.items() if v))


if __name__ == "__main__":
    main()
