"""Fine-tune the synthesis of a trained hyperprior model on the codec's own latents and edges.

The synthesis is the only part of a model the latents' bytes do not depend on: retraining it
alone changes what a file decodes to, never its size. With ``--analysis`` the encoder's side
(analysis and hyper-analysis, which no decoder runs) trains with it on rate + λ · distortion;
the decoder's entropy model (hyper-synthesis, densities, context, gains) stays frozen, so a
release made from the result (``benchmarks/ship_learned.py --synthesis``) keeps decoding every
earlier release's files with their own synthesis and tables. ``--hyper`` (with ``--analysis``)
trains the hyper-synthesis and the gains too: they are decoder-side but small (1.3 MB), so the
release keeps the replaced ones with the replaced synthesis; the densities and the context
(16 MB, not kept per release) stay frozen. Here the
network learns from what the codec gives it, which joint training only approximates:

* the latents are rounded as the coder rounds them (``μ + round(y − μ)``, μ from the
  hyperprior and the spatial context), the analysis and entropy model frozen (unless
  ``--analysis`` / ``--hyper`` train them); μ is computed
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
step). With ``--analysis``: the level's rate–distortion loss ``bpc + λ · MSE`` (bits of noisy
latents and hyper-latents under the frozen densities, the block's own only) divided by its value
before fine-tuning. Validation: the four corner windows of each validation tile coded as whole
regions (all four sides edges) and as interior tiles, per level RMSE in metres and estimated
bits per cell (of the rounded symbols); ``best.pt`` minimises the sum over the two sets of the
mean over levels of the training loss relative to its value before fine-tuning (1 at the
start; the session-12 synthesis was picked on the λ-weighted MSE, which the top levels drive).

(The synthesis shipped in session 12, model ``6c195abf``, was trained before ``BORDER``: its
context latents came from a 32-cell window border, so those on sides that were not edges were
analysed with a truncated context.)

    python -m topoae.training.synth --init topoae/weights/topoae-hyperprior-gebco15.pt \\
        --out runs/synth --minutes 90 [--analysis] [--resume]

Checkpoints (``last.pt`` every ``checkpoint_minutes``, ``best.pt`` on validation) hold the
whole network, only the synthesis ``g_s`` changed (with ``--analysis`` also ``g_a``, ``h_a``;
with ``--hyper`` also ``h_s`` and ``gain``).
The estimated bits are for training only: the real coder uses the release's fitted tables,
so a release refits them to the new analysis (``ship_learned.py --synthesis CKPT
--refit-tables N``).
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
from topoae.models.entropy import gaussian_likelihood
from topoae.models.hyperprior import ENCODER_SIDE, RELEASE_PARTS, HyperpriorConfig, HyperpriorModel
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
#: cells per latent and per hyper-latent
STRIDE = HyperpriorModel.downsample
HYPER_STRIDE = HyperpriorModel.hyper_downsample
#: cells of real surroundings read around a block: the synthesis' context latents are the
#: neighbouring tiles' own, each analysed with ``MARGIN`` cells of context beyond it
BORDER = SYNTH_MARGIN * STRIDE + MARGIN
if BORDER % HYPER_STRIDE:  # the block's hyper-latents (and the context's checkerboard) align
    raise ImportError(f"the window border ({BORDER} cells) must be whole hyper-latents ({HYPER_STRIDE} cells)")


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
    #: also train the encoder side (analysis and hyper-analysis) on rate + λ · distortion;
    #: the decoder's entropy model (hyper-synthesis, densities, context, gains) stays frozen
    #: unless ``hyper``, so a file's bytes are still decoded with the tables every release shares
    analysis: bool = False
    #: bits a sparse outlier correction costs the codec (its ``OUTLIER_BITS``), or 0: with it,
    #: a cell's squared error counts at most ``outlier_bits / λ`` (λ on the network scale),
    #: what the codec pays for that cell once the outlier stream corrects it, so the network
    #: does not spend latents on the spikes the corrections take
    outlier_bits: float = 0.0
    #: with ``analysis``, also train the hyper-synthesis and the gains: decoder-side, so a
    #: release made from the run keeps the replaced ones (with the synthesis) for old files;
    #: the densities and the context stay frozen (the context, 16 MB, is not kept per release)
    hyper: bool = False

    def __post_init__(self) -> None:
        if self.crop < HYPER_STRIDE or self.crop % HYPER_STRIDE:  # whole hyper-latents: the rate
            raise ConfigError(f"crop must be a positive multiple of {HYPER_STRIDE}, got {self.crop}")
        for name in ("batch", "total_steps", "val_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("lr", "lr_final", "checkpoint_minutes"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"{name} must be a positive number, got {v}")
        if not (math.isfinite(self.outlier_bits) and self.outlier_bits >= 0):
            raise ConfigError(f"outlier_bits must be a number >= 0, got {self.outlier_bits}")
        if not 0.0 <= self.edge_prob <= 1.0:
            raise ConfigError(f"edge_prob must be within 0..1, got {self.edge_prob}")
        if self.hyper and not self.analysis:
            raise ConfigError("hyper (the hyper-synthesis and gains) trains with the analysis only")

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
                 edges: np.ndarray, *, analysis: bool = False, noise: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode blocks as the codec does.

    ``x`` ``(B, 1, crop + 2·BORDER, crop + 2·BORDER)``: each block with its real surroundings;
    ``edges`` bool ``(B, 4)`` (top, bottom, left, right): which sides are a region's edge.
    Returns the synthesis of each block ``(B, 1, crop, crop)`` and the block's estimated bits
    per cell ``(B,)`` (its latents and hyper-latents; the bits of the rounded symbols, or of
    noisy latents with ``noise``, the training proxy). Gradients reach the synthesis, and with
    ``analysis`` the analysis and hyper-analysis too (rounding passed straight through).
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
    with torch.set_grad_enabled(analysis and torch.is_grad_enabled()):
        y = net.analyse(torch.stack(inputs), level)
        z = net.hyper_analyse(y)
        z_hat = z + (torch.round(z) - z).detach()
        mean, scale = net.conditional(y, *net.hyper_params(z_hat))
        q = y - mean
        y_hat = mean + q + (torch.round(q) - q).detach()  # μ + round(y − μ), straight through
        yb = slice(k0, k0 + n)
        zb = slice(BORDER // HYPER_STRIDE, (BORDER + crop) // HYPER_STRIDE)
        if noise:
            qv = q + torch.empty_like(q).uniform_(-0.5, 0.5)
            zv = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        else:
            qv, zv = torch.round(q), torch.round(z)
        y_bits = -torch.log2(gaussian_likelihood(qv[..., yb, yb], scale[..., yb, yb]))
        z_bits = -torch.log2(net.z_density.likelihood(zv[..., zb, zb]))
        bpc = (y_bits.reshape(b, -1).sum(1) + z_bits.reshape(b, -1).sum(1)) / crop ** 2
        wins = []
        for s in range(b):  # the synthesis sees the edge latents repeated past the edges
            t, bo, le, ri = (bool(v) for v in edges[s])
            rows = torch.from_numpy(latent_index(SYNTH_MARGIN, n, t, bo) + k0)
            cols = torch.from_numpy(latent_index(SYNTH_MARGIN, n, le, ri) + k0)
            wins.append(y_hat[s].index_select(1, rows).index_select(2, cols))
        y_in = torch.stack(wins)
    out = net.synthesise(y_in, level)
    m = SYNTH_MARGIN * STRIDE
    return out[..., m:m + crop, m:m + crop], bpc


def distortion(err2: torch.Tensor, lam: torch.Tensor, outlier_bits: float) -> torch.Tensor:
    """Per-window MSE ``(B,)`` of squared errors ``(B, N)`` as the codec pays for it: with
    ``outlier_bits`` > 0 a cell counts at most ``outlier_bits / λ`` (``lam`` ``(B,)``), the
    cost of correcting it in the outlier stream (so ``λ · distortion`` is in bits per cell)."""
    if outlier_bits <= 0:
        return err2.mean(1)
    return torch.minimum(err2, (outlier_bits / lam)[:, None]).mean(1)


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
def validate(net: HyperpriorModel, x: torch.Tensor, scales: np.ndarray, region: bool,
             outlier_bits: float = 0.0) -> dict[str, float]:
    """Per level RMSE (m), MSE (network scale, as :func:`distortion` counts it) and estimated
    bits per cell of the blocks, coded as whole regions (``region``) or as interior tiles."""
    net.eval()
    crop = x.shape[-1] - 2 * BORDER
    res: dict[str, float] = {}
    unit = net.config.unit
    for lev in range(net.config.levels):
        mse_n, mse_m, bits = [], [], []
        for i in range(0, x.shape[0], 4):
            xb = x[i:i + 4]
            level = torch.full((xb.shape[0],), lev, dtype=torch.long)
            edges = np.full((xb.shape[0], 4), region)
            xh, bpc = code_windows(net, xb, level, edges)
            tgt = xb[..., BORDER:BORDER + crop, BORDER:BORDER + crop]
            err2 = ((xh - tgt) ** 2).reshape(xb.shape[0], -1)
            per = err2.mean(1).numpy()
            mse_n.extend(distortion(err2, net.lambdas[level], outlier_bits).tolist())
            mse_m.extend((per * (unit * scales[i:i + 4]) ** 2).tolist())
            bits.extend(bpc.tolist())
        res[f"rmse{lev}"] = math.sqrt(float(np.mean(mse_m)))
        res[f"mse{lev}"] = float(np.mean(mse_n))
        res[f"bpc{lev}"] = float(np.mean(bits))
    net.train()
    return res


def rd_ref(net: HyperpriorModel, v: dict[str, float]) -> list[float]:
    """Each level's rate–distortion loss ``bpc + λ · MSE`` in a :func:`validate` result."""
    return [v[f"bpc{k}"] + float(net.config.lambdas[k]) * v[f"mse{k}"] for k in range(net.config.levels)]


def trained_params(net: HyperpriorModel, cfg: SynthTrainConfig) -> list[torch.nn.Parameter]:
    """What a run trains: the synthesis; with ``analysis`` the encoder's side
    (``ENCODER_SIDE``); with ``hyper`` also the other decoder-side parts a release keeps for its
    earlier files (``RELEASE_PARTS``: the hyper-synthesis and the gains)."""
    names = ["g_s"] + (list(ENCODER_SIDE) if cfg.analysis else [])
    names += [n for n in RELEASE_PARTS if n != "g_s"] if cfg.hyper else []
    parts = [getattr(net, n) for n in names]
    return [p for m in parts for p in ([m] if isinstance(m, torch.nn.Parameter) else m.parameters())]


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
    params = trained_params(net, cfg)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=cfg.lr)
    size = cfg.crop + 2 * BORDER
    sampler = CropSampler(load_tiles(cfg.data, cfg.split, "train"), size, cfg.seed)
    vw, vs = val_windows(load_tiles(cfg.data, cfg.split, "val"), cfg.crop)
    val_x = torch.from_numpy(prepare(vw, vs, mcfg))
    step, best, wall = 0, float("inf"), 0.0
    last = out / "last.pt"
    saved: dict[str, Any] = {}
    if resume and last.exists():
        step, best, wall, st = resume_run(last, net, opt)
        sampler.set_state(json.loads(st["sampler"]))
        saved = st
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    levels = mcfg.levels
    lambdas = net.lambdas.clone()
    fh, writer = metrics_writer(out, ["step", "wall_s", "train_loss", "val_loss", "val_interior"]
                                + [f"rmse{k}" for k in range(levels)] + [f"bpc{k}" for k in range(levels)])
    def level_loss(v: dict[str, float]) -> list[float]:
        """Per level, what the run minimises: the distortion (the synthesis alone) or the
        rate–distortion loss (with the analysis)."""
        return rd_ref(net, v) if cfg.analysis else [v[f"mse{k}"] for k in range(levels)]

    if step == 0:
        vi = validate(net, val_x, vs, False, cfg.outlier_bits)
        v0 = validate(net, val_x, vs, True, cfg.outlier_bits)
        # each level's loss before fine-tuning: every level weighs alike (the synthesis alone:
        # its MSE; with the analysis: its rate–distortion loss, interior and region blocks)
        ref, ref_region = torch.tensor(level_loss(vi)), torch.tensor(level_loss(v0))
    else:
        ref = torch.tensor([float(v) for v in saved["ref"]])
        ref_region = torch.tensor([float(v) for v in saved["ref_region"]])

    def score(v: dict[str, float], r: torch.Tensor) -> float:
        """What validation minimises: the mean over levels of each level's loss relative to
        its value before fine-tuning (every level weighs alike, as in training)."""
        return float(np.mean([x / float(y) for x, y in zip(level_loss(v), r, strict=True)]))

    def log_row(v: dict[str, float], vi: dict[str, float], train_loss: str | float) -> tuple[float, float]:
        sv, si = score(v, ref_region), score(vi, ref)
        writer.writerow([step, round(time.time() - t_start, 1), train_loss, round(sv, 5), round(si, 5)]
                        + [round(v[f"rmse{k}"], 3) for k in range(levels)]
                        + [round(v[f"bpc{k}"], 5) for k in range(levels)])
        fh.flush()
        return sv, si

    t_start = time.time() - wall
    if step == 0:
        sv, si = log_row(v0, vi, "")
        print("step 0 (the initial model) val", round(sv, 4), "interior", round(si, 4), flush=True)
    t_ckpt = time.time()
    deadline = time.time() + minutes * 60
    run_loss: list[float] = []

    def save(path: Path, extra: dict[str, Any]) -> None:
        state = run_state(opt, step, best, time.time() - t_start, sampler.state(), ref=ref.tolist(),
                          ref_region=ref_region.tolist())
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
        xh, bpc = code_windows(net, x, level, edges, analysis=cfg.analysis, noise=cfg.analysis)
        tgt = x[..., BORDER:BORDER + cfg.crop, BORDER:BORDER + cfg.crop]
        mse = distortion(((xh - tgt) ** 2).reshape(cfg.batch, -1), lambdas[level], cfg.outlier_bits)
        per = bpc + lambdas[level] * mse if cfg.analysis else mse
        loss = (per / ref[level]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.clip_norm)
        opt.step()
        step += 1
        run_loss.append(float(loss.detach()))
        if step % cfg.val_every == 0:
            v = validate(net, val_x, vs, True, cfg.outlier_bits)
            vi = validate(net, val_x, vs, False, cfg.outlier_bits)
            sv, si = log_row(v, vi, round(float(np.mean(run_loss)), 5))
            print(f"step {step} {(time.time() - t_start) / 60:.1f} min loss {np.mean(run_loss):.4f} "
                  f"val {sv:.4f} interior {si:.4f} "
                  + " ".join(f"L{k}:{v[f'rmse{k}']:.2f}m/{v[f'bpc{k}']:.3f}" for k in range(levels)), flush=True)
            run_loss = []
            if sv + si < best:
                best = sv + si
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
    ap.add_argument("--analysis", action="store_true",
                    help="also train the analysis and hyper-analysis (rate + λ · distortion)")
    ap.add_argument("--outlier-bits", type=float, default=None,
                    help="count a cell's squared error at most this many bits / λ (the codec's outlier "
                         f"corrections take it; 0: plain MSE) [{SynthTrainConfig.outlier_bits}]")
    ap.add_argument("--hyper", action="store_true",
                    help="with --analysis, also train the hyper-synthesis and the gains (decoder-side: "
                         "a release keeps the replaced ones for its earlier files)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if not (math.isfinite(a.minutes) and a.minutes > 0):
        ap.error(f"--minutes must be a positive number, got {a.minutes}")
    given: dict[str, Any] = {k: v for k, v in (("init", a.init), ("data", a.data), ("split", a.split),
                                              ("total_steps", a.steps), ("batch", a.batch), ("lr", a.lr),
                                              ("edge_prob", a.edge_prob), ("val_every", a.val_every),
                                              ("analysis", True if a.analysis else None),
                                              ("hyper", True if a.hyper else None),
                                              ("outlier_bits", a.outlier_bits)) if v is not None}
    try:
        if a.resume and (out / "config.json").exists():
            saved = json.loads((out / "config.json").read_text())
            fixed = ("init", "lr", "edge_prob", "analysis", "hyper", "outlier_bits")
            if any(k in given and given[k] != saved.get(k) for k in fixed):
                raise ConfigError("--init, --lr, --edge-prob, --analysis, --hyper and --outlier-bits cannot "
                                  "change a run being resumed")
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
