"""Spatial context for the latents: code them in passes, each conditioned on the ones before.

The hyperprior gives every latent a mean and a scale from the hyper-latents alone. Latents
next to each other are still correlated given those, so the coder can do better by coding
them in passes: the first pass exactly as before (hyperprior only), every later pass with
a mean and scale corrected by a small network that sees the latents already decoded around
each position (He et al. 2021, "Checkerboard context model for efficient learned image
compression"; a two-pass checkerboard: the "anchors", where row + column is even, then the
rest). Decoding stays parallel within a pass, and a tile stays one stream.

Each later pass ``k`` has its own network: a 5×5 convolution over the decoded latents and
their symbols (zero where not yet decoded and outside the tile), then 1×1 convolutions that
also see the hyperprior's mean and log scale, giving a correction of the mean and a factor
on the scale. The last layer starts at zero, so an untrained context changes nothing.

Positions are tile-local: the same schedule runs on any tile shape, and a tile needs no
latent of its neighbours (tiles decode independently, as before).
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from topoae.models.entropy import widen

#: the schedules this module knows: name -> number of passes. "checkerboard": anchors (row +
#: column even), then the rest; "checkerboard-channels" / "-channels4" / "-channels8": each of
#: those in 2 / 4 / 8 groups of consecutive channels, in order (channel-conditional coding,
#: Minnen & Singh 2020: a group is predicted from the groups before it and the neighbours)
SCHEDULES = {"checkerboard": 2, "checkerboard-channels": 4, "checkerboard-channels4": 8,
             "checkerboard-channels8": 16}
#: the smallest scale a pass may give (the probability tables' smallest σ is 0.11)
MIN_SCALE = 0.11


def pass_masks(schedule: str, shape: tuple[int, int, int]) -> list[torch.Tensor]:
    """Boolean masks ``(M, h, w)``, one per pass, together covering every latent once."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown context schedule {schedule!r}")
    m, h, w = shape
    anchor = (torch.arange(h)[:, None] + torch.arange(w)[None, :]) % 2 == 0
    a = anchor[None].expand(m, h, w)
    groups = SCHEDULES[schedule] // 2
    bounds = [-(-m * g // groups) for g in range(groups + 1)]  # ceil: earlier groups larger
    chans = [((torch.arange(m) >= lo) & (torch.arange(m) < hi))[:, None, None].expand(m, h, w)
             for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    return [a & c for c in chans] + [~a & c for c in chans]


class _PassNet(nn.Module):
    def __init__(self, m: int, c: int) -> None:
        super().__init__()
        self.ctx = nn.Conv2d(2 * m, c, 5, padding=2)
        last = nn.Conv2d(2 * c, 2 * m, 1)
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)
        self.params = nn.Sequential(
            nn.Conv2d(c + 2 * m, 2 * c, 1), nn.LeakyReLU(0.1), nn.Conv2d(2 * c, 2 * c, 1),
            nn.LeakyReLU(0.1), last,
        )

    def forward(self, y_hat: torch.Tensor, sym: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor,
                used: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``used``: bool ``(M,)``, the latent channels with any decoded position (the others
        are zero: their weights are skipped, the same function with less work)."""
        if used is None:
            h = self.ctx(torch.cat([y_hat, sym], 1))
        else:
            both = torch.cat([used, used])
            h = F.conv2d(torch.cat([y_hat[:, used], sym[:, used]], 1), self.ctx.weight[:, both],
                         self.ctx.bias, padding=2)
        d = widen(self.params(torch.cat([h, mean, torch.log(scale)], 1)))  # float32 under autocast
        dm, ds = d.chunk(2, 1)
        return mean + dm, (scale * torch.exp(ds)).clamp_min(MIN_SCALE)


class LatentContext(nn.Module):
    """The context networks of one schedule (one per pass after the first)."""

    def __init__(self, latent_channels: int, schedule: str = "checkerboard", channels: int = 96) -> None:
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown context schedule {schedule!r}")
        self.schedule = schedule
        self.nets = nn.ModuleList(
            [_PassNet(latent_channels, channels) for _ in range(SCHEDULES[schedule] - 1)])
        self._plans: dict = {}  # the coder's sparse passes per (pass, tile shape)

    def masks(self, shape: tuple[int, int, int]) -> list[torch.Tensor]:
        return pass_masks(self.schedule, shape)

    def pass_params(self, k: int, y_hat: torch.Tensor, sym: torch.Tensor, mean: torch.Tensor,
                    scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and scale of every position for pass ``k`` ≥ 1, from the latents decoded so far
        (``y_hat`` and ``sym`` zero where not yet decoded) and the hyperprior's ``mean``, ``scale``
        (all ``(B, M, h, w)``, one dtype: float32 in training, float64 when coding)."""
        shape = (int(sym.shape[1]), int(sym.shape[2]), int(sym.shape[3]))
        used = torch.stack(self.masks(shape)[:k]).flatten(2).any(2).any(0).to(sym.device)  # channels decoded so far
        return self.nets[k - 1](y_hat, sym, mean, scale, None if bool(used.all()) else used)

    def _sparse_plan(self, k: int, shape: tuple[int, int, int]):
        """Where pass ``k`` reads and writes on a tile of ``shape`` latents (it depends on the
        schedule and shape only, so it is made once): its channels and positions, and its 5×5
        taps grouped by the channels decoded where they read; None if the pass is not a
        product of channels and positions."""
        key = (k, shape)
        if key not in self._plans:
            masks = self.masks(shape)
            out = masks[k]
            chans = out.flatten(1).any(1)
            where = out.any(0)
            if not bool((out == (chans[:, None, None] & where[None])).all()):
                self._plans[key] = None
                return None
            w = shape[2]
            seen_p = F.pad(torch.stack(masks[:k]).any(0), (2, 2, 2, 2)).flatten(1)
            pi, pj = torch.nonzero(where, as_tuple=True)
            taps: dict[bytes, tuple[torch.Tensor, list[tuple[int, int, torch.Tensor]]]] = {}
            for dy in range(5):
                for dx in range(5):
                    at = (pi + dy) * (w + 4) + (pj + dx)  # the cells this tap reads (padded grid)
                    live = seen_p[:, at].any(1)
                    if bool(live.any()):
                        taps.setdefault(live.numpy().tobytes(), (live, []))[1].append((dy, dx, at))
            groups = [(torch.cat([live, live]), torch.tensor([t[0] for t in ts]),
                       torch.tensor([t[1] for t in ts]), torch.cat([t[2] for t in ts]))
                      for live, ts in taps.values()]
            self._plans[key] = (chans, pi, pj, groups)
        return self._plans[key]

    def pass_params_at(self, k: int, y_hat: torch.Tensor, sym: torch.Tensor, mean: torch.Tensor,
                       scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What :meth:`pass_params` gives on pass ``k``'s own latents only, in the order of
        ``mask[k]`` indexing an ``(M, h, w)`` array: the coder's path (one tile, batch 1).

        The same function with the terms that are zero left out: the 5×5 convolution is
        evaluated only at the pass's positions, and for each of its taps only over the
        channels decoded at the positions the tap reads; the 1×1 layers only there too, the
        last one only for the pass's channels. A checkerboard pass reads decoded latents on
        half of its taps, so this is 2–4× less work than the full convolution; the sums run in
        another order, so the results differ from :meth:`pass_params` in the last bits only
        (the scale indices are chosen robustly to that, :func:`topoae.codec.tables.scale_indices`).
        """
        m_, h, w = (int(v) for v in sym.shape[1:])
        plan = self._sparse_plan(k, (m_, h, w))
        if plan is None:  # a pass that is not channels × positions: the dense function
            out = self.masks((m_, h, w))[k]
            mk, sk = self.pass_params(k, y_hat, sym, mean, scale)
            return mk[0][out], sk[0][out]
        chans, pi, pj, groups = plan
        net = cast(_PassNet, self.nets[k - 1])
        x = F.pad(torch.cat([y_hat[0], sym[0]]), (2, 2, 2, 2)).flatten(1)
        weight: torch.Tensor = net.ctx.weight
        bias = net.ctx.bias
        hidden = (torch.zeros((int(weight.shape[0]), pi.numel()), dtype=x.dtype) if bias is None
                  else bias[:, None].expand(-1, pi.numel()).clone())
        for both, dys, dxs, at in groups:  # taps reading the same channels: one product
            wt = weight[:, both][:, :, dys, dxs].reshape(weight.shape[0], -1)  # (C, chan · tap)
            hidden += wt @ x[both][:, at].reshape(wt.shape[1], -1)
        feats = torch.cat([hidden, mean[0][:, pi, pj], torch.log(scale[0][:, pi, pj])])
        layers = [mod for mod in net.params if isinstance(mod, nn.Conv2d)]
        biases = [conv.bias for conv in layers]
        assert all(b is not None for b in biases)  # the pass networks' 1×1 layers have biases
        for conv, b in zip(layers[:-1], biases[:-1], strict=True):
            feats = F.leaky_relu(conv.weight[:, :, 0, 0] @ feats + cast(torch.Tensor, b)[:, None], 0.1)
        rows = torch.cat([chans, chans])
        d = layers[-1].weight[rows, :, 0, 0] @ feats + cast(torch.Tensor, biases[-1])[rows][:, None]
        dm, ds = d.chunk(2, 0)
        mk = mean[0][chans][:, pi, pj] + dm
        sk = (scale[0][chans][:, pi, pj] * torch.exp(ds)).clamp_min(MIN_SCALE)
        return mk.reshape(-1), sk.reshape(-1)

    def forward(self, y: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training: the mean and scale each latent is coded with, passes run in order on
        the rounded latents (as the coder will see them; no gradient through the rounding)."""
        shape = (int(y.shape[1]), int(y.shape[2]), int(y.shape[3]))
        masks = [m_[None].to(device=y.device, dtype=y.dtype) for m_ in self.masks(shape)]
        mu, sc = mean, scale
        sym = torch.zeros_like(y)
        y_hat = torch.zeros_like(y)
        for k, m_ in enumerate(masks):
            if k:
                mk, sk = self.pass_params(k, y_hat, sym, mean, scale)
                mu = mu * (1 - m_) + mk * m_
                sc = sc * (1 - m_) + sk * m_
            s = torch.round(y - mu).detach()
            sym = sym + s * m_
            y_hat = y_hat + (s + mu).detach() * m_
        return mu, sc

