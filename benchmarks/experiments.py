"""The "beyond the thesis" training experiments on the real patch stores.

Each experiment trains one configuration for a fixed budget (epochs over the
real train split, or a fixed subset of it), keeps the best-on-validation
weights, and scores them on the held-out test split with
:func:`topoae.training.evaluate_store` (thesis Table 5.1 metrics and metres).

    python benchmarks/experiments.py --list
    python benchmarks/experiments.py --run B1-patch B2-grad --out /tmp/exp/runs --threads 1
    python benchmarks/experiments.py --report --out /tmp/exp/runs

Stores (built by benchmarks/make_training_stores.py, Tohoku box excluded):
``/work/stores/real_global.zarr`` (GEBCO_2019 normalisation) and
``/work/stores/real_patch.zarr`` (per-patch min/max).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

STORES = {"global": "/work/stores/real_global.zarr", "patch": "/work/stores/real_patch.zarr"}
FEATURE_SUBSET = 512  # train patches for the feature-network comparison (VGG19 is ~15x a VAE step)


@dataclass(frozen=True)
class Experiment:
    """One run: a preset plus overrides, a store, a budget."""

    name: str
    what: str
    kind: str
    preset: str
    store: str
    epochs: int
    overrides: dict[str, Any] = field(default_factory=dict)
    subset: int | None = None  # train on the first N train patches only

    def config(self):
        from topoae.training import preset

        ov = dict(self.overrides)
        ov.setdefault("epochs", self.epochs)
        return preset(self.kind, self.preset, **ov)


THESIS_ARCH = {
    "decoder": "thesis",
    "head": "upsample",
    "output": "sigmoid",
    "init": "keras",
    "bn_momentum": 0.01,
    "bn_eps": 1e-3,
}
NEW_ARCH = {
    "decoder": "residual",
    "head": "pixelshuffle",
    "output": "linear",
    "init": "torch",
    "bn_momentum": 0.1,
    "bn_eps": 1e-5,
}
EPOCHS = 2
BATCH = 16

EXPERIMENTS = [
    # A: the thesis' configurations as published (learning rate 5e-5, its schedule), global normalisation.
    Experiment(
        "A-thesis-ae",
        "thesis AE (latent = 9216 values: no compression)",
        "ae",
        "thesis",
        "global",
        EPOCHS,
        {"batch_size": BATCH},
    ),
    Experiment(
        "A-thesis-vae", "thesis VAE", "vae", "thesis", "global", EPOCHS, {"batch_size": BATCH}
    ),
    Experiment(
        "A-thesis-vae-gan",
        "thesis VAE-GAN",
        "vae-gan",
        "thesis",
        "global",
        EPOCHS,
        {"batch_size": BATCH},
    ),
    # B: one change at a time, VAE latent 100, Adam 1e-3 with a cosine decay over the budget.
    Experiment(
        "B0-lr",
        "thesis VAE network, Adam 1e-3 cosine, global norm.",
        "vae",
        "default",
        "global",
        EPOCHS,
        {
            "batch_size": BATCH,
            "normalise": None,
            "model": THESIS_ARCH,
            "loss": {"grad_weight": 0.0},
        },
    ),
    Experiment(
        "B1-patch",
        "B0 + per-patch normalisation",
        "vae",
        "default",
        "patch",
        EPOCHS,
        {"batch_size": BATCH, "model": THESIS_ARCH, "loss": {"grad_weight": 0.0}},
    ),
    Experiment(
        "B2-grad",
        "B1 + slope loss (weight 1)",
        "vae",
        "default",
        "patch",
        EPOCHS,
        {"batch_size": BATCH, "model": THESIS_ARCH},
    ),
    Experiment(
        "B3-resid",
        "B2 + residual decoder, pixel-shuffle head, linear output",
        "vae",
        "default",
        "patch",
        EPOCHS,
        {"batch_size": BATCH},
    ),
    Experiment(
        "B4-resid-nograd",
        "B3 without the slope loss",
        "vae",
        "default",
        "patch",
        EPOCHS,
        {"batch_size": BATCH, "loss": {"grad_weight": 0.0}},
    ),
    Experiment(
        "B5-ae100",
        "B3 as a deterministic AE (latent 100, no KL)",
        "ae",
        "default",
        "patch",
        EPOCHS,
        {"batch_size": BATCH},
    ),
    Experiment(
        "B6-latent200",
        "B3 with latent 200",
        "vae",
        "default",
        "patch",
        EPOCHS,
        {"batch_size": BATCH, "model": {"latent_dim": 200}},
    ),
    Experiment(
        "B7-global",
        "B3 on the global normalisation",
        "vae",
        "default",
        "global",
        EPOCHS,
        {"batch_size": BATCH, "normalise": None},
    ),
    # C: DFC-VAE feature networks on the same data and budget (1 epoch over a 512-patch subset).
    Experiment(
        "C0-none",
        "control: B3 without perceptual loss",
        "vae",
        "default",
        "patch",
        1,
        {"batch_size": 16},
        FEATURE_SUBSET,
    ),
    Experiment(
        "C1-terrain",
        "DFC-VAE, terrain feature network",
        "dfc-vae",
        "default",
        "patch",
        1,
        {"batch_size": 16, "loss": {"feature_net": "terrain"}},
        FEATURE_SUBSET,
    ),
    Experiment(
        "C2-vgg-random",
        "DFC-VAE, VGG19 random weights",
        "dfc-vae",
        "default",
        "patch",
        1,
        {"batch_size": 16, "loss": {"feature_net": "vgg19-random"}},
        FEATURE_SUBSET,
    ),
    Experiment(
        "C3-vgg-imagenet",
        "DFC-VAE, VGG19 ImageNet (needs --perceptual-weights)",
        "dfc-vae",
        "default",
        "patch",
        1,
        {"batch_size": 16, "loss": {"feature_net": "vgg19-imagenet"}},
        FEATURE_SUBSET,
    ),
]
BY_NAME = {e.name: e for e in EXPERIMENTS}


def run(exp: Experiment, out: Path, perceptual_weights: str | None) -> dict[str, Any]:
    from torch.utils.data import Subset

    from topoae.data.dataset import PatchDataset
    from topoae.training import evaluate_store, fit

    store = STORES[exp.store]
    cfg = exp.config()
    train_ds = PatchDataset(store, split="train", augment=cfg.augment, seed=cfg.seed)
    val_ds = PatchDataset(store, split="val", augment="none")
    data = Subset(train_ds, range(min(exp.subset, len(train_ds)))) if exp.subset else train_ds
    run_dir = out / exp.name
    t0 = time.perf_counter()
    result = fit(
        cfg,
        data,
        val_ds,
        run_dir,
        normalise=train_ds.normalise,
        overwrite=True,
        device="cpu",
        perceptual_weights=perceptual_weights,
        checkpoint_minutes=None,
    )
    seconds = time.perf_counter() - t0
    scores = evaluate_store(
        run_dir / "best.pt", store, split="test", out_png=run_dir / "test.png", overwrite=True
    )
    seen = exp.epochs * len(data)
    doc = {
        "name": exp.name,
        "what": exp.what,
        "kind": exp.kind,
        "preset": exp.preset,
        "store": exp.store,
        "epochs": exp.epochs,
        "train_patches": len(data),
        "patches_seen": seen,
        "batch": cfg.batch_size,
        "threads": torch.get_num_threads(),
        "train_seconds": round(seconds, 1),
        "train_patches_per_s": round(seen / seconds, 2),
        "best_epoch": result.best_epoch,
        "val_rmse_m": result.best_val_rmse_m,
        "test": scores,
        "config": cfg.to_dict(),
        "date": time.strftime("%Y-%m-%d"),
    }
    (out / f"{exp.name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def rescore(out: Path) -> None:
    """Re-run the test-split evaluation of finished runs (after adding a metric)."""
    from topoae.training import evaluate_store

    for exp in EXPERIMENTS:
        f = out / f"{exp.name}.json"
        if f.exists():
            doc = json.loads(f.read_text())
            doc["test"] = evaluate_store(
                out / exp.name / "best.pt", STORES[exp.store], split="test"
            )
            f.write_text(json.dumps(doc, indent=2) + "\n")


def report(out: Path) -> str:
    lines = [
        "| run | what | store | budget | train s (p/s) | val RMSE m | test RMSE m | MAE m | max m | "
        "slope RMSE m/cell | total L2 | max patch L2 | PSNR dB | SSIM |",
        "|" + "---|" * 14,
    ]
    for exp in EXPERIMENTS:
        f = out / f"{exp.name}.json"
        if not f.exists():
            continue
        d = json.loads(f.read_text())
        t = d["test"]
        lines.append(
            f"| {d['name']} | {d['what']} | {d['store']} | {d['epochs']} ep x {d['train_patches']} | "
            f"{d['train_seconds']:.0f} ({d['train_patches_per_s']:.1f}) | {d['val_rmse_m']:.1f} | {t['rmse_m']:.1f} | "
            f"{t['mae_m']:.1f} | {t['max_abs_m']:.0f} | {t.get('slope_rmse_m', float('nan')):.1f} | {t['total_l2']:.3f} | {t['max_patch_l2']:.3f} | "
            f"{t['psnr_db']:.2f} | {t['ssim']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--run", nargs="*", default=[])
    ap.add_argument("--report", action="store_true")
    ap.add_argument(
        "--rescore", action="store_true", help="re-evaluate finished runs on the test split"
    )
    ap.add_argument("--out", default="/tmp/topoae-experiments")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--perceptual-weights", default=None)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    if args.list:
        for e in EXPERIMENTS:
            print(f"{e.name:18s} {e.what}")
    for name in args.run:
        exp = BY_NAME[name]
        print(f"== {name}: {exp.what}", flush=True)
        d = run(exp, out, args.perceptual_weights)
        print(
            f"   {d['train_seconds']:.0f} s, test RMSE {d['test']['rmse_m']:.1f} m, "
            f"total L2 {d['test']['total_l2']:.3f}",
            flush=True,
        )
    if args.rescore:
        rescore(out)
    if args.report:
        print(report(out))


if __name__ == "__main__":
    main()
