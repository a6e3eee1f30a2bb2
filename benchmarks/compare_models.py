"""Compare trained runs on the same held-out data: the store's test split and the codec on real regions.

    python benchmarks/compare_models.py runs/ship-vae runs/thesis-dfc [--json out.json] [--md out.md]

For each run folder (its ``best.pt`` and ``config.json``):

- the test split of the run's own patch store (``config.json``'s ``store``; the stores of
  ``make_training_stores.py`` hold the same patches under two normalisations), scored with
  :func:`topoae.training.evaluate_store`: RMSE / MAE / max in metres, slope RMSE, the thesis'
  total L2 and max patch L2, PSNR, SSIM;
- the codec (stride P − P/8, cosine blending, 8-bit latents) on the held-out real regions
  of ``ship_model.py`` (bundled Japan-trench ETOPO5 crop, Suruga Bay 15″ GEBCO tile,
  Tohoku box): RMSE, max error and the payload compression ratio;
- the training budget read from ``metrics.csv``: epochs, seconds, best epoch, and the best
  validation RMSE reached within the shortest run's time (an equal-time comparison).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from topoae.training.trainer import BEST, CONFIG, METRICS

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ship_model import measure  # noqa: E402


def budget(run: Path) -> dict:
    rows = list(csv.DictReader((run / METRICS).open()))
    best = min(rows, key=lambda r: float(r["val_rmse_m"]))
    return {
        "epochs": int(rows[-1]["epoch"]),
        "seconds": float(rows[-1]["seconds"]),
        "best_epoch": int(best["epoch"]),
        "best_val_rmse_m": float(best["val_rmse_m"]),
        "curve": [(float(r["seconds"]), float(r["val_rmse_m"])) for r in rows],
    }


def val_within(curve: list[tuple[float, float]], seconds: float) -> float | None:
    vals = [v for s, v in curve if s <= seconds]
    return min(vals) if vals else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--md", type=Path, default=None)
    a = ap.parse_args()
    from topoae.training import evaluate_store

    report = {}
    for run in a.runs:
        cfg = json.loads((run / CONFIG).read_text())
        c = cfg["config"]
        test = evaluate_store(run / BEST, cfg["store"], split="test")
        report[run.name] = {
            "model": c["model"]["kind"],
            "preset": c["preset"],
            "feature_net": cfg.get("feature_net") or c["loss"].get("feature_net"),
            "normalise": c["normalise"],
            "batch": c["batch_size"],
            "lr": c["lr"],
            "budget": budget(run),
            "test": {
                k: test[k]
                for k in (
                    "rmse_m",
                    "mae_m",
                    "max_abs_m",
                    "slope_rmse_m",
                    "total_l2",
                    "max_patch_l2",
                    "psnr_db",
                    "ssim",
                )
            },
            "held_out": measure(run / BEST),
        }
        print(run.name, json.dumps(report[run.name]["test"]), flush=True)
    shortest = min(r["budget"]["seconds"] for r in report.values())
    for r in report.values():
        r["budget"]["val_rmse_within_shortest_m"] = val_within(r["budget"]["curve"], shortest)
    if a.json:
        a.json.write_text(json.dumps(report, indent=1, default=str) + "\n")
    md = render(report, shortest)
    if a.md:
        a.md.write_text(md)
    print(md)


def render(report: dict, shortest: float) -> str:
    lines = [
        "| run | model / preset | feature net | norm. | batch, lr | epochs | train s | best epoch | "
        f"val RMSE m (best) | val RMSE m within {shortest:.0f} s | test RMSE m | test max m | "
        "slope RMSE m/cell | total L2 | max patch L2 | SSIM |",
        "|" + "---|" * 16,
    ]
    for name, r in report.items():
        b, t = r["budget"], r["test"]
        lines.append(
            f"| {name} | {r['model']} / {r['preset']} | {r['feature_net'] or '–'} | {r['normalise']} | "
            f"{r['batch']}, {r['lr']:g} | {b['epochs']} | {b['seconds']:.0f} | {b['best_epoch']} | "
            f"{b['best_val_rmse_m']:.0f} | {b['val_rmse_within_shortest_m']:.0f} | {t['rmse_m']:.0f} | "
            f"{t['max_abs_m']:.0f} | {t['slope_rmse_m']:.0f} | {t['total_l2']:.2f} | "
            f"{t['max_patch_l2']:.2f} | {t['ssim']:.3f} |"
        )
    regions = sorted({k for r in report.values() for k in r["held_out"]})
    lines += [
        "",
        "Codec on held-out real regions (RMSE m / max m at payload ratio):",
        "",
        "| run | " + " | ".join(regions) + " |",
        "|---|" + "---|" * len(regions),
    ]
    for name, r in report.items():
        cells = []
        for k in regions:
            h = r["held_out"].get(k)
            cells.append(
                "–"
                if h is None
                else f"{h['rmse_m']:.0f} / {h['max_abs_m']:.0f} at {h['cr_payload_bytes']:.0f}×"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
