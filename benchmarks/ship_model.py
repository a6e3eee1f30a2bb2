"""Turn a training run's best checkpoint into the shipped model, and measure it on held-out data.

    python benchmarks/ship_model.py runs/ship-vae [--out topoae/weights/topoae-vae-default.pt]

Writes a weights-only float16 copy (no optimiser state; ~half the bytes), checks that
float16 does not move the error, and prints the model card's figures as JSON: RMSE,
max error and compression ratios of the codec on the held-out real grids (the bundled
Japan-trench ETOPO5 crop, the Suruga Bay 15″ GEBCO tile) and the store's test split.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from topoae.checkpoint import content_digest, read_checkpoint
from topoae.regions import TOHOKU_BOX
from topoae.training.trainer import BEST

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
HELD_OUT = {
    "japan_trench_etopo5 (bundled, 5')": REPO / "topoae" / "assets" / "japan_trench_etopo5.nc",
    "suruga_bay_gebco_15s": DATA / "gebco_15s" / "gebco15s_suruga_bay_138.14-138.97E_34.62-35.46N.nc",
    "tohoku_box_etopo1_0.1deg": DATA / "etopo_global" / "etopo1_bed_global_0.1deg_pybacktrack.grd",
}


def half_copy(src: Path, dst: Path, note: dict) -> None:
    payload, _ = read_checkpoint(src)
    payload["model"] = {k: v.half() if v.is_floating_point() else v for k, v in payload["model"].items()}
    payload["state"] = None
    payload["extra"] = {**payload.get("extra", {}), "shipped": note}
    payload["digest"] = content_digest(payload)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(dst)


def measure(ckpt: Path) -> dict:
    from topoae import codec, metrics
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import files as codec_io
    from topoae.io import open_grid

    lm = load_checkpoint(ckpt)
    out = {}
    for name, path in HELD_OUT.items():
        if not path.exists():
            continue
        grid = open_grid(path, bbox=TOHOKU_BOX if "tohoku" in name else None).load()
        t = time.perf_counter()
        ds = codec.encode(grid, lm, quantize="8bit")
        rec = codec.decode(ds, lm)
        secs = time.perf_counter() - t
        m = metrics.compare(grid.values, rec.values)
        s = codec_io.summary(ds)
        out[name] = {"shape": list(grid.shape), "rmse_m": round(m.rmse, 2), "mae_m": round(m.mae, 2),
                     "max_abs_m": round(m.max_abs, 1), "psnr_db": round(m.psnr, 2),
                     "cr_values": round(s["cr_values"], 1), "cr_payload_bytes": round(s["cr_payload_bytes"], 1),
                     "seconds": round(secs, 2)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, default=REPO / "topoae" / "weights" / "topoae-vae-default.pt")
    args = ap.parse_args()
    best = args.run / BEST
    payload, run_id = read_checkpoint(best)
    note = {"from_run": str(args.run), "from_checkpoint_sha256": run_id, "dtype": "float16",
            "epoch": payload.get("extra", {}).get("epoch")}
    half_copy(best, args.out, note)
    _, shipped_id = read_checkpoint(args.out)
    report = {"shipped": str(args.out.relative_to(REPO)), "model_id": shipped_id, "bytes": args.out.stat().st_size,
              "extra": payload.get("extra", {}), "float32": measure(best), "float16": measure(args.out)}
    from topoae.checkpoint import load_checkpoint

    lm = load_checkpoint(args.out)
    card = {"model_id": shipped_id, "file": args.out.name, "bytes": report["bytes"],
            "latent_dim": int(lm.model.latent_dim), "normalise": lm.normalise["mode"],
            "config": lm.train_config, "trained": note,
            "bundled_region": report["float16"]["japan_trench_etopo5 (bundled, 5')"],
            "held_out": report["float16"]}
    args.out.with_suffix(".card.json").write_text(json.dumps(card, indent=1, default=str) + "\n")
    print(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
