"""Rate–distortion training of the hyperprior codec model on real 15″ grids.

Data: a patch store made by ``topoae tile`` (``--data`` ending in ``.zarr``; the store
carries its split, e.g. ``--split-by-file benchmarks/rd_split.json``; patches are turned
back into metres with the store's offset and scale), or an ``.npz`` with ``names`` and an
int16 stack ``tiles (T, H, W)`` (fill −32768), made by ``benchmarks/make_rd_data.py``, with
a split file naming whole tiles per split (``--split``, ``benchmarks/rd_split.json``), or the
same tiles packed losslessly (``.tpk``, :mod:`topoae.training.tilepack`, a quarter of the
size: what a GPU machine is sent). The ``.npz`` and ``.tpk`` need only numpy (a GPU machine
without zarr). Each step draws random ``crop × crop``
windows from random training tiles (or patches) under a random symmetry of the square,
removes their offset field (:mod:`topoae.offset_field`, exactly as the codec
does), and trains rate (bits per cell) + λ_level · MSE (m²) with a random
quality level per sample.

Runs on CPU or CUDA (bf16 autocast on CUDA; likelihoods and GDN stay float32).
Checkpoints (``last.pt`` every ``checkpoint_minutes``, ``best.pt`` on the best
validation loss) are atomic; ``resume=True`` continues from ``last.pt``.
``metrics.csv`` logs step, wall time, and per-level validation bits per cell and
RMSE (m).

    python -m topoae.training.rd --data data_cache/gebco15_256.zarr --out runs/rd --minutes 120
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from topoae import offset_field
from topoae.checkpoint import read_checkpoint, save_checkpoint
from topoae.errors import ConfigError, InputError, TopoAEError
from topoae.models.context import SCHEDULES
from topoae.models.hyperprior import HyperpriorConfig, HyperpriorModel, rd_loss
from topoae.training import tilepack

FILL = -32768


@dataclass(frozen=True)
class RDTrainConfig:
    """How a hyperprior model was trained (saved in every checkpoint)."""

    model: HyperpriorConfig = field(default_factory=HyperpriorConfig)
    data: str = "data_cache/gebco15_tiles.npz"
    split: str = "benchmarks/rd_split.json"
    crop: int = 128
    batch: int = 8
    lr: float = 2e-4
    lr_final: float = 2e-5
    total_steps: int = 40000
    clip_norm: float = 1.0
    seed: int = 0
    val_every: int = 500
    checkpoint_minutes: float = 4.0
    #: distortion weight 1 + depth_weight · exp(−|z| / depth_scale) (z in metres), normalised
    #: to mean 1 per crop: 0 is plain MSE; > 0 spends the rate near the coastline (issue 14)
    depth_weight: float = 0.0
    depth_scale: float = 50.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["gdn"] = "linear"  # GDN parameters held directly (see topoae.models.hyperprior.GDN)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RDTrainConfig:
        d = dict(d)
        d.pop("gdn", None)
        d["model"] = HyperpriorConfig.from_dict(d["model"])
        return cls(**d)


def load_tiles(data: str | Path, split_file: str | Path, split: str) -> np.ndarray:
    """int16 stack of the tiles of one split, from an ``.npz`` (``names``, ``tiles``) or a
    :mod:`topoae.training.tilepack` file (``.tpk``, what a GPU machine is sent)."""
    wanted = set(json.loads(Path(split_file).read_text())[split])
    if str(data).endswith(tilepack.SUFFIX):
        names, tiles = tilepack.read(data)
    else:
        if not Path(data).is_file():
            raise InputError(f"{data} not found")
        z = np.load(data)
        names, tiles = list(z["names"]), z["tiles"]
    idx = [i for i, n in enumerate(names) if n in wanted]
    if not idx:
        raise ConfigError(f"{data} holds no {split} tile of {split_file}")
    return tiles[idx]


def load_store(path: str | Path, split: str) -> np.ndarray:
    """Patches of one split of a ``topoae tile`` store, in metres: float32 ``(N, P, P)``, NaN
    for nodata (``patches * scale + offset``). Needs zarr (imported here only)."""
    from topoae.data.splits import NAMES
    from topoae.data.tiling import open_store

    group, _ = open_store(path)
    idx = np.flatnonzero(np.asarray(group["split"][:]) == NAMES[split])
    offset, scale = np.asarray(group["offset"][:]), np.asarray(group["scale"][:])
    arr = group["patches"]
    out = np.empty((len(idx), *arr.shape[1:]), dtype=np.float32)
    step = max(1, int(arr.chunks[0]))
    for i in range(0, len(idx), step):  # a chunk's worth at a time bounds the float64 copy
        sel = idx[i:i + step]
        p = np.asarray(arr.get_orthogonal_selection((sel, slice(None), slice(None))), np.float64)
        out[i:i + len(sel)] = p * scale[sel, None, None] + offset[sel, None, None]
    return out


def load_split(data: str | Path, split_file: str | Path, split: str) -> np.ndarray:
    """Tiles of one split: a ``.zarr`` patch store's patches in metres (:func:`load_store`,
    ``split_file`` unused), else the int16 ``.npz`` tiles named in ``split_file``."""
    if str(data).rstrip("/").endswith(".zarr"):
        return load_store(data, split)
    return load_tiles(data, split_file, split)


def cosine_lr(lr: float, lr_final: float, frac: float) -> float:
    """The learning rate at fraction ``frac`` of a run: cosine from ``lr`` to ``lr_final``."""
    return lr_final + 0.5 * (lr - lr_final) * (1 + math.cos(math.pi * frac))


def metrics_writer(out: Path, header: list[str]):
    """``(file, csv writer)`` appending to ``out/metrics.csv``; ``header`` written to a new file."""
    metrics = out / "metrics.csv"
    new_file = not metrics.exists()
    fh = metrics.open("a", newline="")
    writer = csv.writer(fh)
    if new_file:
        writer.writerow(header)
    return fh, writer


def run_state(opt: torch.optim.Optimizer, step: int, best: float, wall: float, rng_state: Mapping[str, Any],
              rng_key: str = "sampler", **more: Any) -> dict[str, Any]:
    """What a checkpoint keeps to resume a run: the optimiser, step, best validation loss, wall
    seconds trained, the numpy generator's state (under ``rng_key``), torch's, and ``more``."""
    return {"optimizer": opt.state_dict(), "step": step, "best": best, "wall": wall,
            rng_key: json.dumps(rng_state), "torch_rng": torch.get_rng_state(), **more}


def resume_run(path: Path, net: torch.nn.Module, opt: torch.optim.Optimizer
               ) -> tuple[int, float, float, dict[str, Any]]:
    """Load a run's checkpoint (:func:`run_state`) into ``net`` and ``opt`` and restore torch's
    generator: ``(step, best, wall, state)``; the caller restores its numpy generator."""
    payload, _ = read_checkpoint(path)
    net.load_state_dict(payload["model"])
    st = payload["state"]
    opt.load_state_dict(st["optimizer"])
    torch.set_rng_state(st["torch_rng"])
    step, best, wall = int(st["step"]), float(st["best"]), float(st["wall"])
    print(f"resumed at step {step} ({wall / 60:.1f} min trained)", flush=True)
    return step, best, wall, st


def _metres(a: np.ndarray) -> np.ndarray:
    """float64 metres with NaN for nodata, from int16 tiles (fill −32768) or float metres."""
    if np.issubdtype(a.dtype, np.integer):
        return np.where(a == FILL, np.nan, a.astype(np.float64))
    return a.astype(np.float64)


def prepare(windows: np.ndarray, scales: np.ndarray, cfg: HyperpriorConfig) -> np.ndarray:
    """Metres windows ``(B, h, w)`` -> network inputs ``(B, 1, h, w)`` float32.

    The offset field of each window is computed and expanded exactly as the codec
    does for a region, and the residual divided by ``unit × scale`` (the region's
    roughness, metres per cell); NaN cells become 0.
    """
    out = np.empty((windows.shape[0], 1, *windows.shape[1:]), dtype=np.float32)
    for i, w in enumerate(windows):
        nodes = offset_field.compute_nodes(w, cfg.offset_stride, cfg.offset_step)
        off = offset_field.expand(nodes, w.shape, cfg.offset_stride, cfg.offset_step)
        r = (w - off) / (cfg.unit * scales[i])
        out[i, 0] = np.where(np.isfinite(r), r, 0.0)
    return out


def depth_weights(windows: np.ndarray, weight: float, scale: float) -> np.ndarray:
    """Per-cell distortion weights ``(B, 1, h, w)`` float32 for metres windows ``(B, h, w)``:
    ``1 + weight · exp(−|z| / scale)``, 0 on NaN cells, normalised to mean 1 per window."""
    z = np.abs(np.asarray(windows, np.float64))
    w = np.where(np.isfinite(z), 1.0 + weight * np.exp(-np.nan_to_num(z, nan=0.0) / scale), 0.0)
    w /= np.maximum(w.reshape(len(w), -1).mean(1), 1e-12)[:, None, None]
    return w[:, None].astype(np.float32)


def tile_scales(tiles: np.ndarray) -> np.ndarray:
    """Each tile's roughness rounded as the codec rounds a region's (metres per cell)."""
    out = []
    for a in tiles:
        z = _metres(a)
        out.append(offset_field.scale_from_exponent(offset_field.scale_exponent(offset_field.roughness(z))))
    return np.asarray(out)


class CropSampler:
    """Random valid crops under the 8 symmetries of the square, reproducible per seed.

    ``tiles`` ``(T, H, W)``: int16 with fill −32768, or float metres with NaN; ``H, W >= crop``.
    """

    def __init__(self, tiles: np.ndarray, crop: int, seed: int) -> None:
        if len(tiles) == 0:
            raise ConfigError("no training tiles or patches in the data")
        if min(tiles.shape[1:]) < crop:
            raise ConfigError(
                f"crop {crop} is larger than the tiles or patches ({tiles.shape[1]}x{tiles.shape[2]})"
            )
        self.tiles = tiles
        self.scales = tile_scales(tiles)
        self.crop = crop
        self.rng = np.random.default_rng(seed)

    def state(self) -> dict[str, Any]:
        return dict(self.rng.bit_generator.state)

    def set_state(self, s: dict[str, Any]) -> None:
        self.rng.bit_generator.state = s

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` crops (metres) and their scales: the tile's roughness × 2^U(−½, ½)."""
        out = np.empty((n, self.crop, self.crop), dtype=np.float64)
        scales = np.empty(n)
        t, h, w = self.tiles.shape
        i = 0
        while i < n:
            k = self.rng.integers(t)
            r = self.rng.integers(h - self.crop + 1)
            c = self.rng.integers(w - self.crop + 1)
            a = _metres(self.tiles[k, r:r + self.crop, c:c + self.crop])
            if np.isnan(a).mean() > 0.01:
                continue
            a = np.rot90(a, int(self.rng.integers(4)))
            if self.rng.integers(2):
                a = a[:, ::-1]
            out[i] = a
            scales[i] = self.scales[k] * 2.0 ** self.rng.uniform(-0.5, 0.5)
            i += 1
        return out, scales


def validation_windows(tiles: np.ndarray, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Fixed windows: the four corners of every validation tile (one window where a tile is
    ``size`` wide; ``size`` shrinks to smaller tiles), with the tile's scale."""
    if len(tiles) == 0:
        raise ConfigError("no validation tiles or patches in the data")
    size = min(size, *tiles.shape[1:])
    wins, scales = [], []
    for a, sc in zip(tiles, tile_scales(tiles), strict=True):
        for r in sorted({0, a.shape[0] - size}):
            for c in sorted({0, a.shape[1] - size}):
                wins.append(_metres(a[r:r + size, c:c + size]))
                scales.append(sc)
    return np.stack(wins), np.asarray(scales)


@torch.no_grad()
def validate(model: HyperpriorModel, x: torch.Tensor, scales: np.ndarray,
             device: torch.device) -> dict[str, float]:
    """Estimated bits per cell and RMSE (m) per level with rounding (not noise), and mean loss."""
    from topoae.models.entropy import gaussian_likelihood

    model.eval()
    res: dict[str, float] = {}
    losses = []
    unit = model.config.unit
    for lev in range(model.config.levels):
        bits_all, mse_n, mse_m = [], [], []
        for i in range(0, x.shape[0], 4):
            xb = x[i:i + 4].to(device)
            level = torch.full((xb.shape[0],), lev, dtype=torch.long, device=device)
            y = model.analyse(xb, level)
            z_hat = torch.round(model.hyper_analyse(y))
            mean, scale = model.conditional(y, *model.hyper_params(z_hat))
            y_sym = torch.round(y - mean)
            bits = -torch.log2(gaussian_likelihood(y_sym, scale)).sum() - torch.log2(
                model.z_density.likelihood(z_hat)).sum()
            x_hat = model.synthesise(y_sym + mean, level)
            per = ((x_hat - xb) ** 2).reshape(xb.shape[0], -1).mean(1).cpu().numpy()
            bits_all.append(float(bits) / xb[:, 0].numel())
            mse_n.extend(per.tolist())
            mse_m.extend((per * (unit * scales[i:i + 4]) ** 2).tolist())
        b = float(np.mean(bits_all))
        res[f"bpc{lev}"] = b
        res[f"rmse{lev}"] = math.sqrt(float(np.mean(mse_m)))
        losses.append(b + model.config.lambdas[lev] * float(np.mean(mse_n)))
    res["val_loss"] = float(np.mean(losses))
    model.train()
    return res


def map_gains(gain: torch.Tensor, old: Any, new: Any) -> torch.Tensor:
    """Log-gains for the λ ladder ``new`` from a model trained on the ladder ``old``.

    A λ of ``old`` keeps its row; any other λ gets the row interpolated (or, outside the
    old ladder, extrapolated) linearly in log λ between its two nearest old levels, so a
    warm start can add a level below or above the trained ones.
    """
    lo = np.log(np.asarray(old, dtype=np.float64))
    rows = []
    for lam in new:
        t = math.log(lam)
        hit = np.flatnonzero(np.isclose(lo, t))
        if hit.size:
            rows.append(gain[int(hit[0])].clone())
            continue
        if len(lo) == 1:
            rows.append(gain[0].clone())
            continue
        j = int(np.clip(np.searchsorted(lo, t), 1, len(lo) - 1))
        w = (t - lo[j - 1]) / (lo[j] - lo[j - 1])
        rows.append(gain[j - 1] + float(w) * (gain[j] - gain[j - 1]))
    return torch.stack(rows)


def train(cfg: RDTrainConfig, out: Path, *, minutes: float, resume: bool, device: str,
          threads: int | None, init: str | None = None) -> None:
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model = HyperpriorModel(cfg.model).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sampler = CropSampler(load_split(cfg.data, cfg.split, "train"), cfg.crop, cfg.seed)
    val_w, val_s = validation_windows(load_split(cfg.data, cfg.split, "val"))
    val_x = torch.from_numpy(prepare(val_w, val_s, cfg.model))
    step, best, wall = 0, float("inf"), 0.0
    last = out / "last.pt"
    if init and not (resume and last.exists()):
        payload, _ = read_checkpoint(init)
        own = model.state_dict()
        warm = {k: v for k, v in payload["model"].items()
                if k in own and own[k].shape == v.shape and k not in ("gain", "lambdas")}
        if payload["config"].get("gdn") != "linear":  # older runs held GDN's β, γ as square roots
            for k in list(warm):
                if k.endswith(".beta"):
                    warm[k] = warm[k].clamp_min(1e-3) ** 2
                elif k.endswith(".gamma"):
                    warm[k] = warm[k].clamp_min(0.0) ** 2 + 1e-3 * (1 - torch.eye(warm[k].shape[0]))
        if "gain" in payload["model"]:
            warm["gain"] = map_gains(payload["model"]["gain"],
                                     payload["config"]["model"].get("lambdas", HyperpriorConfig.lambdas),
                                     cfg.model.lambdas)
        model.load_state_dict(warm, strict=False)
        print(f"warm start from {init}: {len(warm)} of {len(own)} tensors", flush=True)
    if resume and last.exists():
        step, best, wall, st = resume_run(last, model, opt)
        sampler.set_state(json.loads(st["sampler"]))
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    levels = cfg.model.levels
    fh, writer = metrics_writer(out, ["step", "wall_s", "train_loss", "val_loss"]
                                + [f"bpc{k}" for k in range(levels)] + [f"rmse{k}" for k in range(levels)])
    t_start = time.time() - wall
    t_ckpt = time.time()
    deadline = time.time() + minutes * 60
    run_loss: list[float] = []

    def save(path: Path, extra: dict[str, Any]) -> None:
        state = run_state(opt, step, best, time.time() - t_start, sampler.state())
        save_checkpoint(path, model, cfg, normalise={"mode": "offset-field"}, state=state,
                        extra=extra)

    use_amp = dev.type == "cuda"
    while step < cfg.total_steps and time.time() < deadline:
        lr = cosine_lr(cfg.lr, cfg.lr_final, step / cfg.total_steps)
        for g in opt.param_groups:
            g["lr"] = lr
        crops, scales = sampler.batch(cfg.batch)
        x = torch.from_numpy(prepare(crops, scales, cfg.model)).to(dev)
        level = torch.from_numpy(sampler.rng.integers(levels, size=cfg.batch)).to(dev)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
            outd = model(x, level)
        wt = (torch.from_numpy(depth_weights(crops, cfg.depth_weight, cfg.depth_scale)).to(dev)
              if cfg.depth_weight > 0 else None)
        parts = rd_loss(model, outd, x, level, wt)
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
        opt.step()
        step += 1
        run_loss.append(float(parts["loss"].detach()))
        if step % cfg.val_every == 0:
            v = validate(model, val_x, val_s, dev)
            wall = time.time() - t_start
            writer.writerow([step, round(wall, 1), round(float(np.mean(run_loss)), 5),
                             round(v["val_loss"], 5)]
                            + [round(v[f"bpc{k}"], 5) for k in range(levels)]
                            + [round(v[f"rmse{k}"], 3) for k in range(levels)])
            fh.flush()
            print(f"step {step} {wall / 60:.1f} min loss {np.mean(run_loss):.4f} val {v['val_loss']:.4f} "
                  + " ".join(f"L{k}:{32 / max(v[f'bpc{k}'], 1e-9):.0f}x/{v[f'rmse{k}']:.1f}m"
                             for k in range(levels)), flush=True)
            run_loss = []
            if v["val_loss"] < best:
                best = v["val_loss"]
                save(out / "best.pt", {"step": step, **v})
        if time.time() - t_ckpt > cfg.checkpoint_minutes * 60:
            save(last, {"step": step})
            t_ckpt = time.time()
    save(last, {"step": step})
    fh.close()
    print(f"stopped at step {step}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Train the hyperprior codec model (rate + λ·MSE).")
    ap.add_argument("--data", default=None,
                    help="a topoae tile store (.zarr, carries its split), an int16 .npz of tiles or a .tpk "
                         f"[default: {RDTrainConfig.data}; with --resume: the run's, unless given]")
    ap.add_argument("--split", default=None,
                    help=f"split file of the .npz / .tpk tiles [default: {RDTrainConfig.split}]")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=60.0)
    # these five default to the config's (a fresh run) or the run's (--resume) unless given
    ap.add_argument("--steps", type=int, default=None, help=f"[{RDTrainConfig.total_steps}]")
    ap.add_argument("--batch", type=int, default=None, help=f"[{RDTrainConfig.batch}]")
    ap.add_argument("--crop", type=int, default=None, help=f"[{RDTrainConfig.crop}]")
    ap.add_argument("--lr", type=float, default=None, help=f"[{RDTrainConfig.lr}]")
    ap.add_argument("--channels", type=int, default=HyperpriorConfig.channels)
    ap.add_argument("--latent-channels", type=int, default=HyperpriorConfig.latent_channels)
    ap.add_argument("--val-every", type=int, default=None, help=f"[{RDTrainConfig.val_every}]")
    ap.add_argument("--lambdas", default=None,
                    help="comma-separated λ ladder of a fresh or warm-started run (with --init, "
                         "new levels start from gains interpolated in log λ) "
                         f"[{','.join(str(v) for v in HyperpriorConfig.lambdas)}]")
    ap.add_argument("--context", default="", choices=["", *sorted(SCHEDULES)],
                    help="a spatial context of the latents, trained with the rest (a fresh or "
                         "warm-started run; topoae.training.context trains one on frozen transforms)")
    ap.add_argument("--depth-weight", type=float, default=RDTrainConfig.depth_weight,
                    help="weight shallow water and low land: 1 + W·exp(−|z|/scale)")
    ap.add_argument("--depth-scale", type=float, default=RDTrainConfig.depth_scale)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--init", default=None, help="warm start: weights of another run (same shapes)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    data = a.data or RDTrainConfig.data
    store = data.rstrip("/").endswith(".zarr")
    if store and a.split is not None:
        ap.error("--split is for .npz / .tpk data; a .zarr patch store carries its split")
    split = "" if store else (a.split or RDTrainConfig.split)
    lambdas: dict[str, Any] = {}
    if a.lambdas is not None:
        try:
            lams = tuple(sorted(float(v) for v in a.lambdas.split(",")))
        except ValueError:
            ap.error(f"--lambdas must be comma-separated numbers, got {a.lambdas!r}")
        if not lams or min(lams) <= 0:
            ap.error("--lambdas must be positive")
        lambdas = {"lambdas": lams}
    if a.resume and (out / "config.json").exists():
        if lambdas:
            ap.error("--lambdas cannot change a run being resumed (warm-start a new one with --init)")
        cfg = RDTrainConfig.from_dict(json.loads((out / "config.json").read_text()))
        if a.data is not None:  # the same tiles elsewhere or as .npz (a GPU machine has no zarr)
            keep = not store and a.split is None and cfg.split
            cfg = replace(cfg, data=data, split=cfg.split if keep else split)
        given = {k: v for k, v in (("total_steps", a.steps), ("batch", a.batch), ("crop", a.crop),
                                   ("lr", a.lr), ("val_every", a.val_every)) if v is not None}
        cfg = replace(cfg, **given)  # e.g. a GPU resumes a CPU run with a larger batch
    else:
        cfg = RDTrainConfig(
            model=HyperpriorConfig(channels=a.channels, latent_channels=a.latent_channels,
                                   context=a.context, **lambdas),
            data=data, split=split, crop=a.crop or RDTrainConfig.crop,
            batch=a.batch or RDTrainConfig.batch, lr=a.lr or RDTrainConfig.lr,
            total_steps=a.steps or RDTrainConfig.total_steps,
            val_every=a.val_every or RDTrainConfig.val_every, depth_weight=a.depth_weight,
            depth_scale=a.depth_scale)
    try:
        train(cfg, out, minutes=a.minutes, resume=a.resume, device=a.device, threads=a.threads,
              init=a.init)
    except TopoAEError as exc:
        raise SystemExit(f"Error: {exc}") from None


if __name__ == "__main__":
    main()
