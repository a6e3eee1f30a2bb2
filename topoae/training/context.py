"""Train the spatial context of a trained hyperprior model, its transforms frozen.

The context (:mod:`topoae.models.context`) changes only the probabilities the latents are
coded with, so it can be trained after the rest on the latents the frozen analysis gives:
no synthesis runs, and a CPU step takes a fraction of a second. The latents come from the
whole training tiles of the ``.npz`` tile cache (``benchmarks/make_rd_data.py``, split by
``benchmarks/rd_split.json``) under ``symmetries`` of the 8 symmetries of the square, each
tile prepared exactly as the codec prepares a one-tile region (offset field, roughness
scale, the analysis margin mirrored), computed once and cached in the run folder.

Loss: per sample, the estimated bits of its latents (uniform noise, as in training the
rest) under the context's means and scales, divided by their bits under the hyperprior's
alone: every quality level weighs alike, whatever its rate. Validation: the same ratio
with the latents rounded as the coder rounds them, per level, on the validation tiles.

    python -m topoae.training.context --init topoae/weights/topoae-hyperprior-gebco15.pt \\
        --out runs/ctx --minutes 60 [--resume]

Checkpoints (``last.pt`` every ``checkpoint_minutes``, ``best.pt`` on validation) hold the
whole network (the frozen parts unchanged) with the context in its config;
``benchmarks/ship_learned.py --add-context runs/ctx/best.pt`` ships one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from topoae._atomic import atomic_path
from topoae.checkpoint import read_checkpoint, save_checkpoint
from topoae.errors import ConfigError, TopoAEError
from topoae.models.context import SCHEDULES
from topoae.models.entropy import gaussian_likelihood
from topoae.models.hyperprior import HyperpriorConfig, HyperpriorModel
from topoae.training.rd import (
    _metres,
    cosine_lr,
    load_tiles,
    metrics_writer,
    prepare,
    resume_run,
    run_state,
    tile_scales,
)

#: cells of mirrored margin around a tile, as the codec analyses it (``RDCodecConfig.margin``)
MARGIN = 32
#: the symmetries of the square in the order they are used: (quarter turns, flipped)
SYMMETRIES = ((0, False), (1, True), (2, False), (3, True), (0, True), (1, False), (2, True), (3, False))


@dataclass(frozen=True)
class ContextTrainConfig:
    """How a context was trained (saved in every checkpoint)."""

    model: HyperpriorConfig = field(default_factory=lambda: HyperpriorConfig(context="checkerboard"))
    init: str = "topoae/weights/topoae-hyperprior-gebco15.pt"
    data: str = "data_cache/gebco15_tiles.npz"
    split: str = "benchmarks/rd_split.json"
    symmetries: int = 4
    batch: int = 8
    lr: float = 1e-3
    lr_final: float = 5e-5
    total_steps: int = 30000
    seed: int = 0
    val_every: int = 500
    checkpoint_minutes: float = 4.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["trains"] = "context"
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ContextTrainConfig:
        d = dict(d)
        d.pop("trains", None)
        d["model"] = HyperpriorConfig.from_dict(d["model"])
        return cls(**d)


def tile_latents(net: HyperpriorModel, tiles: np.ndarray, symmetries: int) -> np.ndarray:
    """Ungained latents ``(T·symmetries, M, H/16, W/16)`` float32 of whole int16 tiles, each
    analysed as the codec analyses a one-tile region."""
    cfg = net.config
    scales = tile_scales(tiles)
    out = []
    with torch.no_grad():
        for a, s in zip(tiles, scales, strict=True):
            for turns, flip in SYMMETRIES[:symmetries]:
                t = np.rot90(a, turns)
                if flip:
                    t = t[:, ::-1]
                x = prepare(np.ascontiguousarray(_metres(t))[None], np.array([s]), cfg)[0, 0]
                x = np.pad(x, MARGIN, mode="symmetric")
                y = net.g_a(torch.from_numpy(x)[None, None])[0]
                c = MARGIN // net.downsample
                out.append(y[:, c:y.shape[1] - c, c:y.shape[2] - c].numpy())
    return np.stack(out).astype(np.float32)


def latents_key(net: HyperpriorModel, cfg: ContextTrainConfig) -> str:
    """What the cached latents depend on: the analysis weights, the tiles and the symmetries."""
    m = cfg.model
    h = hashlib.sha256(f"{cfg.data}|{cfg.split}|{cfg.symmetries}|{MARGIN}|{m.unit}|{m.offset_stride}|"
                       f"{m.offset_step}".encode())
    for name, t in net.g_a.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def _bits(net: HyperpriorModel, y_base: torch.Tensor, level: torch.Tensor, noise: bool
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Bits per sample of the gained latents with the context and with the hyperprior alone."""
    with torch.no_grad():
        y = y_base * net.gains(level)
        mean, scale = net.hyper_params(torch.round(net.h_a(y)))
    mu, sc = net.conditional(y, mean, scale)
    if noise:
        u = torch.empty_like(y).uniform_(-0.5, 0.5)
        v_ctx, v_base = y + u - mu, y + u - mean
    else:
        v_ctx, v_base = torch.round(y - mu), torch.round(y - mean)
    ctx = -torch.log2(gaussian_likelihood(v_ctx, sc)).flatten(1).sum(1)
    base = -torch.log2(gaussian_likelihood(v_base, scale)).flatten(1).sum(1)
    return ctx, base.detach()


def validate(net: HyperpriorModel, latents: torch.Tensor) -> list[float]:
    """Per level: bits with the context / bits with the hyperprior alone (rounded latents)."""
    out = []
    with torch.no_grad():
        for lev in range(net.config.levels):
            level = torch.full((len(latents),), lev, dtype=torch.long)
            ctx, base = _bits(net, latents, level, noise=False)
            out.append(float(ctx.sum() / base.sum()))
    return out


def train(cfg: ContextTrainConfig, out: Path, *, minutes: float, resume: bool,
          threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    net = HyperpriorModel(cfg.model)
    payload, _ = read_checkpoint(cfg.init)
    frozen = {k: v for k, v in payload["model"].items() if not k.startswith("context.")}
    missing, unexpected = net.load_state_dict(frozen, strict=False)
    if unexpected or any(not k.startswith("context.") for k in missing):
        raise ConfigError(f"{cfg.init} does not match the model config (its transforms differ)")
    if net.context is None:
        raise ConfigError("the model config has no context to train")
    for p in net.parameters():
        p.requires_grad_(False)
    for p in net.context.parameters():
        p.requires_grad_(True)
    net.eval()
    cache = out / "latents.npz"
    key = latents_key(net, cfg)
    train_y = val_y = None
    if cache.exists():
        try:
            with np.load(cache) as z:
                if "key" in z.files and str(z["key"]) == key:
                    train_y, val_y = z["train"], z["val"]
        except (OSError, ValueError, KeyError):  # a damaged cache: made again below
            pass
    if train_y is None or val_y is None:
        if cache.exists():
            print(f"{cache} was made from other transforms, tiles or symmetries: analysing again",
                  flush=True)
        print("analysing the training tiles ...", flush=True)
        train_y = tile_latents(net, load_tiles(cfg.data, cfg.split, "train"), cfg.symmetries)
        val_y = tile_latents(net, load_tiles(cfg.data, cfg.split, "val"), 1)
        with atomic_path(cache, overwrite=True) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, train=train_y, val=val_y, key=np.array(key))
    train_t, val_t = torch.from_numpy(train_y), torch.from_numpy(val_y)
    opt = torch.optim.Adam(net.context.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    step, best, wall = 0, float("inf"), 0.0
    last = out / "last.pt"
    if resume and last.exists():
        step, best, wall, st = resume_run(last, net, opt)
        rng.bit_generator.state = json.loads(st["rng"])
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
    levels = cfg.model.levels
    fh, writer = metrics_writer(out, ["step", "wall_s", "train_ratio", "val_score"]
                                + [f"ratio{k}" for k in range(levels)])
    t_start, t_ckpt = time.time() - wall, time.time()
    deadline = time.time() + minutes * 60
    run: list[float] = []

    def save(path: Path, record: dict[str, Any]) -> None:
        state = run_state(opt, step, best, time.time() - t_start, rng.bit_generator.state, "rng")
        save_checkpoint(path, net, cfg, normalise={"mode": "offset-field"}, state=state, extra=record)

    while step < cfg.total_steps and time.time() < deadline:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(cfg.lr, cfg.lr_final, step / cfg.total_steps)
        idx = rng.integers(len(train_t), size=cfg.batch)
        level = torch.from_numpy(rng.integers(levels, size=cfg.batch))
        ctx, base = _bits(net, train_t[idx], level, noise=True)
        loss = (ctx / base.clamp_min(1.0)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        run.append(float(loss.detach()))
        if step % cfg.val_every == 0:
            ratios = validate(net, val_t)
            score = float(np.mean(np.log(ratios)))
            wall = time.time() - t_start
            writer.writerow([step, round(wall, 1), round(float(np.mean(run)), 5), round(score, 5)]
                            + [round(r, 5) for r in ratios])
            fh.flush()
            print(f"step {step} {wall / 60:.1f} min train {np.mean(run):.4f} val "
                  + " ".join(f"L{k}:{r - 1:+.1%}" for k, r in enumerate(ratios)), flush=True)
            run = []
            if score < best:
                best = score
                save(out / "best.pt", {"step": step, "val_ratios": ratios})
        if time.time() - t_ckpt > cfg.checkpoint_minutes * 60:
            save(last, {"step": step})
            t_ckpt = time.time()
    save(last, {"step": step})
    fh.close()
    print(f"stopped at step {step}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Train the latent context of a hyperprior model.")
    ap.add_argument("--init", default=ContextTrainConfig.init,
                    help="the hyperprior checkpoint or weights whose transforms stay frozen")
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--schedule", default="checkerboard", choices=sorted(SCHEDULES))
    ap.add_argument("--channels", type=int, default=96, help="hidden channels of each pass")
    ap.add_argument("--steps", type=int, default=None, help=f"[{ContextTrainConfig.total_steps}]")
    ap.add_argument("--symmetries", type=int, default=ContextTrainConfig.symmetries,
                    choices=range(1, 9), metavar="1..8")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--resume", action="store_true")
    a = ap.parse_args(argv)
    out = Path(a.out)
    try:
        if a.resume and (out / "config.json").exists():
            cfg = ContextTrainConfig.from_dict(json.loads((out / "config.json").read_text()))
            if a.steps is not None:
                cfg = replace(cfg, total_steps=a.steps)
        else:
            payload, _ = read_checkpoint(a.init)
            base = HyperpriorConfig.from_dict(payload["config"]["model"])
            cfg = ContextTrainConfig(
                model=replace(base, context=a.schedule, context_channels=a.channels), init=a.init,
                symmetries=a.symmetries, total_steps=a.steps or ContextTrainConfig.total_steps)
        train(cfg, out, minutes=a.minutes, resume=a.resume, threads=a.threads)
    except TopoAEError as exc:
        raise SystemExit(f"Error: {exc}") from None


if __name__ == "__main__":
    main()
