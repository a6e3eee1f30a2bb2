"""What ``topoae encode --ratio R`` delivers: whole quality levels against steps of 1/8.

    python benchmarks/ratio_targeting.py [--model topoae/weights/topoae-hyperprior-gebco15.pt]

For each held-out region of ``rd_learned.py`` (16 test tiles and Suruga Bay) and each target
R in 50, 100, 200, 400×: the file ``encode_to_ratio`` writes (the best quality reaching R, in
steps of 1/8 of a level between the trained levels), against the best *whole* level reaching R
(what it wrote before the steps existed): achieved ratio and RMSE of each, all bytes counted.
Results: ``benchmarks/results/ratio_targeting.{json,md}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
from pathlib import Path

import numpy as np
from rd_learned import regions

REPO = Path(__file__).resolve().parents[1]
TARGETS = (50.0, 100.0, 200.0, 400.0)


def run(model_path: Path, out: Path) -> dict:
    import torch

    from topoae import metrics
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned
    from topoae.io import open_grid

    torch.set_num_threads(1)
    rd = learned.as_rd_model(load_checkpoint(model_path))
    res: dict = {"model_id": rd.model_id, "date": dt.date.today().isoformat(),
                 "machine": f"{platform.machine()} 2-core CPU", "regions": {}}
    for name, path in regions(False).items():
        grid = open_grid(path).load()
        x = np.asarray(grid.values, np.float64)
        raw = grid.size * 4

        def point(h, s, x=x, raw=raw) -> dict:
            y = learned.decode(h, s, rd).values.astype(np.float64)
            return {"level": h["codec"]["level"], "ratio": raw / len(learned.to_bytes(h, s)),
                    "rmse": metrics.rmse(x, y)}

        whole = [point(*learned.encode(grid, rd, level=k)) for k in range(rd.levels)]
        row = {}
        for t in TARGETS:
            reach = [p for p in whole if p["ratio"] >= t]
            h, s, reached = learned.encode_to_ratio(grid, rd, t)
            row[str(int(t))] = {"whole": max(reach, key=lambda p: p["level"]) if reach else None,
                                "steps": point(h, s) if reached else None}
        res["regions"][name] = row
        print(name, " ".join(f"{t}: " + ("—" if r["steps"] is None or r["whole"] is None else
                                          f"{r['whole']['ratio']:.0f}x/{r['whole']['rmse']:.1f} -> "
                                          f"{r['steps']['ratio']:.0f}x/{r['steps']['rmse']:.1f}")
                                 for t, r in row.items()), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ratio_targeting.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "ratio_targeting.md").write_text(markdown(res))
    return res


def markdown(res: dict) -> str:
    lines = [f"# `--ratio R`: whole levels against steps of 1/8 ({res['date']}, model "
             f"`{res['model_id'][:16]}`)", "",
             "Per region and target: achieved ratio / RMSE (m) of the best whole level reaching R "
             "→ of the best 1/8 step reaching R (what `topoae encode --ratio R` writes now). "
             "`—`: no quality reaches R.", "",
             "| region | " + " | ".join(f"{int(t)}×" for t in TARGETS) + " |",
             "|---|" + "---|" * len(TARGETS)]
    gains: dict[str, list[float]] = {str(int(t)): [] for t in TARGETS}
    over: dict[str, list[float]] = {str(int(t)): [] for t in TARGETS}
    for name, row in res["regions"].items():
        cells = []
        for t, r in row.items():
            if r["whole"] is None or r["steps"] is None:
                cells.append("—")
                continue
            w, s = r["whole"], r["steps"]
            cells.append(f"{w['ratio']:.0f}× / {w['rmse']:.1f} → {s['ratio']:.0f}× / {s['rmse']:.1f}")
            gains[t].append(s["rmse"] / w["rmse"])
            over[t].append(s["ratio"] / float(t))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| target | regions | RMSE, steps / whole level (geometric mean) | achieved / target "
                  "ratio, steps (mean; whole levels) |", "|---|---|---|---|"]
    for t in gains:
        if gains[t]:
            whole_over = [r[t]["whole"]["ratio"] / float(t) for r in res["regions"].values()
                          if r[t]["whole"] is not None and r[t]["steps"] is not None]
            lines.append(f"| {t}× | {len(gains[t])} | {float(np.exp(np.mean(np.log(gains[t])))):.3f} | "
                         f"{np.mean(over[t]):.3f} ({np.mean(whole_over):.3f}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "topoae" / "weights" / "topoae-hyperprior-gebco15.pt")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    a = ap.parse_args()
    run(a.model, a.out)


if __name__ == "__main__":
    main()
