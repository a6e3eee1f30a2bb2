"""Frozen feature networks for the DFC-VAE's perceptual loss, all offline.

Three choices, each identified by a string that goes into the checkpoint:

- ``vgg19-imagenet``: VGG19 in plain torch (torchvision layer layout, so a
  torchvision ``vgg19-*.pth`` state dict loads unchanged) with weights from
  ``--perceptual-weights PATH`` or the torch hub cache. Nothing is downloaded.
- ``vgg19-random``: the same network with a fixed-seed random initialisation
  (torchvision's scheme), a baseline showing what the architecture alone gives.
- ``terrain`` (default): :class:`TerrainFeatures`, a small network topoae
  trains on real topography to predict slope, curvature and roughness at four
  scales, shipped in ``topoae/weights/terrain_features.pt``.

Every network maps ``(B, 1, P, P)`` patches to a list of four feature maps.
VGG19 taps ``relu1_2, relu2_2, relu3_2, relu4_2`` (torchvision ``features``
indices 3, 8, 13, 22) of the grey patch repeated into three channels, fed on
the [0, 1] scale as the thesis did (no ImageNet mean/std).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from topoae.errors import CheckpointError, ConfigError, DependencyError

VGG19_TAPS = (3, 8, 13, 22)
_VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512)
TERRAIN_WEIGHTS = "terrain_features.pt"
TERRAIN_FORMAT = "topoae-terrain-features"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class VGG19Features(nn.Module):
    """VGG19 ``features`` up to relu4_2, with torchvision's module indices.

    ``forward`` returns the activations after the layers in ``taps``.
    """

    def __init__(self, taps: tuple[int, ...] = VGG19_TAPS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU()]
                cin = int(v)
        self.features = nn.Sequential(*layers[: max(taps) + 1])
        self.taps = tuple(taps)

    def reset_random(self, seed: int = 0) -> None:
        """torchvision's VGG initialisation (Kaiming-normal, fan-out; zero bias), seeded."""
        g = torch.Generator().manual_seed(seed)
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=g)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def load_torchvision(self, path: str | Path) -> None:
        """Load the ``features.*`` tensors of a torchvision VGG19 state dict file."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"cannot read VGG19 weights {path}: {exc}") from exc
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise CheckpointError(f"{path} is not a torchvision VGG19 state dict")
        n = len(self.features)
        wanted = {
            k: v for k, v in state.items() if k.startswith("features.") and int(k.split(".")[1]) < n
        }
        try:
            self.load_state_dict(wanted, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{path} does not hold VGG19 weights: {str(exc).splitlines()[0]}"
            ) from exc

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(h)
        return out


def find_vgg19_weights(path: str | Path | None = None) -> Path | None:
    """The VGG19 weights file to use: ``path`` if given, else one in the torch hub cache.

    Looks for ``<torch hub dir>/checkpoints/vgg19-*.pth`` (where torchvision
    stores its download). Returns ``None`` when nothing is found.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DependencyError(f"VGG19 weights file {p} not found")
        return p
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    found = sorted(cache.glob("vgg19-*.pth")) if cache.is_dir() else []
    return found[0] if found else None


class TerrainFeatures(nn.Module):
    """A small terrain feature network: four scales, bias-free, centred input.

    Each stage is two bias-free 3x3 convolutions with LeakyReLU (and a 2x2
    average pool before stages 2-4); the stage outputs (at P, P/2, P/4, P/8)
    are the tapped features. Without biases, every layer is positively
    homogeneous and the input is centred on its patch mean, so
    ``f(a * x + c) = a * f(x)`` for ``a > 0``: features scale with relief
    exactly as a pixel error does, whatever the normalisation.

    ``heads`` (1x1 convs, training only) predict slope magnitude, Laplacian
    curvature and roughness (3x3 standard deviation) of the patch averaged to
    each stage's scale; that is the task the shipped weights were trained on
    (:func:`terrain_targets`).
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 64), slope: float = 0.2) -> None:
        super().__init__()
        self.widths = tuple(widths)
        stages = []
        cin = 1
        for i, w in enumerate(widths):
            layers: list[nn.Module] = [nn.AvgPool2d(2)] if i else []
            layers += [
                nn.Conv2d(cin, w, 3, padding=1, padding_mode="reflect", bias=False),
                nn.LeakyReLU(slope),
                nn.Conv2d(w, w, 3, padding=1, padding_mode="reflect", bias=False),
                nn.LeakyReLU(slope),
            ]
            stages.append(nn.Sequential(*layers))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(nn.Conv2d(w, 3, 1, bias=False) for w in widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = x - x.mean(dim=(-2, -1), keepdim=True)
        out = []
        for stage in self.stages:
            h = stage(h)
            out.append(h)
        return out

    def predict(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The training task: per scale, ``(B, 3, H, W)`` slope, curvature, roughness."""
        return [head(f) for head, f in zip(self.heads, self.forward(x), strict=True)]


def terrain_targets(x: torch.Tensor, scales: int = 4) -> list[torch.Tensor]:
    """Slope magnitude, Laplacian and 3x3 roughness of ``x`` at ``scales`` dyadic scales.

    Each map is positively homogeneous of degree 1 in ``x`` and blind to a
    constant offset, like :class:`TerrainFeatures`. Differences are in cells of
    the scale at hand, with reflection at the borders.
    """
    out = []
    h = x
    for s in range(scales):
        if s:
            h = F.avg_pool2d(h, 2)
        p = F.pad(h, (1, 1, 1, 1), mode="reflect")
        dx = 0.5 * (p[..., 1:-1, 2:] - p[..., 1:-1, :-2])
        dy = 0.5 * (p[..., 2:, 1:-1] - p[..., :-2, 1:-1])
        slope = torch.sqrt(dx**2 + dy**2 + 1e-20)
        lap = p[..., 1:-1, 2:] + p[..., 1:-1, :-2] + p[..., 2:, 1:-1] + p[..., :-2, 1:-1] - 4 * h
        mean = F.avg_pool2d(p, 3, stride=1)
        var = (F.avg_pool2d(p**2, 3, stride=1) - mean**2).clamp_min(0)
        rough = torch.sqrt(var + 1e-20)
        out.append(torch.cat([slope, lap, rough], dim=1))
    return out


def fit_terrain_features(
    patches: torch.Tensor,
    *,
    steps: int = 2000,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    widths: tuple[int, ...] = (16, 32, 64, 64),
    log: Callable[[int, float], None] | None = None,
) -> TerrainFeatures:
    """Train a :class:`TerrainFeatures` network on real patches ``(N, 1, P, P)``.

    Each step draws a batch, applies a random symmetry of the square, scales
    every patch to unit standard deviation (harmless: the network is
    homogeneous) and minimises, over the four scales, the relative squared
    error of the predicted slope / curvature / roughness maps
    (:func:`terrain_targets`), each channel normalised by its mean square.
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = TerrainFeatures(widths)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for step in range(steps):
        idx = torch.randint(len(patches), (batch_size,), generator=g)
        x = patches[idx].float()
        k = int(torch.randint(8, (1,), generator=g))
        x = torch.rot90(x.transpose(-1, -2) if k >= 4 else x, k % 4, dims=(-2, -1))
        x = (x - x.mean(dim=(-2, -1), keepdim=True)) / (x.std(dim=(-2, -1), keepdim=True) + 1e-6)
        targets = terrain_targets(x, len(widths))
        loss = x.new_zeros(())
        for pred, t in zip(net.predict(x), targets, strict=True):
            err = ((pred - t) ** 2).mean(dim=(0, 2, 3)) / ((t**2).mean(dim=(0, 2, 3)) + 1e-12)
            loss = loss + err.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log is not None:
            log(step, float(loss.detach()))
    return net.eval()


def save_terrain_features(net: TerrainFeatures, path: str | Path, *, meta: dict) -> None:
    """Write ``net`` (weights, widths and a provenance ``meta`` dict) for ``weights_only`` loading."""
    from topoae._atomic import atomic_path

    payload = {
        "format": TERRAIN_FORMAT,
        "widths": list(net.widths),
        "state_dict": net.state_dict(),
        "meta": meta,
    }
    with atomic_path(path, overwrite=True) as tmp:
        torch.save(payload, tmp)


def load_terrain_features(path: str | Path | None = None) -> tuple[TerrainFeatures, str]:
    """Load the terrain feature network; default: the weights shipped with topoae.

    Returns the network (eval mode) and its id ``"terrain:<sha256 prefix>"``.
    """
    if path is None:
        ref = resources.files("topoae") / "weights" / TERRAIN_WEIGHTS
        with resources.as_file(ref) as p:
            return load_terrain_features(p)
    p = Path(path)
    if not p.is_file():
        raise DependencyError(
            f"terrain feature weights {p} not found (train them with benchmarks/train_terrain_net.py)"
        )
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read terrain feature weights {p}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != TERRAIN_FORMAT:
        raise CheckpointError(f"{p} is not a topoae terrain feature network")
    net = TerrainFeatures(tuple(payload["widths"]))
    net.load_state_dict(payload["state_dict"])
    return net.eval(), f"terrain:{_sha256(p)[:16]}"


def build_feature_net(name: str, weights: str | Path | None = None) -> tuple[nn.Module, str]:
    """The frozen feature network ``name`` and its id string for the checkpoint.

    Parameters
    ----------
    name
        ``"terrain"``, ``"vgg19-random"`` or ``"vgg19-imagenet"``.
    weights
        For ``vgg19-imagenet``: a torchvision VGG19 state dict (else the torch
        hub cache is searched); for ``terrain``: another weights file than the
        shipped one. Ignored for ``vgg19-random``.

    Raises
    ------
    DependencyError
        ImageNet weights are asked for but none is given or cached.
    """
    net: nn.Module
    if name == "terrain":
        net, ident = load_terrain_features(weights)
    elif name == "vgg19-random":
        vgg = VGG19Features()
        vgg.reset_random(0)
        net, ident = vgg, "vgg19-random:seed0"
    elif name == "vgg19-imagenet":
        path = find_vgg19_weights(weights)
        if path is None:
            raise DependencyError(
                "no ImageNet VGG19 weights: pass --perceptual-weights PATH (a torchvision "
                f"vgg19-*.pth), place one in {Path(torch.hub.get_dir()) / 'checkpoints'}, "
                "or use --feature-net terrain"
            )
        vgg = VGG19Features()
        vgg.load_torchvision(path)
        net, ident = vgg, f"vgg19-imagenet:{_sha256(path)[:16]}"
    else:
        raise ConfigError(f"unknown feature network {name!r}")
    return net.eval().requires_grad_(False), ident
