"""Training under bf16 autocast (what a GPU run uses): GDN, the densities and the rounded
hyper-latents stay in float32, so the rate and the normalisation do not lose bits to bf16."""

import pytest
import torch

from topoae.models.entropy import FactorizedDensity, widen
from topoae.models.hyperprior import GDN, HyperpriorConfig, HyperpriorModel


def _bf16():
    if not hasattr(torch, "autocast"):
        pytest.skip("no torch.autocast")
    return torch.autocast("cpu", dtype=torch.bfloat16)


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_is_float32_under_autocast(inverse):
    torch.manual_seed(0)
    gdn = GDN(8, inverse=inverse)
    with torch.no_grad():
        gdn.gamma.add_(0.05 * torch.rand_like(gdn.gamma))
    x = 3 * torch.randn(2, 8, 16, 16)
    plain = gdn(x)
    with _bf16():
        auto = gdn(x)
    assert auto.dtype == torch.float32
    torch.testing.assert_close(auto, plain, rtol=1e-6, atol=1e-6)  # not bf16's 2**-8


def test_factorized_likelihood_is_float32_under_autocast():
    torch.manual_seed(1)
    dens = FactorizedDensity(6)
    z = torch.round(4 * torch.randn(2, 6, 5, 5))
    plain = dens.likelihood(z)
    with _bf16():
        auto = dens.likelihood(z)
    assert auto.dtype == torch.float32
    torch.testing.assert_close(auto, plain, rtol=1e-6, atol=1e-9)


def test_a_training_step_under_autocast_keeps_float32_rates_and_gradients():
    torch.manual_seed(2)
    net = HyperpriorModel(HyperpriorConfig(channels=8, latent_channels=12, hyper_channels=8,
                                           context="checkerboard-channels4"))
    x, level = torch.randn(2, 1, 64, 64), torch.tensor([0, 3])
    with _bf16():
        out = net(x, level)
        mean, scale = net.mean_scale(net.h_s(torch.zeros(1, 8, 1, 1)))
    assert out["y_likelihoods"].dtype == out["z_likelihoods"].dtype == torch.float32
    assert mean.dtype == scale.dtype == torch.float32
    (-torch.log2(out["y_likelihoods"]).mean() + out["x_hat"].float().pow(2).mean()).backward()
    assert {p.grad.dtype for p in net.parameters() if p.grad is not None} == {torch.float32}


def test_widen_keeps_float64_for_the_coder():
    assert widen(torch.zeros(2, dtype=torch.float64)).dtype == torch.float64
    assert widen(torch.zeros(2, dtype=torch.bfloat16)).dtype == torch.float32
    t = torch.zeros(2)
    assert widen(t) is t
