"""The VAE-GAN discriminator: a patch classifier, real (1) versus decoded (0).

The thesis' own VAE-GAN did not converge (total L2 642.51, the worst of its
four models); topoae keeps it as an option so that the failure can be
reproduced and measured, not as a recommended model.
"""

from __future__ import annotations

import torch
from torch import nn

from topoae.models.config import ModelConfig


class Discriminator(nn.Module):
    """Four stride-2 conv blocks (no BatchNorm on the first) and a linear logit.

    Maps ``(B, 1, P, P)`` to logits ``(B,)``; ``features`` also returns the last
    feature map, usable for a feature-matching loss.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for i, cout in enumerate(cfg.enc_filters):
            layers.append(nn.Conv2d(cin, cout, 4, stride=2, padding=1, padding_mode="reflect"))
            if i:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.logit = nn.Linear(cfg.flat_map, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit(self.features(x).flatten(1)).squeeze(1)
