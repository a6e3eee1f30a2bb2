"""Loss parts, the KL schedule, and the feature networks of the perceptual loss."""

from __future__ import annotations

import math

import pytest
import torch

from topoae.errors import ConfigError, DependencyError
from topoae.losses import (
    AutoencoderLoss,
    DiscriminatorLoss,
    GradientLoss,
    LossConfig,
    PerceptualLoss,
    ReconstructionLoss,
    charbonnier,
    kl_divergence,
    kl_weight,
)
from topoae.perceptual import (
    TerrainFeatures,
    VGG19Features,
    build_feature_net,
    find_vgg19_weights,
    terrain_targets,
)


def sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_charbonnier_values():
    a = torch.tensor([0.0, 3.0, -4.0])
    b = torch.zeros(3)
    c = charbonnier(a, b)
    assert c[0].item() == pytest.approx(1e-5)  # sqrt(1e-10)
    assert c[1].item() == pytest.approx(3.0) and c[2].item() == pytest.approx(4.0)


def test_kl_hand_computed():
    mu = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0], [0.0, math.log(4.0)]])
    # KL = 0.5 * sum(mu^2 + var - 1 - log var): row 2 = 0.5 * (1 + (4 - 1 - ln 4)) = 0.5 * (4 - ln 4)
    kl = kl_divergence(mu, logvar)
    assert kl[0].item() == pytest.approx(0.0, abs=1e-7)
    assert kl[1].item() == pytest.approx(0.5 * (4 - math.log(4.0)), rel=1e-6)


def test_kl_schedule_matches_the_thesis():
    assert kl_weight(1) == 0.0 and kl_weight(2) == 0.0
    assert kl_weight(3) == pytest.approx(sigmoid(-10))
    assert kl_weight(10) == pytest.approx(sigmoid(-10 + 1.3 * 7))
    assert kl_weight(21) == pytest.approx(sigmoid(13.4)) and kl_weight(21) < 1
    assert kl_weight(22) == 1.0 and kl_weight(100) == 1.0
    w = [kl_weight(e) for e in range(1, 30)]
    assert all(b >= a for a, b in zip(w, w[1:], strict=False))
    assert LossConfig(kl_max=0.5).kl_weight(40) == 0.5
    assert LossConfig(kl_max=0.0).kl_weight(40) == 0.0


def test_sum_reduction_is_cells_times_mean():
    x_hat, x = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    s = ReconstructionLoss("sum")(x_hat, x)["recon"]
    m = ReconstructionLoss("mean")(x_hat, x)["recon"]
    assert s.item() == pytest.approx(64 * m.item(), rel=1e-5)
    assert m.item() == pytest.approx(charbonnier(x_hat, x).mean().item(), rel=1e-6)


def test_gradient_loss_ignores_offsets_and_sees_slopes():
    x = torch.rand(2, 1, 16, 16)
    g = GradientLoss("mean")
    assert g(x + 0.3, x)["grad"].item() == pytest.approx(2e-5, rel=1e-3)  # only the sqrt(eps) floor
    ramp = torch.arange(16.0).view(1, 1, 1, 16).expand(2, 1, 16, 16) * 0.01
    assert g(x + ramp, x)["grad"].item() == pytest.approx(0.01 + 1e-5, rel=1e-2)


def test_autoencoder_loss_parts_and_total():
    cfg = LossConfig(grad_weight=0.5)
    loss = AutoencoderLoss(cfg)
    x = torch.rand(3, 1, 16, 16)
    mu, logvar = torch.randn(3, 4), torch.randn(3, 4)
    out = {"x_hat": torch.rand(3, 1, 16, 16), "mu": mu, "logvar": logvar}
    parts = loss(out, x, kl_weight=0.25)
    assert set(parts) == {"recon", "kl", "grad", "loss"}
    expected = parts["recon"] + 0.25 * parts["kl"] + 0.5 * parts["grad"]
    assert parts["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    ae_parts = AutoencoderLoss(LossConfig(kl_max=0.0, reduction="mean"))({"x_hat": x, "mu": mu}, x)
    assert set(ae_parts) == {"recon", "loss"} and ae_parts["loss"].item() == pytest.approx(1e-5)


def test_perceptual_loss_zero_on_identity_and_trains_only_the_decoder():
    net = TerrainFeatures((4, 4, 4, 4))
    loss = PerceptualLoss(net, (1.0, 0.75, 0.5, 0.5))
    x = torch.rand(2, 1, 32, 32)
    assert loss(x, x)["perceptual"].item() == pytest.approx(
        0.5
        * 1e-5
        * sum(w * f.numel() / 2 for w, f in zip((1, 0.75, 0.5, 0.5), net(x), strict=True)),
        rel=1e-4,
    )
    x_hat = torch.rand(2, 1, 32, 32, requires_grad=True)
    loss(x_hat, x)["loss"].backward()
    assert x_hat.grad is not None and x_hat.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_dfc_loss_needs_a_feature_net():
    with pytest.raises(ConfigError):
        LossConfig(perceptual_weight=1.0)
    with pytest.raises(ConfigError):
        AutoencoderLoss(LossConfig(perceptual_weight=1.0, feature_net="terrain"))
    with pytest.raises(ConfigError):
        LossConfig(feature_net="resnet")


def test_discriminator_loss_values():
    class Const(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0])

    parts = DiscriminatorLoss()(Const(), torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8))
    assert parts["d_real"].item() == pytest.approx(math.log(2))
    assert parts["loss"].item() == pytest.approx(2 * math.log(2))


def test_terrain_features_are_homogeneous_and_offset_blind():
    torch.manual_seed(0)
    net = TerrainFeatures((4, 8, 8, 8))
    x = torch.rand(2, 1, 32, 32)
    base = net(x)
    assert [f.shape[-1] for f in base] == [32, 16, 8, 4]
    for a, b in zip(net(3.0 * x + 7.0), base, strict=True):
        torch.testing.assert_close(a, 3.0 * b, rtol=1e-4, atol=1e-5)
    for a, b in zip(terrain_targets(2.0 * x - 1.0), terrain_targets(x), strict=True):
        torch.testing.assert_close(a, 2.0 * b, rtol=1e-4, atol=1e-5)


def test_terrain_targets_of_a_plane():
    ramp = torch.arange(32.0).view(1, 1, 1, 32).expand(1, 1, 32, 32) * 0.5  # 0.5 per cell along x
    slope, lap, _ = terrain_targets(ramp)[0][0]
    assert slope[:, 1:-1].mean().item() == pytest.approx(0.5, rel=1e-5)
    assert lap[:, 1:-1].abs().max().item() < 1e-5
    coarse = terrain_targets(ramp)[1][0, 0]  # averaged to 16x16: 1.0 per coarse cell
    assert coarse[:, 1:-1].mean().item() == pytest.approx(1.0, rel=1e-5)


def test_vgg19_loads_torchvision_layout(tmp_path):
    src = VGG19Features()
    src.reset_random(1)
    state = {f"features.{k}": v for k, v in src.features.state_dict().items()}
    state["features.30.weight"] = torch.zeros(1)  # deeper layers and the classifier are ignored
    state["classifier.0.weight"] = torch.zeros(1)
    path = tmp_path / "vgg19-test.pth"
    torch.save(state, path)
    dst = VGG19Features()
    dst.load_torchvision(path)
    x = torch.rand(1, 1, 32, 32)
    feats = dst(x)
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512]
    for a, b in zip(feats, src(x), strict=True):
        assert torch.equal(a, b)


def test_vgg19_imagenet_needs_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert find_vgg19_weights() is None
    with pytest.raises(DependencyError, match="perceptual-weights"):
        build_feature_net("vgg19-imagenet")
    with pytest.raises(DependencyError):
        find_vgg19_weights(tmp_path / "missing.pth")
    (tmp_path / "checkpoints").mkdir()
    src = VGG19Features()
    src.reset_random(2)
    torch.save(
        {f"features.{k}": v for k, v in src.features.state_dict().items()},
        tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth",
    )
    net, ident = build_feature_net("vgg19-imagenet")
    assert ident.startswith("vgg19-imagenet:") and not any(
        p.requires_grad for p in net.parameters()
    )


def test_random_vgg19_is_reproducible():
    a, ida = build_feature_net("vgg19-random")
    b, idb = build_feature_net("vgg19-random")
    assert ida == idb == "vgg19-random:seed0"
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_shipped_terrain_network_loads():
    net, ident = build_feature_net("terrain")
    assert ident.startswith("terrain:") and len(ident) == len("terrain:") + 16
    assert len(net(torch.rand(1, 1, 96, 96))) == 4


def test_zero_kl_weight_never_turns_an_overflow_into_nan():
    x = torch.rand(2, 1, 8, 8)
    out = {"x_hat": x, "mu": torch.zeros(2, 3), "logvar": torch.full((2, 3), 1000.0)}
    parts = AutoencoderLoss(LossConfig())(out, x, kl_weight=0.0)
    assert math.isinf(parts["kl"].item()) and math.isfinite(parts["loss"].item())
