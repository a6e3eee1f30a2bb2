"""Fine-tune the synthesis of a trained hyperprior model on the codec's own latents and edges.

The synthesis is the only part of a model the latents' bytes do not depend on: retraining it
alone changes what a file decodes to, never its size. Here it learns from what the codec gives
it, which joint training only approximates:

* the latents are rounded as the coder rounds them (``μ + round(y − μ)``, μ from the
  hyperprior and the spatial context), the analysis and entropy model frozen; μ is computed
  over the window's latents, where the coder computes it over a whole 512-cell tile's, so a few
  percent of the latents land in the neighbouring bin;
* each window is a ``crop``-cell block decoded as the codec decodes a region's tile: the
  synthesis sees ``SYNTH_MARGIN`` latents of the neighbouring blocks on each side, each analysed
  with its own ``MARGIN`` cells of context (the window reads ``BORDER`` cells around the block);
* a side of the block is, with probability ``edge_prob``, a region's edge: the analysis then
  sees the block mirrored about its edge cell (``reflect``) and the synthesis the edge latents
  repeated (:func:`topoae.models.inference.mirror_edges`), as the decoder of a format-5 file
  does. Joint training never saw an edge, and a region's outermost cells carried several times
  the interior's squared error.

Loss: MSE on the network's scale divided by the level's MSE before fine-tuning (on the
validation windows coded as interior tiles), a random quality level per window: the rate being
fixed, each level only has to lose error, and every level weighs alike (λ_level · MSE, the
distortion term of the rate–distortion loss, lets the top level's few windows drive every
step). Validation: the four corner windows of each validation tile coded as whole regions (all
four sides edges) and as interior tiles, per level RMSE in metres, and the mean λ-weighted MSE.

(The synthesis shipped in session 12, model ``6c195abf``, was trained before ``BORDER``: its
context latents came from a 32-cell window border, so those on sides that were not edges were
analysed with a truncated context.)

    python -m topoae.training.synth --init topoae/weights/topoae-hyperprior-gebco15.pt \\
        --out runs/synth --minutes 90 [--resume]

Checkpoints (``last.pt`` every ``checkpoint_minutes``, ``best.pt`` on validation) hold the
whole network, only the synthesis ``g_s`` changed.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from topoae.checkpoint import read_checkpoint, save_checkpoint
from topoae.errors import ConfigError, TopoAEError
from topoae.layout import symmetric_index
from topoae.models.hyperprior import HyperpriorConfig, HyperpriorModel
from topoae.training.context import MARGIN  # cells of analysis context (RDCodecConfig.margin)
from topoae.training.rd import (
    CropSampler,
    _metres,
    cosine_lr,
    load_tiles,
    metrics_writer,
    prepare,
    resume_run,
    run_state,
    tile_scales,
)

#: latents of synthesis context around a block (``RDCodecConfig.synth_margin``)
SYNTH_MARGIN = 2
#: cells per latent
STRIDE = HyperpriorModel.downsample
#: cells of real surroundings read around a block: the synthesis' context latents are the
#: neighbouring tiles' own, each analysed with ``MARGIN`` cells of context beyond it
BORDER = SYNTH_MARGIN * STRIDE + MARGIN


@dataclass(frozen=True)
class SynthTrainConfig:
    """How a synthesis was fine-tuned (saved in every checkpoint)."""

    init: str = "topoae/weights/topoae-hyperprior-gebco15.pt"
    data: str = "data_cache/gebco15_tiles.npz"
    split: str = "benchmarks/rd_split.json"
    crop: int = 128
    batch: int = 8
    lr: float = 5e-6
    lr_final: float = 2e-6
    total_steps: int = 20000
    edge_prob: float = 0.25
    clip_norm: float = 1.0
    seed: int = 0
    val_every: int = 250
    checkpoint_minutes: float = 4.0

    def __post_init__(self) -> None:
        if self.crop < STRIDE or self.crop % STRIDE:
            raise ConfigError(f"crop must be a positive multiple of {STRIDE}, got {self.crop}")
        for name in ("batch", "total_steps", "val_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "lr_final", "checkpoint_minutes"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"{name} must be a positive number, got {v}")
        if not 0.0 <= self.edge_prob <= 1.0:
            raise ConfigError(f"edge_prob must be within 0..1, got {self.edge_prob}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reflect_index(lo: int, hi: int, n: int, low_edge: bool, high_edge: bool) -> np.ndarray:
    """Indices ``lo..hi-1`` relative to a block of ``n``, mirrored about the block's edge cell
    on each side that is an edge (``numpy.pad`` ``reflect``), left as they are on the others."""
    i = np.arange(lo, hi)
    if low_edge:
        i = np.where(i < 0, -i, i)
    if high_edge:
        i = np.where(i >= n, 2 * (n - 1) - i, i)
    return i


def latent_index(k: int, n: int, low_edge: bool, high_edge: bool) -> np.ndarray:
    """Latent indices ``−k..n+k-1`` relative to a block of ``n`` latents: past an edge, the edge
    latent repeated (``symmetric``, what :func:`mirror_edges` does); elsewhere the real ones."""
    i = np.arange(-k, n + k)
    sym = symmetric_index(-k, n + k, n)
    if low_edge:
        i = np.where(i < 0, sym, i)
    if high_edge:
        i = np.where(i >= n, sym, i)
    return i


def code_windows(net: HyperpriorModel, x: torch.Tensor, level: torch.Tensor,
                 edges: np.ndarray) -> torch.Tensor:
    """Decode blocks as the codec does, gradients through the synthesis only.

    ``x`` ``(B, 1, crop + 2·BORDER, crop + 2·BORDER)``: each block with its real surroundings;
    ``edges`` bool ``(B, 4)`` (top, bottom, left, right): which sides are a region's edge.
    Returns the synthesis of each block, ``(B, 1, crop, crop)``.
    """
    b, size = x.shape[0], x.shape[-1]
    crop = size - 2 * BORDER
    n = crop // STRIDE
    k0 = BORDER // STRIDE
    inputs = []
    for s in range(b):  # the analysis sees the block mirrored past its edges
        t, bo, le, ri = (bool(v) for v in edges[s])
        rows = torch.from_numpy(reflect_index(-BORDER, crop + BORDER, crop, t, bo) + BORDER)
        cols = torch.from_numpy(reflect_index(-BORDER, crop + BORDER, crop, le, ri) + BORDER)
        inputs.append(x[s].index_select(1, rows).index_select(2, cols))
    with torch.no_grad():
        y = net.analyse(torch.stack(inputs), level)
        z_hat = torch.round(net.hyper_analyse(y))
        mean, _ = net.conditional(y, *net.hyper_params(z_hat))
        y_hat = torch.round(y - mean) + mean
        wins = []
        for s in range(b):  # the synthesis sees the edge latents repeated past the edges
            t, bo, le, ri = (bool(v) for v in edges[s])
            rows = torch.from_numpy(latent_index(SYNTH_MARGIN, n, t, bo) + k0)
            cols = torch.from_numpy(latent_index(SYNTH_MARGIN, n, le, ri) + k0)
            wins.append(y_hat[s].index_select(1, rows).index_select(2, cols))
        y_in = torch.stack(wins)
    out = net.synthesise(y_in, level)
    m = SYNTH_MARGIN * STRIDE
    return out[..., m:m + crop, m:m + crop]


def val_windows(tiles: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    """The four corner blocks of every validation tile with their surroundings (metres) and
    the tile's scale; blocks start ``BORDER`` cells in, so every block has real surroundings."""
    size = crop + 2 * BORDER
    if len(tiles) == 0:
        raise ConfigError("no validation tiles in the data")
    if min(tiles.shape[1:]) < size:
        raise ConfigError(f"the validation tiles ({tiles.shape[1]}x{tiles.shape[2]}) are smaller than a "
                          f"block with its surroundings ({size})")
    wins, scales = [], []
    for a, sc in zip(tiles, tile_scales(tiles), strict=True):
        for r in (0, a.shape[0] - size):
            for c in (0, a.shape[1] - size):
                wins.append(_metres(a[r:r + size, c:c + size]))
                scales.append(sc)
    return np.stack(wins), np.asarray(scales)


@torch.no_grad()
def validate(net: HyperpriorModel, x: torch.Tensor, scales: np.ndarray, region: bool) -> dict[str, float]:
    """Per level RMSE (m) of the blocks, coded as whole regions (``region``) or as interior
    tiles, and the mean λ-weighted MSE (``val_loss``)."""
    net.eval()
    crop = x.shape[-1] - 2 * BORDER
    res: dict[str, float] = {}
    loss = []
    unit = net.config.unit
    for lev in range(net.config.levels):
        mse_n, mse_m = [], []
        for i in range(0, x.shape[0], 4):
            xb = x[i:i + 4]
            level = torch.full((xb.shape[0],), lev, dtype=torch.long)
            edges = np.full((xb.shape[0], 4), region)
            xh = code_windows(net, xb, level, edges)
            tgt = xb[..., BORDER:BORDER + crop, BORDER:BORDER + crop]
            per = ((xh - tgt) ** 2).reshape(xb.shape[0], -1).mean(1).numpy()
            mse_n.extend(per.tolist())
            mse_m.extend((per * (unit * scales[i:i + 4]) ** 2).tolist())
        res[f"rmse{lev}"] = math.sqrt(float(np.mean(mse_m)))
        res[f"mse{lev}"] = float(np.mean(mse_n))
        loss.append(net.config.lambdas[lev] * float(np.mean(mse_n)))
    res["val_loss"] = float(np.mean(loss))
    net.train()
    return res


def train(cfg: SynthTrainConfig, out: Path, *, minutes: float, resume: bool, threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    payload, _ = read_checkpoint(cfg.init)
    mcfg = HyperpriorConfig.from_dict(payload["config"]["model"])
    base_cfg = payload["config"]
    net = HyperpriorModel(mcfg)
    net.load_state_dict(payload["model"])
    for p in net.parameters():
        p.requires_grad_(False)
    for p in net.g_s.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(net.g_s.parameters(), lr=cfg.lr)
    size = cfg.crop + 2 * BORDER
    sampler = CropSampler(load_tiles(cfg.data, cfg.split, "train"), size, cfg.seed)
    vw, vs = val_windows(load_tiles(cfg.data, cfg.split, "val"), cfg.crop)
    val_x = torch.from_numpy(prepare(vw, vs, mcfg))
    step, best, wall = 0, float("inf"), 0.0
    last = out / "last.pt"
    saved_ref: list[float] = []
    if resume and last.exists():
        step, best, wall, st = resume_run(last, net, opt)
        sampler.set_state(json.loads(st["sampler"]))
        saved_ref = [float(v) for v in st["ref"]]
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    levels = mcfg.levels
    fh, writer = metrics_writer(out, ["step", "wall_s", "train_loss", "val_loss", "val_interior"]
                                + [f"rmse{k}" for k in range(levels)])
    vi = validate(net, val_x, vs, False) if step == 0 else {}
    ref = torch.tensor(saved_ref or [vi[f"mse{k}"] for k in range(levels)])
    if step == 0:
        v0 = validate(net, val_x, vs, True)
        writer.writerow([0, 0.0, "", round(v0["val_loss"], 5), round(vi["val_loss"], 5)]
                        + [round(v0[f"rmse{k}"], 3) for k in range(levels)])
        fh.flush()
        print("step 0 (the initial synthesis) val", round(v0["val_loss"], 4), "interior",
              round(vi["val_loss"], 4), flush=True)
    t_start = time.time() - wall
    t_ckpt = time.time()
    deadline = time.time() + minutes * 60
    run_loss: list[float] = []

    def save(path: Path, extra: dict[str, Any]) -> None:
        state = run_state(opt, step, best, time.time() - t_start, sampler.state(), ref=ref.tolist())
        save_checkpoint(path, net, {**base_cfg, "synthesis": cfg.to_dict()},
                        normalise={"mode": "offset-field"}, state=state, extra=extra)

    while step < cfg.total_steps and time.time() < deadline:
        lr = cosine_lr(cfg.lr, cfg.lr_final, step / cfg.total_steps)
        for g in opt.param_groups:
            g["lr"] = lr
        crops, scales = sampler.batch(cfg.batch)
        x = torch.from_numpy(prepare(crops, scales, mcfg))
        level = torch.from_numpy(sampler.rng.integers(levels, size=cfg.batch))
        edges = sampler.rng.random((cfg.batch, 4)) < cfg.edge_prob
        xh = code_windows(net, x, level, edges)
        tgt = x[..., BORDER:BORDER + cfg.crop, BORDER:BORDER + cfg.crop]
        mse = ((xh - tgt) ** 2).reshape(cfg.batch, -1).mean(1)
        loss = (mse / ref[level]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.g_s.parameters(), cfg.clip_norm)
        opt.step()
        step += 1
        run_loss.append(float(loss.detach()))
        if step % cfg.val_every == 0:
            v = validate(net, val_x, vs, True)
            vi = validate(net, val_x, vs, False)
            wall = time.time() - t_start
            writer.writerow([step, round(wall, 1), round(float(np.mean(run_loss)), 5),
                             round(v["val_loss"], 5), round(vi["val_loss"], 5)]
                            + [round(v[f"rmse{k}"], 3) for k in range(levels)])
            fh.flush()
            print(f"step {step} {wall / 60:.1f} min loss {np.mean(run_loss):.4f} val {v['val_loss']:.4f} "
                  f"interior {vi['val_loss']:.4f} "
                  + " ".join(f"L{k}:{v[f'rmse{k}']:.2f}m" for k in range(levels)), flush=True)
            run_loss = []
            if v["val_loss"] + vi["val_loss"] < best:
                best = v["val_loss"] + vi["val_loss"]
                save(out / "best.pt", {"step": step, **v})
        if time.time() - t_ckpt > cfg.checkpoint_minutes * 60:
            save(last, {"step": step})
            t_ckpt = time.time()
    save(last, {"step": step})
    fh.close()
    print(f"stopped at step {step}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Fine-tune a hyperprior model's synthesis on the codec's latents.")
    ap.add_argument("--init", default=None, help=f"the trained model [{SynthTrainConfig.init}]")
    ap.add_argument("--data", default=None, help=f"[{SynthTrainConfig.data}]")
    ap.add_argument("--split", default=None, help=f"[{SynthTrainConfig.split}]")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=60.0)
    # these default to the config's (a fresh run) or the run's (--resume) unless given
    ap.add_argument("--steps", type=int, default=None, help=f"[{SynthTrainConfig.total_steps}]")
    ap.add_argument("--batch", type=int, default=None, help=f"[{SynthTrainConfig.batch}]")
    ap.add_argument("--lr", type=float, default=None, help=f"[{SynthTrainConfig.lr}]")
    ap.add_argument("--edge-prob", type=float, default=None, help=f"[{SynthTrainConfig.edge_prob}]")
    ap.add_argument("--val-every", type=int, default=None, help=f"[{SynthTrainConfig.val_every}]")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if not (math.isfinite(a.minutes) and a.minutes > 0):
        ap.error(f"--minutes must be a positive number, got {a.minutes}")
    given = {k: v for k, v in (("init", a.init), ("data", a.data), ("split", a.split),
                               ("total_steps", a.steps), ("batch", a.batch), ("lr", a.lr),
                               ("edge_prob", a.edge_prob), ("val_every", a.val_every)) if v is not None}
    try:
        if a.resume and (out / "config.json").exists():
            saved = json.loads((out / "config.json").read_text())
            if any(k in given and given[k] != saved.get(k) for k in ("init", "lr", "edge_prob")):
                raise ConfigError("--init, --lr and --edge-prob cannot change a run being resumed")
            cfg = SynthTrainConfig(**{**saved, **given})  # e.g. --steps extends it
        else:
            cfg = SynthTrainConfig(**given)
        train(cfg, out, minutes=a.minutes, resume=a.resume, threads=a.threads)
    except TopoAEError as exc:
        raise SystemExit(f"Error: {exc}") from None
    except OSError as exc:
        raise SystemExit(f"Error: {exc.strerror or exc}: {exc.filename or ''}") from None


if __name__ == "__main__":
    main()
