"""Convolutional building blocks: the thesis' encoder and decoder, and the residual decoder.

All blocks keep spatial size arithmetic exact for patch sizes that are
multiples of 16: the encoder halves the side four times (96 -> 48 -> 24 -> 12
-> 6), the decoder doubles it four times. Reflection padding (as in the thesis)
avoids the artificial cliffs zero padding would draw at patch borders.
"""

from __future__ import annotations

import torch
from torch import nn

from topoae.models.config import ModelConfig


def _bn(channels: int, cfg: ModelConfig) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=cfg.bn_eps, momentum=cfg.bn_momentum)


def _act(cfg: ModelConfig) -> nn.LeakyReLU:
    return nn.LeakyReLU(cfg.negative_slope)


def conv3(cin: int, cout: int) -> nn.Conv2d:
    """3x3 convolution, stride 1, reflection padding: keeps the side."""
    return nn.Conv2d(cin, cout, 3, stride=1, padding=1, padding_mode="reflect")


class Encoder(nn.Module):
    """Four blocks of ReflectionPad(1) -> Conv 4x4 stride 2 -> BatchNorm -> LeakyReLU.

    Maps ``(B, 1, P, P)`` to ``(B, enc_filters[-1], P/16, P/16)``.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for cout in cfg.enc_filters:
            layers += [
                nn.Conv2d(cin, cout, 4, stride=2, padding=1, padding_mode="reflect"),
                _bn(cout, cfg),
                _act(cfg),
            ]
            cin = cout
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class UpBlock(nn.Module):
    """Thesis decoder block: nearest Upsample x2 -> Conv 3x3 (reflect) -> BN -> LeakyReLU."""

    def __init__(self, cin: int, cout: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), conv3(cin, cout), _bn(cout, cfg), _act(cfg)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ResidualUpBlock(nn.Module):
    """Upsample x2, then two 3x3 conv/BN stages added to a 1x1-projected skip path.

    The skip keeps the upsampled coarse surface available to the output so the
    convolutions only have to add the detail, which trains faster than the
    plain stack and sharpens slopes.
    """

    def __init__(self, cin: int, cout: int, cfg: ModelConfig) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.body = nn.Sequential(
            conv3(cin, cout), _bn(cout, cfg), _act(cfg), conv3(cout, cout), _bn(cout, cfg)
        )
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)
        self.act = _act(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        return self.act(self.body(x) + self.skip(x))


class Decoder(nn.Module):
    """Three up blocks then a head to one channel at full resolution.

    Maps ``(B, enc_filters[-1], P/16, P/16)`` to ``(B, 1, P, P)`` on the
    normalised scale (sigmoid output for data in [0, 1], or linear).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        block = UpBlock if cfg.decoder == "thesis" else ResidualUpBlock
        blocks: list[nn.Module] = []
        cin = cfg.enc_filters[-1]
        for cout in cfg.dec_filters:
            blocks.append(block(cin, cout, cfg))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        if cfg.head == "upsample":
            self.head = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3(cin, 1))
        else:
            self.head = nn.Sequential(conv3(cin, 4), nn.PixelShuffle(2))
        self.out = nn.Sigmoid() if cfg.output == "sigmoid" else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(self.head(self.blocks(h)))


def init_keras(module: nn.Module, last: nn.Module | None = None) -> None:
    """Apply the thesis' Keras initialisers in place.

    Convolutions and dense layers get He-uniform weights and zero biases; the
    ``last`` convolution (the output layer) gets He-normal. BatchNorm keeps
    gamma=1, beta=0. Latent heads are re-initialised by the caller
    (Glorot-uniform, Keras' default for a Dense without initialiser).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            if m is last:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            else:
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
