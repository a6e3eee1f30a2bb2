"""The training loop: epochs, validation, checkpoints, resume state, DDP.

A run folder ``RUN/`` holds ``config.json`` (written once), ``metrics.csv``
(one row per epoch, rewritten atomically), ``last.pt`` (the latest checkpoint,
with the training state for ``--resume``) and ``best.pt`` (the weights with
the lowest validation RMSE in metres so far).

Reproducibility: every epoch reseeds its randomness from ``(seed, epoch,
rank)`` (batch order, augmentation, VAE sampling), so a run resumed from a
checkpoint taken at an epoch boundary or mid-epoch (``--max-minutes``, a
periodic save, or a kill) reaches bit-for-bit the weights of an uninterrupted
run on CPU.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from topoae._atomic import atomic_path
from topoae._version import __version__
from topoae.checkpoint import save_checkpoint, unwrap
from topoae.data.normalise import Normalisation
from topoae.errors import ConfigError
from topoae.losses import AutoencoderLoss, DiscriminatorLoss
from topoae.models import Discriminator, build_model
from topoae.training import distributed as ddp
from topoae.training.batches import (
    dataset_len,
    derive_seed,
    epoch_order,
    make_loader,
    resolve_device,
    shard,
)
from topoae.training.config import TrainConfig

LAST, BEST, METRICS, CONFIG = "last.pt", "best.pt", "metrics.csv", "config.json"
Callback = Callable[[str, dict[str, Any]], None]


@dataclass
class TrainResult:
    """What a call to :func:`fit` / :func:`train` did."""

    out: Path
    epochs_done: int
    steps: int
    completed: bool  #: False when stopped early by ``max_minutes``
    best_epoch: int | None
    best_val_rmse_m: float | None
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def best_path(self) -> Path:
        return self.out / BEST

    @property
    def last_path(self) -> Path:
        return self.out / LAST


class Trainer:
    """One training run; use :func:`fit` or :func:`topoae.training.train` rather than this class."""

    def __init__(
        self,
        config: TrainConfig,
        train_ds: Dataset,
        val_ds: Dataset | None,
        out: Path,
        *,
        normalise: Normalisation,
        device: str = "auto",
        num_workers: int = 0,
        max_minutes: float | None = None,
        checkpoint_minutes: float | None = 10.0,
        perceptual_weights: str | Path | None = None,
        channels_last: bool = True,
        amp: bool | None = None,
        callback: Callback | None = None,
        store: str | None = None,
        state: dict[str, Any] | None = None,
        model_state: dict[str, Any] | None = None,
    ) -> None:
        from topoae.perceptual import build_feature_net

        self.cfg = config
        self.train_ds, self.val_ds = (
            train_ds,
            val_ds if val_ds is not None and dataset_len(val_ds) else None,
        )
        self.out, self.normalise, self.store = out, normalise, store
        self.workers, self.callback = num_workers, callback
        self.max_s = None if max_minutes is None else 60.0 * max_minutes
        self.ckpt_s = None if not checkpoint_minutes else 60.0 * checkpoint_minutes
        use_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        self.info = ddp.setup("cuda" if use_cuda else "cpu")
        self.device = resolve_device(device, self.info.local_rank)
        self.amp = self.device.type == "cuda" if amp is None else amp
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if config.batch_size % self.info.world:
            raise ConfigError(
                f"batch size {config.batch_size} is not divisible by {self.info.world} processes"
            )
        self.batch = config.batch_size // self.info.world
        if dataset_len(train_ds) == 0:
            raise ConfigError("the training split is empty")

        torch.manual_seed(config.seed)
        self.model: nn.Module = build_model(config.model)
        if model_state is not None:
            self.model.load_state_dict(model_state)
        # torch's stubs leave out the keyword-only memory_format of Module.to
        self.model.to(self.device, memory_format=self.memory_format)  # type: ignore[call-overload]
        self.disc: nn.Module | None = None
        if config.model.kind == "vae-gan":
            self.disc = Discriminator(config.model).to(  # type: ignore[call-overload]
                self.device, memory_format=self.memory_format
            )
        feature: nn.Module | None = None
        self.feature_id: str | None = None
        # LossConfig refuses a perceptual weight without a feature network
        if config.loss.perceptual_weight > 0 and config.loss.feature_net is not None:
            feature, self.feature_id = build_feature_net(
                config.loss.feature_net, perceptual_weights
            )
            feature = feature.to(  # type: ignore[call-overload]
                self.device, memory_format=self.memory_format
            )
        self.loss = AutoencoderLoss(config.loss, feature).to(self.device)
        self.d_loss = DiscriminatorLoss()
        self.opt = torch.optim.Adam(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.d_opt = (
            torch.optim.Adam(self.disc.parameters(), lr=config.d_lr, betas=(0.5, 0.999))
            if self.disc is not None
            else None
        )

        self.epoch, self.step_in_epoch, self.global_step, self.elapsed = 1, 0, 0, 0.0
        self.rows: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.rng: dict[str, Any] | None = None  # this rank's RNG states when resuming mid-epoch
        if state is not None:
            self._restore(state)
        if self.info.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DDP(self.model, device_ids=ids)
            if self.disc is not None:
                self.disc = DDP(self.disc, device_ids=ids)

    # ---------------------------------------------------------------- state
    def _state(self) -> dict[str, Any]:
        rng = {
            "cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
        }
        return {
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "elapsed": self.elapsed,
            "world": self.info.world,
            "optimizer": self.opt.state_dict(),
            "d_optimizer": self.d_opt.state_dict() if self.d_opt is not None else None,
            "disc": unwrap(self.disc).state_dict() if self.disc is not None else None,
            "sums": {k: v.detach().cpu() for k, v in self.sums.items()},
            "count": self.count,
            "rng": ddp.gather_objects(rng, self.info),
            "rows": self.rows,
            "best": self.best,
            "feature_net": self.feature_id,
        }

    def _restore(self, s: dict[str, Any]) -> None:
        if s.get("feature_net") != self.feature_id:
            raise ConfigError(
                f"the run used feature network {s.get('feature_net')}, now {self.feature_id}"
            )
        if s["step_in_epoch"] and s["world"] != self.info.world:
            raise ConfigError(
                f"this checkpoint is mid-epoch: resume it with {s['world']} process(es)"
            )
        self.opt.load_state_dict(s["optimizer"])
        if self.disc is not None and self.d_opt is not None:
            unwrap(self.disc).load_state_dict(s["disc"])
            self.d_opt.load_state_dict(s["d_optimizer"])
        self.epoch, self.step_in_epoch = int(s["epoch"]), int(s["step_in_epoch"])
        self.global_step, self.elapsed = int(s["global_step"]), float(s["elapsed"])
        self.rows, self.best = list(s["rows"]), s["best"]
        self.sums = {k: v.to(self.device) for k, v in s["sums"].items()}
        self.count = int(s["count"])
        self.rng = s["rng"][self.info.rank] if self.step_in_epoch else None

    def _save(self, path: str, *, with_state: bool, extra: dict[str, Any]) -> None:
        state = self._state() if with_state else None  # collective: every rank takes part
        if self.info.main:
            save_checkpoint(
                self.out / path,
                self.model,
                self.cfg,
                normalise=self.normalise.to_dict(),
                feature_net=self.feature_id,
                state=state,
                extra=extra,
            )

    # ---------------------------------------------------------------- steps
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _clip(self, params: Sequence[nn.Parameter]) -> None:
        cfg = self.cfg
        if cfg.clip == "none" or cfg.clip_norm <= 0:
            return
        if cfg.clip == "global":
            nn.utils.clip_grad_norm_(params, cfg.clip_norm)
            return
        for p in params:
            if p.grad is not None:
                nn.utils.clip_grad_norm_([p], cfg.clip_norm)

    def _to(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)

    def _train_step(self, batch: dict[str, torch.Tensor], kl_w: float) -> dict[str, torch.Tensor]:
        x = self._to(batch["x"])
        with self._autocast():
            out = self.model(x)
        parts: dict[str, torch.Tensor] = {}
        if self.disc is not None and self.d_opt is not None:
            with self._autocast():
                d = self.d_loss(self.disc, x, out["x_hat"])
            self.d_opt.zero_grad(set_to_none=True)
            d["loss"].backward()
            self._clip(list(self.disc.parameters()))
            self.d_opt.step()
            parts["d_loss"] = d["loss"].detach()
        with self._autocast():
            g = self.loss(
                out, x, kl_weight=kl_w, disc=unwrap(self.disc) if self.disc is not None else None
            )
        self.opt.zero_grad(set_to_none=True)
        g["loss"].backward()
        self._clip(list(self.model.parameters()))
        self.opt.step()
        return {**{k: v.detach() for k, v in g.items()}, **parts}

    @torch.no_grad()
    def validate(self, kl_w: float) -> dict[str, float]:
        """Loss parts and errors in metres on the validation split (posterior means, no sampling)."""
        if self.val_ds is None:
            return {}
        model = unwrap(self.model).eval()
        order = shard(list(range(dataset_len(self.val_ds))), self.info, pad=False)
        batches = [order[i : i + self.batch] for i in range(0, len(order), self.batch)]
        sums: dict[str, torch.Tensor] = {}
        dev = self.device
        err = torch.zeros(4, dtype=torch.float64, device=dev)  # n, sum d^2, sum |d|, n_patches
        hi = torch.full((3,), -math.inf, dtype=torch.float64, device=dev)  # max |d|, max z, -min z
        for batch in make_loader(self.val_ds, batches, self.workers, dev, 0):
            x = self._to(batch["x"])
            with self._autocast():
                out = model(x)
                parts = self.loss(out, x, kl_weight=kl_w)
            n = x.shape[0]
            for k, v in parts.items():
                sums[k] = (
                    sums.get(k, torch.zeros((), dtype=torch.float64, device=dev)) + v.double() * n
                )
            scale = batch["scale"].to(dev).view(-1, 1, 1, 1)
            offset = batch["offset"].to(dev).view(-1, 1, 1, 1)
            d = (out["x_hat"].double() - x.double()) * scale
            z = x.double() * scale + offset
            err += torch.stack(
                [
                    torch.tensor(d.numel(), dtype=torch.float64, device=dev),
                    (d * d).sum(),
                    d.abs().sum(),
                    torch.tensor(n, dtype=torch.float64, device=dev),
                ]
            )
            hi = torch.maximum(hi, torch.stack([d.abs().max(), z.max(), -z.min()]))
        model.train()
        keys = sorted(sums)
        packed = (
            torch.stack([sums[k] for k in keys])
            if keys
            else torch.zeros(0, dtype=torch.float64, device=dev)
        )
        ddp.all_reduce(packed, self.info)
        ddp.all_reduce(err, self.info)
        ddp.all_reduce(
            hi, self.info, op=torch.distributed.ReduceOp.MAX if self.info.world > 1 else None
        )
        n_cells, sq, ab, n_patches = err.tolist()
        rmse = math.sqrt(sq / n_cells)
        peak = hi[1].item() + hi[2].item()
        res = {f"val_{k}": v / n_patches for k, v in zip(keys, packed.tolist(), strict=True)}
        res.update(
            val_rmse_m=rmse,
            val_mae_m=ab / n_cells,
            val_max_abs_m=hi[0].item(),
            val_psnr_db=20 * math.log10(peak / rmse) if rmse > 0 and peak > 0 else math.inf,
        )
        return res

    # ---------------------------------------------------------------- loop
    def _emit(self, event: str, **info: Any) -> None:
        if self.callback is not None and self.info.main:
            self.callback(event, info)

    def _decide(self, t_start: float, t_ckpt: float) -> int:
        """0 go on, 1 checkpoint, 2 checkpoint and stop (rank 0 decides for all)."""
        now = time.perf_counter()
        flag = 0
        if self.max_s is not None and now - t_start >= self.max_s:
            flag = 2
        elif self.ckpt_s is not None and now - t_ckpt >= self.ckpt_s:
            flag = 1
        return ddp.broadcast_int(flag, self.info, self.device)

    def _write_metrics(self) -> None:
        if not self.info.main or not self.rows:
            return
        names: list[str] = []
        for row in self.rows:
            names += [k for k in row if k not in names]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
        w.writeheader()
        for row in self.rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        with atomic_path(self.out / METRICS, overwrite=True) as tmp:
            tmp.write_text(buf.getvalue())

    def write_config(self) -> None:
        """Write ``RUN/config.json`` (rank 0 only)."""
        if not self.info.main:
            return
        doc = {
            "topoae_version": __version__,
            "config": self.cfg.to_dict(),
            "normalise": self.normalise.to_dict(),
            "store": self.store,
            "feature_net": self.feature_id,
            "world_size": self.info.world,
            "train_patches": dataset_len(self.train_ds),
            "val_patches": dataset_len(self.val_ds) if self.val_ds else 0,
        }
        with atomic_path(self.out / CONFIG, overwrite=True) as tmp:
            tmp.write_text(json.dumps(doc, indent=2) + "\n")

    def run(self) -> TrainResult:
        """Train until ``config.epochs`` are done or the time budget is spent."""
        cfg, t_start = self.cfg, time.perf_counter()
        t_ckpt, completed = t_start, True
        self.model.train()
        ended = False  # the loop ran to its end (not an exception): every rank reaches teardown
        try:
            while self.epoch <= cfg.epochs:
                epoch, kl_w, lr = self.epoch, cfg.loss.kl_weight(self.epoch), cfg.lr_at(self.epoch)
                for group in self.opt.param_groups:
                    group["lr"] = lr
                if self.step_in_epoch == 0:
                    torch.manual_seed(derive_seed(cfg.seed, epoch, self.info.rank))
                    self.sums, self.count = {}, 0
                else:
                    assert self.rng is not None  # set by _restore for a mid-epoch checkpoint
                    torch.set_rng_state(self.rng["cpu"])
                    if self.rng["cuda"] is not None:
                        torch.cuda.set_rng_state(self.rng["cuda"], self.device)
                if hasattr(self.train_ds, "set_epoch"):
                    self.train_ds.set_epoch(epoch)
                order = shard(epoch_order(self.train_ds, cfg.seed, epoch), self.info, pad=True)
                batches = [order[i : i + self.batch] for i in range(0, len(order), self.batch)]
                self._emit("epoch_start", epoch=epoch, steps=len(batches), start=self.step_in_epoch)
                t0 = time.perf_counter()
                loader = make_loader(
                    self.train_ds,
                    batches[self.step_in_epoch :],
                    self.workers,
                    self.device,
                    derive_seed(cfg.seed, epoch, self.step_in_epoch),
                )
                stop = False
                for batch in loader:
                    parts = self._train_step(batch, kl_w)
                    n = batch["x"].shape[0]
                    for k, v in parts.items():
                        self.sums[k] = (
                            self.sums.get(
                                k, torch.zeros((), dtype=torch.float64, device=self.device)
                            )
                            + v.double() * n
                        )
                    self.count += n
                    self.step_in_epoch += 1
                    self.global_step += 1
                    self._emit("step", epoch=epoch, step=self.step_in_epoch, steps=len(batches))
                    flag = self._decide(t_start, t_ckpt)
                    if flag and self.step_in_epoch < len(batches):
                        self.elapsed += time.perf_counter() - t0
                        t0 = time.perf_counter()
                        self._save(
                            LAST, with_state=True, extra={"epoch": epoch - 1, "mid_epoch": True}
                        )
                        t_ckpt = time.perf_counter()
                        if flag == 2:
                            stop = True
                            break
                if stop:
                    completed = False
                    self._emit("stopped", epoch=epoch, step=self.step_in_epoch)
                    break
                self.elapsed += time.perf_counter() - t0
                self._end_epoch(epoch, lr, kl_w, len(batches))
                t_ckpt = time.perf_counter()
                # rank 0's clock decides for all: ranks that stopped apart would wait on each other
                out_of_time = self.max_s is not None and time.perf_counter() - t_start >= self.max_s
                if ddp.broadcast_int(int(out_of_time), self.info, self.device) and self.epoch <= cfg.epochs:
                    completed = False
                    self._emit("stopped", epoch=self.epoch, step=0)
                    break
            ended = True
        finally:
            ddp.teardown(self.info, wait=ended)
        best = self.best or {}
        return TrainResult(
            out=self.out,
            epochs_done=self.epoch - 1,
            steps=self.global_step,
            completed=completed,
            best_epoch=best.get("epoch"),
            best_val_rmse_m=best.get("val_rmse_m"),
            rows=list(self.rows),
        )

    def _end_epoch(self, epoch: int, lr: float, kl_w: float, steps: int) -> None:
        keys = sorted(self.sums)
        packed = torch.stack(
            [self.sums[k] for k in keys]
            + [torch.tensor(float(self.count), dtype=torch.float64, device=self.device)]
        )
        ddp.all_reduce(packed, self.info)
        total = packed[-1].item()
        row: dict[str, Any] = {
            "epoch": epoch,
            "step": self.global_step,
            "seconds": round(self.elapsed, 2),
            "lr": lr,
            "kl_weight": kl_w,
        }
        row.update(
            {f"train_{k}": v / total for k, v in zip(keys, packed[:-1].tolist(), strict=True)}
        )
        row.update(self.validate(kl_w))
        score = row.get("val_rmse_m", row.get("train_loss"))
        is_best = self.best is None or score < self.best["score"]
        row["best"] = int(is_best)
        self.rows.append(row)
        if is_best:
            self.best = {"epoch": epoch, "score": score, "val_rmse_m": row.get("val_rmse_m")}
        self.epoch, self.step_in_epoch, self.sums, self.count = epoch + 1, 0, {}, 0
        extra = {k: v for k, v in row.items() if isinstance(v, int | float)}
        if is_best:
            self._save(BEST, with_state=False, extra=extra)
        self._save(LAST, with_state=True, extra=extra)
        self._write_metrics()
        self._emit("epoch_end", epoch=epoch, row=row, steps=steps)
