"""Faster CPU inference of a hyperprior model's transforms, same weights, same function.

Two changes, neither touches training or the checkpoint:

* tensors run channels-last (NHWC), which oneDNN convolves about 20 % faster on a CPU
  than NCHW for these widths;
* the synthesis' last layer, a 5×5 stride-2 transposed convolution to one channel, is
  rewritten exactly as a 3×3 convolution to four channels followed by a pixel shuffle
  (each of the four output phases sees a 3×3 neighbourhood of the input). A transposed
  convolution with one output channel runs far below the CPU's speed; the sub-pixel
  form is about 2.4× faster and equal to float rounding.

``analyse`` and ``synthesise`` mirror :class:`HyperpriorModel`'s methods of the same name.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from topoae.layout import symmetric_index
from topoae.models.hyperprior import HyperpriorModel

# ConvTranspose2d(kernel 5, stride 2, padding 2) sends input i through tap k to output
# 2i − 2 + k, so output 2m + a (a: row or column parity) takes input m + t − 1 through
# tap k = a + 4 − 2t; taps outside 0..4 are zero. Phase a -> {3×3 tap t: 5×5 tap k}:
_TAPS = {0: {0: 4, 1: 2, 2: 0}, 1: {1: 3, 2: 1}}


class SubPixel(nn.Module):
    """A 5×5 stride-2 :class:`~torch.nn.ConvTranspose2d` as a 3×3 conv + pixel shuffle."""

    def __init__(self, deconv: nn.ConvTranspose2d) -> None:
        super().__init__()
        if (deconv.kernel_size, deconv.stride, deconv.padding, deconv.output_padding) != (
                (5, 5), (2, 2), (2, 2), (1, 1)):
            raise ValueError("SubPixel rewrites 5x5 stride-2 transposed convolutions only")
        w = deconv.weight.detach()  # (cin, cout, 5, 5)
        cin, cout = w.shape[0], w.shape[1]
        k = torch.zeros(cout, 2, 2, cin, 3, 3, dtype=w.dtype)
        for a, rows in _TAPS.items():
            for b, cols in _TAPS.items():
                for t, kt in rows.items():
                    for u, ku in cols.items():
                        k[:, a, b, :, t, u] = w[:, :, kt, ku].T
        self.weight = nn.Parameter(k.reshape(4 * cout, cin, 3, 3), requires_grad=False)
        bias = deconv.bias.detach() if deconv.bias is not None else torch.zeros(cout)
        self.bias = nn.Parameter(bias.repeat_interleave(4), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(F.conv2d(x, self.weight, self.bias, padding=1), 2)


def _channels_last(module: nn.Module) -> nn.Module:
    """4-D weights in channels-last layout (what ``module.to(memory_format=...)`` does)."""
    for p in module.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
    return module


def mirror_edges(y: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
    """Latents ``(B, M, h, w)`` widened by ``pads`` = (top, bottom, left, right) latents
    mirrored past their edges, the edge latent repeated (``numpy.pad(mode="symmetric")``;
    any width). The synthesis of a region's edge tiles sees these instead of the zeros of
    its convolutions' padding: the analysis saw the grid mirrored the same way past its
    edges, so the mirrored latents are close to what it would give there. Differentiable."""
    top, bottom, left, right = pads
    if not any(pads):
        return y
    h, w = int(y.shape[2]), int(y.shape[3])
    rows = torch.from_numpy(symmetric_index(-top, h + bottom, h))
    cols = torch.from_numpy(symmetric_index(-left, w + right, w))
    return y.index_select(2, rows).index_select(3, cols)


class InferenceTransforms:
    """``g_a`` and ``g_s`` of a trained model, prepared for fast inference (no gradients)."""

    def __init__(self, net: HyperpriorModel) -> None:
        self.net = net
        g_a = copy.deepcopy(net.g_a).eval()
        layers = list(copy.deepcopy(net.g_s).eval())
        if isinstance(layers[-1], nn.ConvTranspose2d) and layers[-1].out_channels == 1:
            layers[-1] = SubPixel(layers[-1])
        g_s = nn.Sequential(*layers).eval()
        self.g_a = _channels_last(g_a)
        self.g_s = _channels_last(g_s)

    @torch.no_grad()
    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        """Ungained latents of a normalised residual ``(B, 1, H, W)`` (contiguous NCHW)."""
        return self.g_a(x.contiguous(memory_format=torch.channels_last)).contiguous()

    @torch.no_grad()
    def synthesise(self, y_hat: torch.Tensor, level: float) -> torch.Tensor:
        """Dequantised gained latents -> normalised residual ``(B, 1, H, W)``."""
        y = (y_hat / self.net.gains(level)).contiguous(memory_format=torch.channels_last)
        return self.g_s(y).contiguous()
