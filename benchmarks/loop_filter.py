"""What the loop filter (format 7) does on the held-out 15″ tiles: each level coded with and
without it, whole files, RMSE at equal bytes, the radius each tile kept, and the time it costs.

    python benchmarks/loop_filter.py [--model W] [--out benchmarks/results] [--threads 1]

Writes ``loop_filter.json`` and ``loop_filter.md``; ``--timing-only`` times encode and decode
with and without the filter on one tile, one thread, best of several runs (run it on a quiet
machine), into the existing results. topoae's RMSE at 50–400× is interpolated
between its levels in log–log, as in ``rd_learned.py``; "with / without" is the ratio of the two
curves at the same ratio (below 1: the filter helps).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path

import numpy as np
from rd_learned import REPO, TARGETS, interp_rmse, regions


def run(model: Path | None, out: Path, threads: int) -> dict:
    import torch

    from topoae import metrics, zoo
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned
    from topoae.codec import loop_filter as lf
    from topoae.io import open_grid

    torch.set_num_threads(threads)
    rd = learned.as_rd_model(load_checkpoint(model or zoo.default_model_path()))
    res: dict = {"date": dt.date.today().isoformat(), "model_id": rd.model_id[:16],
                 "machine": f"{platform.machine()}, torch {threads} thread(s)", "regions": {}}
    for name, path in regions(False).items():
        if not path.exists():
            print(f"skip {name}: {path} missing")
            continue
        grid = open_grid(path).load()
        x = np.asarray(grid.values, np.float64)
        raw = x.size * 4
        rows = []
        for lev in range(rd.levels):
            row: dict = {"level": lev}
            for key, on in (("off", False), ("on", True)):
                t0 = time.perf_counter()
                h, s = learned.encode(grid, rd, level=lev, loop_filter=on)
                te = time.perf_counter() - t0
                t0 = time.perf_counter()
                y = learned.decode(h, s, rd).values.astype(np.float64)
                td = time.perf_counter() - t0
                n = len(learned.to_bytes(h, s))
                row[key] = {"bytes": n, "ratio": raw / n, "rmse": metrics.rmse(x, y), "enc_s": te, "dec_s": td}
                if on:
                    nt = int(np.prod(learned.tile_layout(*x.shape, 512, learned.RDCodecConfig.margin, learned.ALIGN).counts))
                    kept = lf.unpack(s["filter"], nt) if "filter" in s else [None] * nt
                    row["radii"] = [0 if q is None else lf.radius(q) for q in kept]
                    row["filter_bytes"] = len(s.get("filter", b""))
            rows.append(row)
        at = {}
        for t in TARGETS:
            a = interp_rmse([r["off"]["ratio"] for r in rows], [r["off"]["rmse"] for r in rows], t)
            b = interp_rmse([r["on"]["ratio"] for r in rows], [r["on"]["rmse"] for r in rows], t)
            at[str(int(t))] = b / a
        res["regions"][name] = {"levels": rows, "at": at}
        print(name, {k: round(v, 4) for k, v in at.items()}, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "loop_filter.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    (out / "loop_filter.md").write_text(markdown(res))
    return res


def markdown(res: dict) -> str:
    regs = res["regions"]
    levels = len(next(iter(regs.values()))["levels"])
    lines = [f"# The loop filter on the held-out tiles ({res['date']}, {res['machine']})", "",
             f"Model `{res['model_id']}`. Every level of every region coded with and without the "
             "loop filter (`learned.encode(loop_filter=)`); whole files.", "",
             "## RMSE with / without the filter at equal bytes (log–log between levels)", "",
             "| region | " + " | ".join(f"{t}×" for t in regs[next(iter(regs))]["at"]) + " |",
             "|---|" + "---|" * len(TARGETS)]
    for n, r in regs.items():
        lines.append(f"| {n} | " + " | ".join("—" if v != v else f"{v:.3f}" for v in r["at"].values()) + " |")
    means = {t: np.nanmean([r["at"][t] for r in regs.values()]) for t in next(iter(regs.values()))["at"]}
    lines.append("| **mean** | " + " | ".join(f"**{v:.3f}**" for v in means.values()) + " |")
    lines += ["", "## By level (all regions)", "",
              "| level | bytes on / off | RMSE on / off | tiles filtered (radius 1 / 2 / 3) | filter stream, mean B |",
              "|---|---|---|---|---|"]
    for lev in range(levels):
        rows = [r["levels"][lev] for r in regs.values()]
        br = np.mean([r["on"]["bytes"] / r["off"]["bytes"] for r in rows])
        er = np.mean([r["on"]["rmse"] / r["off"]["rmse"] for r in rows])
        radii = [k for r in rows for k in r["radii"]]
        cnt = [sum(1 for k in radii if k == v) for v in (1, 2, 3)]
        fb = np.mean([r["filter_bytes"] for r in rows])
        lines.append(f"| {lev} | {br:.4f} | {er:.4f} | {cnt[0]} / {cnt[1]} / {cnt[2]} of {len(radii)} | {fb:.0f} |")
    t = res.get("timing")
    if t:
        lines += ["", f"## Time ({t['tile']}, {t['machine']}, best of {t['repeats']})", "",
                  "| level | encode s off / on | decode s off / on |", "|---|---|---|"]
        lines += [f"| {r['level']} | {r['enc_off']:.3f} / {r['enc_on']:.3f} | {r['dec_off']:.3f} / {r['dec_on']:.3f} |"
                  for r in t["levels"]]
    return "\n".join(lines) + "\n"


def timing(model: Path | None, repeats: int = 5) -> dict:
    """Encode and decode of one 512² held-out tile with and without the filter, one thread,
    the best of ``repeats`` runs of each, off and on interleaved."""
    import time

    import torch

    from topoae import zoo
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned
    from topoae.io import open_grid

    torch.set_num_threads(1)
    rd = learned.as_rd_model(load_checkpoint(model or zoo.default_model_path()))
    name, path = next(iter(regions(False).items()))
    grid = open_grid(path).load()
    rows = []
    for lev in (0, 4, 7):
        best: dict[str, float] = {}
        for _ in range(repeats):
            for key, on in (("off", False), ("on", True)):
                t0 = time.perf_counter()
                h, s = learned.encode(grid, rd, level=lev, loop_filter=on)
                t1 = time.perf_counter()
                learned.decode(h, s, rd)
                t2 = time.perf_counter()
                best[f"enc_{key}"] = min(best.get(f"enc_{key}", np.inf), t1 - t0)
                best[f"dec_{key}"] = min(best.get(f"dec_{key}", np.inf), t2 - t1)
        rows.append({"level": lev, **best})
    return {"tile": name, "machine": f"{platform.machine()}, torch 1 thread", "repeats": repeats,
            "date": dt.date.today().isoformat(), "levels": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timing-only", action="store_true",
                    help="only the timing, into the existing loop_filter.json (a quiet machine)")
    a = ap.parse_args()
    if a.timing_only:
        res = json.loads((a.out / "loop_filter.json").read_text())
        res["timing"] = timing(a.model)
        (a.out / "loop_filter.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
        (a.out / "loop_filter.md").write_text(markdown(res))
        return
    res = run(a.model, a.out, a.threads)
    res["timing"] = timing(a.model)
    (a.out / "loop_filter.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    (a.out / "loop_filter.md").write_text(markdown(res))


if __name__ == "__main__":
    main()
