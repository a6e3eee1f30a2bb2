"""Merge ``rd_learned.py`` runs made on disjoint region subsets (``--only``, one per core).

    python benchmarks/merge_rd_runs.py OUT_STEM RUN.json [RUN.json ...]

Writes ``benchmarks/results/OUT_STEM.{json,md,png}`` with the regions of every run (same model
and settings required; date, machine and throughput are the first run's); with ``--refine`` runs, the markdown compares them with the plain run
of the same model in ``benchmarks/results/rd_learned.json`` when there is one.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rd_learned import REPO, _plain, markdown, plot


def main() -> None:
    stem, paths = sys.argv[1], [Path(p) for p in sys.argv[2:]]
    runs = [json.loads(p.read_text()) for p in paths]
    keys = ("model_id", "refine", "max_level", "baselines")
    if any(tuple(r.get(k) for k in keys) != tuple(runs[0].get(k) for k in keys) for r in runs):
        raise SystemExit("runs differ in model, refinement, levels or baselines; not merged")
    res = dict(runs[0])
    res["regions"] = {}
    for r in runs:
        res["regions"].update(r["regions"])
    out = REPO / "benchmarks" / "results"
    (out / f"{stem}.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    (out / f"{stem}.md").write_text(markdown(res, _plain(out, res) if res.get("refine") else None))
    plot(res, out / f"{stem}.png")
    print(f"merged {len(res['regions'])} regions into {out / stem}.*")


if __name__ == "__main__":
    main()
