"""Encode-time refinement of a tile's latents: gradient steps on rate + λ·distortion.

The analysis transform predicts a tile's latents in one pass, for the average tile it was
trained on. The encoder can do better for the tile at hand by descending the very objective
the network was trained on, for this tile alone: the estimated bits of the latents and
hyper-latents plus λ (the level's) times the squared error of the synthesis on the tile's
real cells (Campos et al. 2019, "Content adaptive optimization for neural image
compression"; Yang et al. 2020, "Improving inference for neural image compression"). Only
the encoder changes: a refined file is an ordinary file of the same format, decoded by the
same decoder.

- Distortion: plain squared error on the network's scale, every real cell alike, so the
  refinement aims at RMSE in metres (the network itself was trained with shallow water
  weighted up, :func:`topoae.training.rd.depth_weights`).
- Rate: uniform-noise estimate (as in training); the synthesis sees straight-through
  rounded latents. Adam, first step :func:`step_size` (the level's gain), cosine schedule to zero.
- The tile's neighbours enter the synthesis as fixed context: those already coded (above, left)
  exactly as the decoder will see them, the others (right, below) as this tile's analysis of
  its context predicts them.
- Safeguard: the analysis's latents and the iterates after a third, two thirds and all of
  the steps are coded for real, and the one with the lowest real cost (bytes of the tile's
  stream + λ·MSE of its decoded synthesis) is kept, so refinement never makes a tile worse
  by the measure it optimises (at low rates on smooth tiles the estimate can mislead).
- Deterministic on a machine: the noise comes from a generator seeded per tile.

Cost: a forward and backward pass of the transforms per step, ~0.27 s per step on a
512² tile on one thread (x86-64): 60 steps take ~16 s, ~60× the plain encode.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from topoae.models.entropy import gaussian_likelihood
from topoae.models.hyperprior import HyperpriorModel
from topoae.models.inference import mirror_edges

#: Adam step size at the first step, at most :data:`LR` and :data:`LR_PER_GAIN` times the
#: level's mean gain (the latents scale with it). Measured with 60 steps: at level 4 of a
#: held-out tile 0.02, 0.1, 0.3 and 1.0 were tried, and 0.3 was best. On Suruga Bay, 0.3 made
#: the low levels' files grow (at level 0: 370 → 3,900 bytes of latents; the rate estimate with
#: uniform noise misleads where most latents are dead), while 0.05 at level 0 (gain 0.09) and 0.1
#: at level 1 (0.165) gave 20 % and 14 % lower RMSE than the plain ladder at the same ratio.
LR = 0.3
LR_PER_GAIN = 0.6

#: the recommended number of steps (``topoae encode --refine 60``): on a held-out tile at
#: level 4, 30 steps gave about half the gain of 60; 120 steps saved at most ~2 % more bytes
#: than 60 (3 held-out tiles at levels 2 and 4) for twice the time
STEPS = 60

#: what :func:`refine` needs from the coder: ungained latents -> (stream, decoded gained latents)
Coder = Callable[[np.ndarray], tuple[bytes, np.ndarray]]
#: the corrections the file adds to a reconstruction: the tile's synthesis (normalised, its
#: ``16h × 16w`` cells) -> (their bytes, the squared error left on the real cells, normalised)
Corrector = Callable[[np.ndarray], tuple[int, float]]


def refine(net: HyperpriorModel, window: np.ndarray, inner: tuple[slice, slice], x: np.ndarray,
           mask: np.ndarray, level: float, steps: int, code: Coder, *, seed: int = 0,
           edges: tuple[int, int, int, int] = (0, 0, 0, 0),
           correct: Corrector | None = None) -> np.ndarray | None:
    """The tile's ungained latents after ``steps`` refinement steps (float32 ``(M, h, w)``),
    or ``None`` when none of the iterates costs less than the analysis's latents.

    ``window``: gained latents ``(M, H, W)`` around the tile, the tile's own at ``inner``
    (slices of rows and columns); ``x``: the tile's normalised residual on its ``16h × 16w``
    cells, ``mask``: 1 on its real cells, 0 elsewhere; ``code``: the real coder of the tile.
    Works under ``torch.no_grad()`` / ``inference_mode()`` too, and leaves the network's
    parameters as they are (gradients are taken for the latents only). ``edges``: latents
    mirrored past the window's (top, bottom, left, right) sides before the synthesis, as the
    decoder does at the region's edges (:func:`~topoae.models.inference.mirror_edges`).
    ``correct``: the corrections the file will add (the codec's outlier stream); with it an
    iterate is kept only if the tile's latents plus corrections cost less than the
    analysis's, so refinement cannot make the file worse for this tile. Without it the cost
    is the latents' bytes and the synthesis' error.
    """
    if steps <= 0:
        return None
    with torch.inference_mode(False), torch.enable_grad():
        return _descend(net, window, inner, x, mask, level, steps, code, seed, edges, correct)


def _descend(net: HyperpriorModel, window: np.ndarray, inner: tuple[slice, slice], x: np.ndarray,
             mask: np.ndarray, level: float, steps: int, code: Coder, seed: int,
             edges: tuple[int, int, int, int], correct: Corrector | None) -> np.ndarray | None:
    g = net.gains(level).detach()
    lam = net.level_lambda(level)
    ri, ci = inner
    top, left = ri.start, ci.start
    h, w = ri.stop - ri.start, ci.stop - ci.start
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]
    mt = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]
    cells = max(float(mt.sum()), 1.0)
    fixed = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))[None]
    y0 = fixed[:, :, ri, ci].clone()

    def synth(y: torch.Tensor) -> torch.Tensor:
        win = torch.cat([fixed[:, :, :top], torch.cat(
            [fixed[:, :, ri, :left], y, fixed[:, :, ri, ci.stop:]], dim=3), fixed[:, :, ri.stop:]], dim=2)
        t, l_ = top + edges[0], left + edges[2]
        return net.synthesise(mirror_edges(win, edges), level)[:, :, t * 16:(t + h) * 16, l_ * 16:(l_ + w) * 16]

    def real_cost(y: torch.Tensor) -> float:
        blob, yh = code((y / g)[0].numpy())
        with torch.no_grad():
            xh = synth(torch.from_numpy(yh)[None])
        if correct is not None:
            extra, sse = correct(xh[0, 0].numpy())
        else:
            extra, sse = 0, float((((xh - xt) * mt) ** 2).sum())
        return 8.0 * (len(blob) + extra) / cells + lam * sse / cells

    best_y, best_j = None, real_cost(y0)
    checks = {max(1, steps // 3), max(1, 2 * steps // 3), steps}
    gen = torch.Generator().manual_seed(seed)
    lr = step_size(net, level)
    y = y0.clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=lr)
    for step in range(1, steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * (step - 1) / steps))
        z = net.hyper_analyse(y)
        z_hat = z + (torch.round(z) - z).detach()
        zb = -torch.log2(net.z_density.likelihood(z + _noise(z, gen))).sum()
        # the coder's μ, σ (the hyper-synthesis covers 4 × the hyper-latents: cut to the tile's)
        mean, scale = net.conditional(y, *(t[:, :, :h, :w] for t in net.hyper_params(z_hat)))
        r = y - mean
        y_lik = gaussian_likelihood(r + _noise(r, gen), scale)
        y_hat = mean + r + (torch.round(r) - r).detach()
        bits = (zb - torch.log2(y_lik).sum()) / cells
        mse = (((synth(y_hat) - xt) * mt) ** 2).sum() / cells
        (grad,) = torch.autograd.grad(bits + lam * mse, [y])
        y.grad = grad
        opt.step()
        if step in checks:
            cand = y.detach().clone()
            j = real_cost(cand)
            if j < best_j:
                best_y, best_j = cand, j
    return None if best_y is None else (best_y / g)[0].numpy().astype(np.float32)


def step_size(net: HyperpriorModel, level: float) -> float:
    """The first Adam step of :func:`refine` at ``level``."""
    return min(LR, LR_PER_GAIN * float(net.gains(level).detach().mean()))


def _noise(t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(t.shape, generator=gen, dtype=t.dtype) - 0.5
