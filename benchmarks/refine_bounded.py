"""Error-bounded files with and without encode-time refinement, against SPERR and SZ3.

    python benchmarks/refine_bounded.py [--only NAMES] [--bounds 10,25] [--refine 60]

Per region and bound E: the whole ``.tae`` file of ``topoae encode --max-error E`` (the level
whose file is smallest), plain and with ``--refine``; SPERR's and SZ3's self-contained frames
at the same point-wise bound. Writes ``refine_bounded.{json,md}`` under --out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path

import numpy as np
from rd_learned import REPO, regions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="learned model (default: the shipped one)")
    ap.add_argument("--only", default="", help="comma-separated region names (default: all)")
    ap.add_argument("--bounds", default="10,25")
    ap.add_argument("--refine", type=int, default=60)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    a = ap.parse_args()
    import torch

    from topoae.baselines import get_baseline
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned
    from topoae.io import open_grid
    from topoae.zoo import resolve_model

    torch.set_num_threads(1)
    lm = load_checkpoint(resolve_model(a.model))
    rd = learned.as_rd_model(lm)
    bounds = [float(v) for v in a.bounds.split(",")]
    only = [n for n in a.only.split(",") if n]
    res: dict = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, torch 1 thread",
                 "model_id": rd.model_id, "refine": a.refine, "regions": {}}
    for name, path in regions(False).items():
        if only and name not in only:
            continue
        grid = open_grid(path).load()
        x = np.asarray(grid.values, np.float32)
        row = {}
        for e in bounds:
            t0 = time.perf_counter()
            plain = len(learned.to_bytes(*learned.encode(grid, rd, max_error=e)))
            t1 = time.perf_counter()
            h, s = learned.encode(grid, rd, max_error=e, refine=a.refine)
            t2 = time.perf_counter()
            rec = learned.decode(h, s, rd).values.astype(np.float64)
            worst = float(np.nanmax(np.abs(rec - x.astype(np.float64))))
            if worst > e + 1e-6:
                raise SystemExit(f"{name}: refined file breaks the bound ({worst} > {e})")
            row[str(e)] = {"plain": plain, "refined": len(learned.to_bytes(h, s)),
                           "level": h["codec"]["level"], "max_err": worst,
                           "sperr": get_baseline("sperr").at_error(x, e).nbytes,
                           "sz3": get_baseline("sz3").at_error(x, e).nbytes,
                           "plain_s": t1 - t0, "refined_s": t2 - t1}
        res["regions"][name] = row
        print(name, " ".join(f"E={k}: {v['plain']}->{v['refined']} (SPERR {v['sperr']}, SZ3 {v['sz3']})"
                             for k, v in row.items()), flush=True)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "refine_bounded.json").write_text(json.dumps(res, indent=1) + "\n")
    lines = [f"## Error-bounded files with and without `--refine {a.refine}` ({res['date']}, {res['machine']})",
             "", f"Model `{rd.model_id[:16]}`. Whole-file bytes for every cell within E (topoae: the level "
             "whose file is smallest, the bound checked on every cell of the refined file). "
             "`python benchmarks/refine_bounded.py`.", "",
             "| region | " + " | ".join(f"E={e:g} m: plain → refined / SPERR / SZ3" for e in bounds) + " |",
             "|---|" + "---|" * len(bounds)]
    for name, row in res["regions"].items():
        lines.append(f"| {name} | " + " | ".join(
            f"{v['plain']:,} → {v['refined']:,} / {v['sperr']:,} / {v['sz3']:,}" for v in row.values()) + " |")
    for e in bounds:
        k = str(e)
        rows = [r[k] for r in res["regions"].values()]
        tot = {c: sum(r[c] for r in rows) for c in ("plain", "refined", "sperr", "sz3")}
        lines.append(f"\nE = {e:g} m, totals: plain {tot['plain']:,}, refined {tot['refined']:,} "
                     f"({tot['refined'] / tot['plain'] - 1:+.1%}), SPERR {tot['sperr']:,}, SZ3 {tot['sz3']:,}: "
                     f"refined / SPERR {tot['refined'] / tot['sperr']:.3f}, refined / SZ3 "
                     f"{tot['refined'] / tot['sz3']:.3f}; refined smaller than SPERR on "
                     f"{sum(r['refined'] < r['sperr'] for r in rows)} and than SZ3 on "
                     f"{sum(r['refined'] < r['sz3'] for r in rows)} of {len(rows)} regions.")
    (a.out / "refine_bounded.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
