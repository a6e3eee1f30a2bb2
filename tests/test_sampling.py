"""Ensembles from q(z|x) or the prior (topoae.sampling)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from topoae import codec
from topoae.codec import files as codec_io
from topoae.errors import ConfigError
from topoae.sampling import sample


class LinearVAE(nn.Module):
    """A random linear VAE following the model protocol (encode -> mu, logvar)."""

    def __init__(self, patch: int = 16, latent: int = 6, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.patch_size, self.latent_dim = patch, latent
        self.enc = nn.Linear(patch * patch, 2 * latent)
        self.dec = nn.Linear(latent, patch * patch)

    def encode(self, x):
        h = self.enc(x.reshape(x.shape[0], -1))
        return h[:, : self.latent_dim], h[:, self.latent_dim :] - 1.0

    def decode(self, z):
        return torch.sigmoid(self.dec(z)).reshape(-1, 1, self.patch_size, self.patch_size)


def _grid(h=37, w=29, seed=0):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((h, w)) * 800 - 2000).astype(np.float32)
    z[4:7, 10:14] = np.nan
    return xr.DataArray(
        z,
        dims=("lat", "lon"),
        coords={"lat": np.arange(h) / 60.0, "lon": 100 + np.arange(w) / 60.0},
        name="elevation",
        attrs={"units": "m"},
    )


@pytest.fixture(scope="module")
def model():
    return LinearVAE()


@pytest.fixture(scope="module")
def latents(model):
    return codec.encode(_grid(), model, stride=12, keep_logvar=True, band_rows=1)


def test_same_seed_same_ensemble_other_seed_other_ensemble(model, latents):
    a = sample(latents, model, n=3, seed=7)
    b = sample(latents, model, n=3, seed=7)
    c = sample(latents, model, n=3, seed=8)
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a["elevation"].values, c["elevation"].values, equal_nan=True)
    # members differ from one another
    e = a["elevation"].values
    assert not np.allclose(e[0], e[1], equal_nan=True)


def test_a_member_does_not_depend_on_the_ensemble_size_or_laziness(model, latents):
    small = sample(latents, model, n=2, seed=3)
    big = sample(latents, model, n=5, seed=3, lazy=True)
    assert big["elevation"].chunks is not None
    np.testing.assert_array_equal(big["elevation"].values[:2], small["elevation"].values)


def test_layout_and_statistics(model, latents):
    da = _grid()
    ens = sample(latents, model, n=4, seed=0)
    e = ens["elevation"]
    assert e.dims == ("member", "lat", "lon") and e.shape == (4, *da.shape)
    np.testing.assert_array_equal(ens["member"].values, np.arange(4))
    np.testing.assert_array_equal(ens["lat"].values, da["lat"].values)
    nan = np.isnan(da.values)
    assert np.all(np.isnan(e.values[:, nan])) and np.all(np.isfinite(e.values[:, ~nan]))
    v = e.values.astype(np.float64)
    np.testing.assert_allclose(ens["elevation_mean"].values, v.mean(0), atol=1e-3, equal_nan=True)
    np.testing.assert_allclose(
        ens["elevation_std"].values, v.std(0, ddof=1), atol=1e-3, equal_nan=True
    )
    assert np.nanmin(ens["elevation_std"].values) > 0


def test_zero_temperature_gives_the_plain_decode(model, latents):
    ens = sample(latents, model, n=2, seed=1, temperature=0.0)
    ref = codec.decode(latents, model).values
    for m in range(2):
        np.testing.assert_array_equal(ens["elevation"].values[m], ref)
    np.testing.assert_array_equal(np.nan_to_num(ens["elevation_std"].values), 0.0)


def test_temperature_scales_the_spread(model, latents):
    lo = sample(latents, model, n=6, seed=2, temperature=0.2)["elevation_std"].values
    hi = sample(latents, model, n=6, seed=2, temperature=1.0)["elevation_std"].values
    assert np.nanmean(hi) > 2 * np.nanmean(lo)


def test_prior_needs_no_logvar_and_posterior_does(model):
    ds = codec.encode(_grid(), model, stride=12)  # no logvar kept
    with pytest.raises(ConfigError, match="--keep-logvar"):
        sample(ds, model, n=2)
    ens = sample(ds, model, n=2, prior=True, seed=5)
    assert ens["elevation"].shape[0] == 2
    np.testing.assert_array_equal(
        ens["elevation"].values, sample(ds, model, n=2, prior=True, seed=5)["elevation"].values
    )


@pytest.mark.parametrize("kw", [{"n": 0}, {"temperature": -1.0}, {"seed": -1}])
def test_bad_arguments(model, latents, kw):
    with pytest.raises(ConfigError):
        sample(latents, model, **kw)


def test_ensemble_file_round_trip(model, latents, tmp_path):
    ens = sample(latents, model, n=2, seed=0, lazy=True)
    path = codec_io.save_ensemble(ens, tmp_path / "ens.nc")
    with xr.open_dataset(path) as back:
        np.testing.assert_array_equal(back["elevation"].values, ens["elevation"].values)
        assert "topoae_provenance" in back.attrs


def test_noise_scale_between_levels_is_interpolated_in_log():
    from types import SimpleNamespace

    from topoae.codec.ensemble import tau_for

    m = SimpleNamespace(extra={"sample_tau": [1.0, 2.0, 8.0]})
    assert tau_for(m, 1) == 2.0 and tau_for(m, 2.0) == 8.0
    assert abs(tau_for(m, 0.5) - 2 ** 0.5) < 1e-12 and abs(tau_for(m, 1.5) - 4.0) < 1e-12
    assert tau_for(SimpleNamespace(extra={}), 1.5) == 1.0
