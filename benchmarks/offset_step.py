"""The offset field's node step against file size and RMSE (``.tae`` format 8's coarse nodes).

    python benchmarks/offset_step.py [--steps 1,16] [--levels 0,2,4,5,6,7] [--out benchmarks/results]

The learned codec carries each region's absolute level in an offset field: one integer node per
64×64 block, its mean in steps of ``offset_step`` metres (the model's 1 m up to format 7). The
latents code a block's level again anyway, so the step trades offset bytes against what the
latents must absorb. This codes the three validation tiles and three training tiles of other
kinds (``benchmarks/rd_split.json``; held-out tiles never: the step is chosen here) at each
level with each step, everything else as the codec does it, and writes ``offset_step.md``:
whole-file bytes, offset-stream bytes and RMSE, and per level the mean change in bytes and
RMSE against the 1 m step.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TILES = REPO.parent / "shared" / "data" / "gebco_15s" / "tiles"
EXTRA = ("Tile_41.01_-151.0", "Tile_9.55_62.35", "Tile_24.21_-44.1")  # open ocean ×2, trench


def main() -> None:
    import torch

    from topoae import zoo
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned
    from topoae.io import open_grid

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", default="1,16")
    ap.add_argument("--levels", default="0,2,4,5,6,7")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    a = ap.parse_args()
    steps = [float(s) for s in a.steps.split(",")]
    levels = [int(v) for v in a.levels.split(",")]
    torch.set_num_threads(1)
    rd = learned.as_rd_model(load_checkpoint(zoo.default_model_path()))
    split = json.loads((REPO / "benchmarks" / "rd_split.json").read_text())
    names = [*split["val"], *EXTRA]
    coarse = (learned.COARSE_OFFSET_STEP, learned.COARSE_OFFSET_BELOW)
    rows = []
    try:
        for name in names:
            path = TILES / f"{name}.nc"
            if not path.exists():
                print(f"skip {name}: {path} missing")
                continue
            grid = open_grid(path).load()
            x = np.asarray(grid.values, np.float64)
            for lev in levels:
                for step in steps:
                    # the codec's own choice, forced to this step at every level
                    learned.COARSE_OFFSET_STEP, learned.COARSE_OFFSET_BELOW = step, 10 ** 6
                    h, s = learned.encode(grid, rd, level=lev)
                    y = learned.decode(h, s, rd).values.astype(np.float64)
                    rows.append({"tile": name, "level": lev, "step": step,
                                 "bytes": len(learned.to_bytes(h, s)), "offset": len(s["offset"]),
                                 "rmse": float(np.sqrt(np.mean((x - y) ** 2)))})
                    print(rows[-1], flush=True)
    finally:
        learned.COARSE_OFFSET_STEP, learned.COARSE_OFFSET_BELOW = coarse
    lines = ["## The offset field's node step (format 8)", "",
             f"Date {dt.date.today().isoformat()}. Machine: {platform.machine()}, 2-core CPU, torch 1 thread. "
             f"Model `{rd.model_id[:16]}`. `python benchmarks/offset_step.py --steps {a.steps} --levels {a.levels}`.",
             "", "Tiles: the validation split and three training tiles (open ocean, open ocean, trench); "
             "none held out. Each coded whole at each level with the offset nodes in each step; "
             "bytes are whole files.", "",
             "| level | step | mean Δ bytes vs 1 m | mean Δ RMSE vs 1 m | offset stream (mean B) |",
             "|---|---|---|---|---|"]
    for lev in levels:
        for step in steps:
            db, de, off = [], [], []
            for name in names:
                base = [r for r in rows if r["tile"] == name and r["level"] == lev and r["step"] == steps[0]]
                cur = [r for r in rows if r["tile"] == name and r["level"] == lev and r["step"] == step]
                if base and cur:
                    db.append(cur[0]["bytes"] / base[0]["bytes"] - 1)
                    de.append(cur[0]["rmse"] / base[0]["rmse"] - 1)
                    off.append(cur[0]["offset"])
            if db:
                lines.append(f"| {lev} | {step:g} m | {100 * np.mean(db):+.2f} % | {100 * np.mean(de):+.2f} % "
                             f"| {np.mean(off):.0f} |")
    lines += ["", "Per tile:", "", "| tile | level | step | bytes | offset B | RMSE m |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['tile']} | {r['level']} | {r['step']:g} | {r['bytes']:,} | {r['offset']} | {r['rmse']:.3f} |"
              for r in rows]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "offset_step.md").write_text("\n".join(lines) + "\n")
    (a.out / "offset_step.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
