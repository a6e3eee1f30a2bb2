"""Shapes, parameter counts and the model protocol of the thesis and default networks."""

from __future__ import annotations

import pytest
import torch

from topoae.errors import ConfigError
from topoae.models import AE, VAE, Discriminator, ModelConfig, build_model, count_parameters
from topoae.training import preset


def test_thesis_vae_parameter_count_matches_keras():
    # The thesis' Keras summary says 3,322,497: Keras counts BatchNorm moving mean/variance
    # (2 x 896 channels = 1,792 values) as non-trainable parameters, PyTorch keeps them as buffers.
    vae = build_model(preset("vae", "thesis").model)
    assert count_parameters(vae) == 3_320_705
    assert count_parameters(vae, keras=True) == 3_322_497
    bn = sum(m.num_features for m in vae.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert bn == 896


def test_thesis_ae_latent_is_the_whole_feature_map():
    ae = build_model(preset("ae", "thesis").model)
    assert isinstance(ae, AE)
    assert ae.latent_dim == 6 * 6 * 256 == 96 * 96  # no compression at all
    mu, logvar = ae.encode(torch.rand(2, 1, 96, 96))
    assert mu.shape == (2, 9216) and logvar is None


@pytest.mark.parametrize("kind", ["ae", "vae", "dfc-vae", "vae-gan"])
@pytest.mark.parametrize("preset_name", ["thesis", "default"])
def test_protocol_shapes(kind, preset_name):
    cfg = preset(kind, preset_name).model
    model = build_model(cfg).eval()
    x = torch.rand(2, 1, 96, 96)
    mu, logvar = model.encode(x)
    assert mu.shape == (2, model.latent_dim)
    assert (logvar is None) == (kind == "ae")
    out = model(x)
    assert out["x_hat"].shape == (2, 1, 96, 96)
    assert model.decode(mu).shape == (2, 1, 96, 96)
    assert model.patch_size == 96
    if cfg.output == "sigmoid":
        assert out["x_hat"].min() >= 0 and out["x_hat"].max() <= 1


def test_vae_samples_in_training_and_not_in_eval():
    torch.manual_seed(0)
    vae = VAE(ModelConfig(latent_dim=16))
    x = torch.rand(4, 1, 96, 96)
    vae.eval()
    a, b = vae(x), vae(x)
    assert torch.equal(a["x_hat"], b["x_hat"]) and torch.equal(a["z"], a["mu"])
    vae.train()
    c = vae(x)
    assert not torch.equal(c["z"], c["mu"])


@pytest.mark.parametrize("patch", [32, 64, 128])
def test_other_patch_sizes(patch):
    cfg = ModelConfig(patch_size=patch, latent_dim=10, decoder="residual", head="pixelshuffle")
    model = build_model(cfg)
    assert model(torch.rand(2, 1, patch, patch))["x_hat"].shape == (2, 1, patch, patch)
    with pytest.raises(ValueError, match="expected input of shape"):
        model.encode(torch.rand(2, 1, 96, 96) if patch != 96 else torch.rand(2, 1, 32, 32))


def test_decoder_variants_differ_in_size():
    thesis = count_parameters(build_model(ModelConfig()))
    residual = count_parameters(build_model(ModelConfig(decoder="residual")))
    assert residual > thesis


def test_keras_init_has_zero_biases_and_he_scale():
    vae = build_model(ModelConfig(init="keras"))
    conv = vae.encoder.net[3]  # second conv: 64 -> 128, 4x4
    assert torch.count_nonzero(conv.bias) == 0
    bound = (6 / (64 * 16)) ** 0.5
    w = conv.weight.detach()
    assert float(w.abs().max()) <= bound
    assert float(w.std()) == pytest.approx(bound / 3**0.5, rel=0.05)


def test_discriminator_gives_one_logit_per_patch():
    d = Discriminator(ModelConfig())
    assert d(torch.rand(5, 1, 96, 96)).shape == (5,)


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "gan"},
        {"patch_size": 90},
        {"latent_dim": None},  # only the AE may keep the feature map
        {"decoder": "unet"},
        {"enc_filters": (8, 8, 8)},
        {"latent_dim": 0},
    ],
)
def test_invalid_configs_raise_config_error(bad):
    with pytest.raises(ConfigError):
        ModelConfig(**bad)


def test_config_dict_round_trip():
    cfg = ModelConfig(kind="ae", latent_dim=None, decoder="residual")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown model config keys"):
        ModelConfig.from_dict({**cfg.to_dict(), "colour": 1})


def test_vae_logvar_is_bounded():
    vae = VAE(ModelConfig(latent_dim=4))
    with torch.no_grad():
        vae.bottleneck.heads[1].bias.fill_(500.0)
        _, logvar = vae.encode(torch.rand(2, 1, 96, 96))
    assert float(logvar.max()) == 20.0
