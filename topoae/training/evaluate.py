"""Score a trained checkpoint on a split of a patch store (thesis Table 5.1 and metres)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from topoae.data.normalise import Normalisation
from topoae.errors import ModelMismatchError, StoreError
from topoae.models.protocol import PatchModel


def _check_match(loaded: Any, normalise: Normalisation, patch: int) -> None:
    mode = loaded.normalise.get("mode")  # the checkpoint's dict
    if mode != normalise.mode:
        raise ModelMismatchError(
            f"the model was trained on {mode}-normalised patches, the store has {normalise.mode}"
        )
    want = Normalisation.from_dict(loaded.normalise)
    if want.mode == "global" and (
        not np.isclose(want.zmin, normalise.zmin) or not np.isclose(want.zrange, normalise.zrange)
    ):
        raise ModelMismatchError(
            "the store's global normalisation constants differ from the model's"
        )
    if loaded.model.patch_size != patch:
        raise ModelMismatchError(
            f"the model takes {loaded.model.patch_size}x{loaded.model.patch_size} patches, "
            f"the store has {patch}x{patch}"
        )


def _batches(ds: Any, size: int):
    from torch.utils.data import DataLoader

    return DataLoader(ds, batch_size=size, shuffle=False)


@torch.no_grad()
def reconstruct(model: PatchModel, x: torch.Tensor) -> torch.Tensor:
    """Deterministic reconstruction ``decode(mu)`` of normalised patches ``(B, 1, P, P)``."""
    mu, _ = model.encode(x)
    return model.decode(mu)


def evaluate_store(
    ckpt_path: str | os.PathLike,
    store_path: str | os.PathLike,
    split: str | None = "test",
    out_png: str | os.PathLike | None = None,
    *,
    batch_size: int = 64,
    device: str = "cpu",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Reconstruct every patch of a store split with a checkpoint and measure the errors.

    The reconstruction is ``decode(mu)`` (no sampling), denormalised to metres
    with the store's per-patch ``offset`` / ``scale``.

    Returns
    -------
    dict
        ``total_l2`` and ``max_patch_l2`` (thesis Table 5.1, [0, 1] GEBCO_2019
        scale), ``rmse_m``, ``mae_m``, ``max_abs_m``, ``psnr_db`` and ``ssim``
        (peak = data range of the split, as in :func:`topoae.metrics.compare`),
        ``total_l2_rmse_m`` (the total L2 as an RMSE), ``slope_rmse_m`` (RMSE of
        the cell-to-cell differences along both axes, metres per cell: the slope
        error that matters to a flow simulation), counts, throughput,
        ``model_id`` and, with ``out_png``, the figure's path: original,
        reconstruction and error of the best, median, 90th-percentile and
        worst patch, hillshaded.

    Raises
    ------
    ModelMismatchError
        The store's normalisation or patch size is not the model's.
    StoreError
        The split has no patch.
    """
    from topoae import metrics
    from topoae.checkpoint import load_checkpoint
    from topoae.data.dataset import PatchDataset
    from topoae.training.batches import resolve_device

    dev = resolve_device(device)
    loaded = load_checkpoint(ckpt_path, map_location=dev)
    model = loaded.model
    if not isinstance(model, PatchModel):
        raise ModelMismatchError(
            f"{ckpt_path} holds a {loaded.config.kind} model, not a patch model (AE, VAE, ...)"
        )
    ds = PatchDataset(store_path, split=split, augment="none")
    _check_match(loaded, ds.normalise, ds.patch_size)
    if len(ds) == 0:
        raise StoreError(f"the {split} split of {store_path} has no patch")
    if out_png is not None:
        from topoae._atomic import check_output

        check_output(out_png, overwrite=overwrite)

    lo, hi = np.inf, -np.inf  # pass 1: data range of the reference (PSNR / SSIM peak)
    for b in _batches(ds, batch_size):
        z = b["x"].double() * b["scale"].view(-1, 1, 1, 1) + b["offset"].view(-1, 1, 1, 1)
        lo, hi = min(lo, z.min().item()), max(hi, z.max().item())
    peak = hi - lo if hi > lo else 1.0

    sq = ab = 0.0
    n_cells = 0
    max_abs = 0.0
    ssim_sum = 0.0
    per_patch: list[np.ndarray] = []
    slope_sq, slope_n = 0.0, 0
    t0 = time.perf_counter()
    for b in _batches(ds, batch_size):
        x = b["x"].to(dev)
        rec = reconstruct(model, x).double().cpu().numpy()[:, 0]
        scale = b["scale"].numpy()[:, None, None]
        offset = b["offset"].numpy()[:, None, None]
        ref_m = b["x"].double().numpy()[:, 0] * scale + offset
        rec_m = rec * scale + offset
        m = metrics.compare(ref_m, rec_m, data_range=peak, patch=ds.patch_size)
        sq += m.rmse**2 * m.n_valid
        ab += m.mae * m.n_valid
        n_cells += m.n_valid
        max_abs = max(max_abs, m.max_abs)
        ssim_sum += (m.ssim or 0.0) * len(ref_m)
        per_patch.append(metrics.patch_errors(ref_m, rec_m, zrange=metrics.ZRANGE))
        for axis in (1, 2):  # slope error: forward differences along y and x
            ds_err = np.diff(rec_m, axis=axis) - np.diff(ref_m, axis=axis)
            slope_sq += float(np.sum(ds_err**2))
            slope_n += ds_err.size
    seconds = time.perf_counter() - t0
    errors = np.concatenate(per_patch)
    rmse = float(np.sqrt(sq / n_cells))
    total_l2 = float(np.sqrt(np.sum(errors**2)))
    result: dict[str, Any] = {
        "checkpoint": str(ckpt_path),
        "model_id": loaded.model_id,
        "model": loaded.config.kind,
        "preset": loaded.train_config.get("preset"),
        "store": str(store_path),
        "split": split,
        "normalise": loaded.normalise.get("mode"),
        "n_patches": len(ds),
        "n_cells": n_cells,
        "total_l2": total_l2,
        "max_patch_l2": float(errors.max()),
        "total_l2_rmse_m": metrics.thesis_l2_to_rmse(total_l2, n_cells),
        "rmse_m": rmse,
        "mae_m": ab / n_cells,
        "max_abs_m": max_abs,
        "psnr_db": float(20 * np.log10(peak / rmse)) if rmse > 0 else float("inf"),
        "ssim": ssim_sum / len(ds),
        "slope_rmse_m": float(np.sqrt(slope_sq / slope_n)),
        "data_range_m": peak,
        "seconds": seconds,
        "patches_per_s": len(ds) / seconds if seconds > 0 else float("inf"),
    }
    if out_png is not None:
        result["figure"] = str(_figure(model, ds, errors, out_png, result, dev, overwrite))
    return result


def _mosaic(patches: list[np.ndarray], p: int) -> np.ndarray:
    """Patches on a 2-column grid, first at the top left once drawn north-up, NaN gaps between."""
    gap = max(2, p // 16)
    rows = -(-len(patches) // 2)
    out = np.full((rows * p + (rows - 1) * gap, 2 * p + gap), np.nan)
    for k, a in enumerate(patches):
        r, c = divmod(k, 2)
        r = rows - 1 - r  # row 0 of the array is drawn at the bottom (south)
        out[r * (p + gap) : r * (p + gap) + p, c * (p + gap) : c * (p + gap) + p] = a
    return out


def _figure(
    model: PatchModel,
    ds: Any,
    errors: np.ndarray,
    out_png: str | os.PathLike,
    result: dict[str, Any],
    dev: torch.device,
    overwrite: bool,
) -> Path:
    """Original / reconstruction / error of the best, median, 90 % and worst patches, side by side."""
    from topoae.plotting import panel_figure, save_figure

    order = np.argsort(errors)
    picks = sorted(
        {
            int(order[0]),
            int(order[len(order) // 2]),
            int(order[int(0.9 * (len(order) - 1))]),
            int(order[-1]),
        },
        key=lambda i: errors[i],
    )
    items = [ds[i] for i in picks]
    x = torch.stack([it["x"] for it in items]).to(dev)
    rec = reconstruct(model, x).double().cpu().numpy()[:, 0]
    p = ds.patch_size
    refs = [it["x"].double().numpy()[0] * float(it["scale"]) + float(it["offset"]) for it in items]
    recs = [rec[k] * float(it["scale"]) + float(it["offset"]) for k, it in enumerate(items)]
    title = (
        f"{result['model']} ({result['preset']}) on {result['split']}: RMSE {result['rmse_m']:.1f} m, "
        f"total L2 {result['total_l2']:.2f}\npatches, left to right and top to bottom: best, median, 90th percentile, worst"
    )
    fig = panel_figure(_mosaic(refs, p), _mosaic(recs, p), title=title)
    save_figure(fig, out_png, overwrite=overwrite)
    return Path(out_png)
