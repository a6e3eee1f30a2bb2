"""Ensembles of plausible grids: sample latents per patch and decode them with the codec's blending.

Member ``m`` draws, for every patch, ``z = mu + T * exp(logvar / 2) * eps`` (from
the encoder's posterior ``q(z|x)``) or ``z = T * eps`` (from the prior, ``prior=True``),
with ``eps ~ N(0, I)`` and temperature ``T``. The noise of member ``m`` on patch row
``k`` comes from a generator seeded with ``(seed, m, k)``, so a member is the same
whatever the ensemble size, the block layout or the order blocks are computed in;
the same seed always gives the same ensemble. ``T = 0`` (posterior) gives the
plain decode of ``mu`` without residual.

The residual of error-bounded latents is not added to members: it corrects the
mean reconstruction, not a random draw. NaN cells of the input are NaN in
every member.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

from topoae.codec.patch_decoder import BlockDecoder, provenance
from topoae.errors import ConfigError


def _noise(seed: int, member: int, row: int, shape: tuple[int, int]) -> np.ndarray:
    return np.random.default_rng([seed, member, row]).standard_normal(shape, dtype=np.float32)


def sample(
    ds: xr.Dataset,
    model: Any,
    *,
    n: int = 32,
    seed: int = 0,
    temperature: float = 1.0,
    prior: bool = False,
    force: bool = False,
    device: str = "cpu",
    batch: int | None = None,
    lazy: bool = False,
) -> xr.Dataset:
    """Draw an ensemble of ``n`` grids from a latent dataset.

    Parameters
    ----------
    ds
        Latent dataset (:func:`topoae.codec.encode` / :func:`topoae.codec.open_latents`);
        sampling from q(z|x) needs its ``logvar`` (encode with ``keep_logvar=True``).
    model
        The model that made the latents (``LoadedModel`` or bare module).
    n, seed, temperature
        Ensemble size, random seed (non-negative int), noise scale (>= 0).
    prior
        Draw from the prior N(0, I) instead of q(z|x).
    force, device, batch
        As in :func:`topoae.codec.decode`.
    lazy
        Return dask-backed variables computed block by block.

    Returns
    -------
    xr.Dataset
        ``<name>`` ``(member, <y>, <x>)``, ``<name>_mean`` and ``<name>_std``
        (sample standard deviation, ``ddof=1``; 0 for a single member), float32
        metres on the original grid, with its attributes and CRS.
    """
    if n < 1:
        raise ConfigError(f"--n must be at least 1, got {n}")
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ConfigError(f"--temperature must be a non-negative number, got {temperature}")
    if seed < 0:
        raise ConfigError(f"--seed must be non-negative, got {seed}")
    dec = BlockDecoder(ds, model, force=force, device=device, batch=batch)
    if not prior and dec.logvar is None:
        raise ConfigError(
            "these latents have no logvar, so q(z|x) cannot be sampled: encode "
            "with --keep-logvar (a VAE), or sample the prior with --prior"
        )
    shape = (dec.layout.n_cols, dec.cm.latent_dim)
    temp = np.float32(temperature)

    def latents(member: int):
        def row(k: int) -> np.ndarray:
            eps = _noise(seed, member, k, shape)
            if prior or dec.logvar is None:  # no logvar: refused above unless prior
                return temp * eps
            return dec.mu[k] + temp * np.exp(np.float32(0.5) * dec.logvar[k]) * eps

        return row

    def block(b: int) -> np.ndarray:
        members = np.stack(
            [dec.finish(b, dec.reconstruct(b, latents(m)), residual=False) for m in range(n)]
        )
        mean = members.mean(axis=0, dtype=np.float64)
        std = members.std(axis=0, dtype=np.float64, ddof=1) if n > 1 else np.zeros_like(mean)
        return np.concatenate([members, mean[None], std[None]]).astype(np.float32)

    stack = dec.assemble(block, lazy=lazy, lead=(n + 2,))
    name = dec.meta["grid"]["name"] or "elevation"
    members = dec.template(stack[:n], leading=("member",)).assign_coords(member=np.arange(n))
    mean, std = dec.template(stack[n]), dec.template(stack[n + 1])
    for da, what in (
        (members, "ensemble member"),
        (mean, "ensemble mean"),
        (std, "ensemble standard deviation"),
    ):
        da.attrs["topoae_ensemble"] = what
    out = xr.Dataset({name: members, f"{name}_mean": mean, f"{name}_std": std})
    out.attrs["topoae_provenance"] = provenance(
        dec.meta, sample={"n": n, "seed": seed, "temperature": float(temperature), "prior": prior}
    )
    out.attrs["title"] = f"topoae ensemble of {n} members ({'prior' if prior else 'q(z|x)'})"
    return out
