"""Rate-distortion of the codec on real held-out grids, and its error-bounded mode vs SZ3/SPERR.

Usage::

    python benchmarks/codec_rd.py [--checkpoint CKPT] [--steps 1500] [--json OUT]

Without ``--checkpoint`` a small benchmark model is trained here, in plain torch,
on real grids of ``../shared/data`` (GMT regional grids and land DEMs; the
Tohoku box 139-147E 34-42N and the evaluation grids are left out) and cached in
``runs/codec_bench/model.pt``. It is a small model (patch 32, 10 latents, a
few minutes on 2 CPU cores), so the absolute errors measure this model, not the
best topoae can do; the codec-level comparisons (strides, 8-bit latents,
blending, residual coding) are what the figures are for.

Every ratio counts everything: overlap, per-patch normalisation, quantisation
parameters, the NaN mask, coordinates and the file format's own headers
(``CR file`` = float32 bytes of the grid / bytes of the Zarr store on disk).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from topoae.regions import TOHOKU_BOX, in_box

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
MODEL_PATH = REPO / "runs" / "codec_bench" / "model.pt"

TRAIN_GRIDS = [
    "gmt_regional/AFR.nc",
    "gmt_regional/App_O_topo5.nc",
    "gmt_regional/FR+IT.nc",
    "gmt_regional/GMT_App_O.nc",
    "gmt_regional/Iceland.nc",
    "gmt_regional/USEast_Coast.nc",
    "gmt_regional/bathy_1m.nc",
    "gmt_regional/depth_pixel.nc",
    "gmt_regional/india_topo.nc",
    "gmt_regional/tut_bathy.nc",
    "gmt_regional/BEDMAP_elevation.nc",
    "land_dem/us_30s_tut_relief_gmtcache.nc",
    "land_dem/topo_32_30s_gmtcache.nc",
]

#: Held-out evaluation regions: (label, file, bbox or None).
EVAL_GRIDS = [
    (
        "Suruga Bay, GEBCO 15''",
        "gebco_15s/gebco15s_suruga_bay_138.14-138.97E_34.62-35.46N.nc",
        None,
    ),
    ("Hebrides, GEBCO_2014 30''", "gebco_15s/gebco2014_30s_hebrides_9.5W-5.5W_56.4-56.9N.nc", None),
    ("South Pacific ridge, 1'", "gmt_regional/spac_33.nc", None),
    ("Tohoku box, ETOPO1 0.1 deg", "etopo_global/etopo1_bed_global_0.1deg_pybacktrack.grd", TOHOKU_BOX),
]


def bench_model_config():
    from topoae.models import ModelConfig
    from topoae.training.config import TrainConfig

    model = ModelConfig(
        kind="ae",
        patch_size=32,
        latent_dim=10,
        enc_filters=(16, 32, 32, 64),
        dec_filters=(32, 32, 16),
        hidden_dim=64,
    )
    return TrainConfig(model=model, normalise="patch")


def _training_patches(patch: int, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` NaN-free patches (metres) cut at random from the training grids."""
    from topoae.io import open_grid

    grids = []
    for rel in TRAIN_GRIDS:
        da = open_grid(DATA / rel)
        grids.append((da.values, da[da.dims[0]].values, da[da.dims[1]].values, da.dims[0] == "lat"))
    sizes = np.array([g[0].size for g in grids], dtype=float)
    out = []
    while len(out) < n:
        z, ys, xs, geographic = grids[rng.choice(len(grids), p=sizes / sizes.sum())]
        i = rng.integers(0, z.shape[0] - patch + 1)
        j = rng.integers(0, z.shape[1] - patch + 1)
        p = z[i : i + patch, j : j + patch]
        centre = (ys[i + patch // 2], xs[j + patch // 2])
        if np.isnan(p).any() or (geographic and in_box(TOHOKU_BOX, *centre)):
            continue
        out.append(p)
    return np.stack(out)


def train_bench_model(steps: int, seed: int = 0) -> Path:
    """Train the small benchmark AE in plain torch and save it as a topoae checkpoint."""
    from topoae.checkpoint import save_checkpoint
    from topoae.data.normalise import Normalisation, normalise
    from topoae.models import build_model

    cfg = bench_model_config()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    patch = cfg.model.patch_size
    data = _training_patches(patch, rng, 20000)
    norm = Normalisation(mode="patch")
    off, sc = norm.params(data)
    data = normalise(data, off, sc)
    model = build_model(cfg.model)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0 = time.perf_counter()
    model.train()
    for step in range(steps):
        idx = rng.integers(0, len(data), 64)
        x = data[idx]
        k = int(rng.integers(0, 4))
        x = np.rot90(x, k, axes=(1, 2))
        if rng.random() < 0.5:
            x = x[:, :, ::-1]
        xt = torch.from_numpy(np.ascontiguousarray(x))[:, None]
        loss = ((model(xt)["x_hat"] - xt) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps - 1:
            print(
                f"  step {step:5d}  loss {loss.item():.2e}  {time.perf_counter() - t0:.0f}s",
                flush=True,
            )
    MODEL_PATH.parent.mkdir(parents=True, exist_ok=True)
    extra = {"steps": steps, "train_seconds": time.perf_counter() - t0, "final_loss": loss.item()}
    save_checkpoint(MODEL_PATH, model, cfg, normalise=norm.to_dict(), extra=extra)
    return MODEL_PATH


def load_model(checkpoint: str | None, steps: int = 1500):
    """The model to benchmark: a given checkpoint, or the cached/trained benchmark model."""
    from topoae.checkpoint import load_checkpoint

    if checkpoint is None:
        if not MODEL_PATH.exists():
            print(f"training the benchmark model ({steps} steps) -> {MODEL_PATH}", flush=True)
            train_bench_model(steps)
        checkpoint = MODEL_PATH
    return load_checkpoint(checkpoint)


def eval_grid(rel: str, bbox):
    from topoae.io import open_grid

    return open_grid(DATA / rel, bbox=bbox).load()


def _errors(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    d = out.astype(np.float64) - ref
    return float(np.sqrt(np.nanmean(d**2))), float(np.nanmax(np.abs(d)))


def run_config(grid, model, **kw) -> dict:
    """Encode, save (Zarr), reload, decode one grid; errors, sizes and times."""
    from topoae import codec
    from topoae.codec import files as codec_io

    t0 = time.perf_counter()
    ds = codec.encode(grid, model, **kw)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = codec_io.save_latents(ds, Path(tmp) / "lat.zarr")
        nc_path = codec_io.save_latents(ds, Path(tmp) / "lat.nc")
        t2 = time.perf_counter()
        out = codec.decode(codec_io.open_latents(path), model).values
        t3 = time.perf_counter()
        s = codec_io.summary(ds, path)
        nc_bytes = nc_path.stat().st_size
    rmse, mx = _errors(out, grid.values)
    return {
        **{k: v for k, v in kw.items() if v is not None},
        "rmse": rmse,
        "max": mx,
        "cr_values": s["cr_values"],
        "cr_payload": s["cr_payload_bytes"],
        "cr_file": s["cr_file_bytes"],
        "file_bytes": s["file_bytes"],
        "cr_netcdf": 4 * s["cells"] / nc_bytes,
        "encode_s": t1 - t0,
        "decode_s": t3 - t2,
    }


def baseline_at_ratio(name: str, z: np.ndarray, ratio: float) -> dict:
    from topoae.baselines import get_baseline

    b = get_baseline(name)
    enc = b.at_ratio(z, ratio)
    rmse, mx = _errors(b.decode(enc.blob), z)
    return {"codec": name, "ratio": enc.ratio, "reached": enc.reached, "rmse": rmse, "max": mx}


def baseline_at_error(name: str, z: np.ndarray, e: float) -> dict:
    from topoae.baselines import get_baseline

    b = get_baseline(name)
    t0 = time.perf_counter()
    enc = b.at_error(z, e)
    dt = time.perf_counter() - t0
    _, mx = _errors(b.decode(enc.blob), z)
    return {"codec": name, "bound": e, "cr": enc.ratio, "max": mx, "encode_s": dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--json", default=str(REPO / "benchmarks" / "results" / "codec_rd.json"))
    ap.add_argument("--skip-global", action="store_true", help="skip the whole ETOPO5 grid")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint, args.steps)
    patch = model.model.patch_size
    results: dict = {
        "model_id": model.model_id,
        "model": model.config.to_dict(),
        "extra": model.extra,
    }
    results["rd"] = []
    for label, rel, bbox in EVAL_GRIDS:
        grid = eval_grid(rel, bbox)
        print(f"\n{label}: {grid.shape}", flush=True)
        for stride in (patch, patch - patch // 16, patch - patch // 8, patch - patch // 4):
            for q in ("none", "8bit"):
                r = {"grid": label, **run_config(grid, model, stride=stride, quantize=q)}
                results["rd"].append(r)
                print(
                    f"  stride {stride:3d} {q:5s} rmse {r['rmse']:8.2f} max {r['max']:8.1f}  CR values "
                    f"{r['cr_values']:6.1f} payload {r['cr_payload']:6.1f} zarr {r['cr_file']:6.1f} "
                    f"nc {r['cr_netcdf']:6.1f}  enc {r['encode_s']:.2f}s dec {r['decode_s']:.2f}s",
                    flush=True,
                )
        # the classic codecs at the ratio of our 8-bit default-stride setting
        ours = next(
            r
            for r in results["rd"]
            if r["grid"] == label and r["quantize"] == "8bit" and r["stride"] == patch - patch // 8
        )
        for name in ("sperr", "sz3"):
            b = baseline_at_ratio(name, grid.values, ours["cr_file"])
            results.setdefault("matched", []).append({"grid": label, **b})
            print(
                f"  {name:5s} at CR {b['ratio']:6.1f}: rmse {b['rmse']:8.2f} max {b['max']:8.1f}",
                flush=True,
            )

    bounded = [EVAL_GRIDS[0], EVAL_GRIDS[2]]
    if not args.skip_global:
        bounded.append(
            ("ETOPO5 global 5' (not held out)", "etopo_global/etopo5_global_5min_ferret.cdf", None)
        )
    results["bounded"] = []
    for label, rel, bbox in bounded:
        grid = eval_grid(rel, bbox)
        print(f"\nerror-bounded, {label}: {grid.shape}", flush=True)
        from topoae import codec
        from topoae.codec import files as codec_io

        t0 = time.perf_counter()
        base = codec.encode(grid, model, stride=patch - patch // 8, quantize="8bit")
        t_enc = time.perf_counter() - t0
        for e in (1.0, 10.0, 50.0, 250.0):
            t0 = time.perf_counter()
            ds = codec.add_residual(base, grid, model, max_error=e)
            t_res = time.perf_counter() - t0
            with tempfile.TemporaryDirectory() as tmp:
                path = codec_io.save_latents(ds, Path(tmp) / "lat.zarr")
                s = codec_io.summary(ds, path)
                out = codec.decode(codec_io.open_latents(path), model).values
            _, mx = _errors(out, grid.values)
            row = {
                "grid": label,
                "bound": e,
                "cr_file": s["cr_file_bytes"],
                "cr_payload": s["cr_payload_bytes"],
                "residual_bytes": int(ds["residual"].size),
                "max": mx,
                "encode_s": t_enc + t_res,
            }
            for name in ("sz3", "sperr"):
                b = baseline_at_error(name, grid.values, e)
                row[f"{name}_cr"], row[f"{name}_max"] = b["cr"], b["max"]
            results["bounded"].append(row)
            print(
                f"  E {e:6.1f}: topoae CR {row['cr_file']:6.1f} (max {mx:7.3f})  "
                f"SZ3 {row['sz3_cr']:6.1f} (max {row['sz3_max']:7.3f})  "
                f"SPERR {row['sperr_cr']:6.1f} (max {row['sperr_max']:7.3f})",
                flush=True,
            )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
