"""Entropy models for training: a learned factorized density and a Gaussian conditional.

Both give the likelihood of a value ``v`` under its density convolved with a
unit-width uniform (i.e. the probability of the bin ``[v-0.5, v+0.5]``), which is
what noise-quantised training needs. Likelihoods are computed in float32 even
under bf16 autocast. The discrete tables that the bitstream coder uses are
built from these densities in :mod:`topoae.codec.tables`.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LIKELIHOOD_FLOOR = 1e-9


def full_precision(device_type: str) -> contextlib.AbstractContextManager:
    """A context with autocast off on ``device_type`` if it is on there, else one that does
    nothing (the codec's path, any device, any torch this project supports)."""
    try:
        on = torch.is_autocast_enabled(device_type)
    except (TypeError, RuntimeError):  # torch < 2.4 has one flag for CUDA, one for the CPU
        on = (torch.is_autocast_enabled() if device_type == "cuda"
              else device_type == "cpu" and torch.is_autocast_cpu_enabled())
    return torch.autocast(device_type, enabled=False) if on else contextlib.nullcontext()


def widen(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 if it is in half precision (an op's output under bf16 autocast), else
    unchanged: the coder's float64 probability path stays float64."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def _std_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


def gaussian_likelihood(v: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """P(bin of width 1 centred at ``v``) under N(0, scale²), computed on the stable tail."""
    v = v.float().abs()
    s = scale.float()
    upper = _std_normal_cdf((0.5 - v) / s)
    lower = _std_normal_cdf((-0.5 - v) / s)
    return (upper - lower).clamp_min(LIKELIHOOD_FLOOR)


class FactorizedDensity(nn.Module):
    """Per-channel learned cumulative (Ballé et al. 2018, appendix 6.1), filters (3, 3, 3)."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1, *filters, 1)
        scale = init_scale ** (1.0 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (C, 1, K) -> logits of the cumulative, (C, 1, K)."""
        for i, (m, b) in enumerate(zip(self.matrices, self.biases, strict=True)):
            x = torch.matmul(F.softplus(m), x) + b
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """P(bin of width 1 centred at ``z``) for ``z`` of shape (B, C, H, W)."""
        b, c, h, w = z.shape
        v = z.float().permute(1, 0, 2, 3).reshape(c, 1, -1)
        with full_precision(z.device.type):  # float32 under bf16 autocast too
            lower = self._logits(v - 0.5)
            upper = self._logits(v + 0.5)
            sign = -torch.sign(lower + upper).detach()
            lik = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        lik = lik.clamp_min(LIKELIHOOD_FLOOR)
        return lik.reshape(c, b, h, w).permute(1, 0, 2, 3)

    @torch.no_grad()
    def bin_probabilities(self, support: int) -> np.ndarray:
        """float64 ``(C, 2*support+1)``: P(round(z) = k) for k in [-support, support],
        the tails folded into the end bins."""
        k = torch.arange(-support, support + 1, dtype=torch.float64)
        edges = torch.cat([k - 0.5, k[-1:] + 0.5]).float()
        v = edges.reshape(1, 1, -1).expand(self.channels, 1, -1).contiguous()
        cdf = torch.sigmoid(self._logits(v)).double().reshape(self.channels, -1).numpy()
        cdf[:, 0] = 0.0
        cdf[:, -1] = 1.0
        return np.clip(np.diff(cdf, axis=1), 0.0, None)
