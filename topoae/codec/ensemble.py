"""Uncertainty ensembles from a ``.tae`` file: plausible grids given what was stored.

The codec's posterior over the latents, given the stored symbols, is uniform
within each quantisation bin (the noise-quantisation VAE view of the model). A
member draws every latent as ``ŷ + τ·u`` with ``u ~ U(−½, ½)`` and decodes it.
τ = 1 is that posterior; a decoder trained to ignore sub-bin noise then gives an
ensemble far too narrow, so τ is **calibrated** per quality level on validation
tiles (``benchmarks/ship_learned.py``) until 90 % of cells fall inside the 5–95 % band
of :data:`MEMBERS` members, and shipped with the model (``extra["sample_tau"]``).
The band is estimated from the members, so it widens with their number (with a
well-calibrated spread, ~80 % of draws fall inside the band of 16 members, ~85 % of
32, 90 % of very many): τ holds for :data:`MEMBERS` members.
Members are the same for the same seed (noise drawn per member and tile from
``numpy.random.default_rng((seed, member, i, j))``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from topoae.codec import learned
from topoae.errors import ConfigError
from topoae.models.hyperprior import split_level

#: the ensemble size τ is calibrated for, and the default of ``topoae sample`` on a ``.tae``
MEMBERS = 16


def tau_for(model: Any, level: float, kept: learned.RDModel | None = None) -> float:
    """The calibrated noise scale of ``level`` (1.0 when the model carries none; between two
    trained levels, interpolated in log τ). ``kept``: the release that decodes the file
    (:meth:`~topoae.codec.learned.RDModel.for_file`); its own τ where it recorded one."""
    extra = getattr(model, "extra", {}) or {}
    taus = kept.sample_tau if kept is not None and kept.sample_tau else extra.get("sample_tau")
    if taus is None:
        return 1.0
    lo, f = split_level(level)
    if f == 0:
        return float(np.asarray(taus)[lo])
    t = np.log(np.asarray(taus, dtype=np.float64))
    return float(np.exp((1.0 - f) * t[lo] + f * t[lo + 1]))


def member(header: dict[str, Any], streams: dict[str, bytes], model: Any, *, seed: int, index: int,
           tau: float, force: bool = False) -> xr.DataArray:
    """One ensemble member (float32 metres on the original grid)."""
    if not (np.isfinite(tau) and tau >= 0):
        raise ConfigError(f"the noise scale must be a non-negative number, got {tau}")

    def perturb(i: int, j: int, y: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng((int(seed), int(index), i, j))
        return (y + tau * rng.uniform(-0.5, 0.5, size=y.shape)).astype(np.float32)

    hdr = {**header, "codec": {**header["codec"], "max_error": None}}  # members are not bounded
    return learned.decode(hdr, streams, model, force=force, dtype="float32", perturb=perturb)


def sample(header: dict[str, Any], streams: dict[str, bytes], model: Any, *, n: int = MEMBERS,
           seed: int = 0, temperature: float = 1.0, force: bool = False) -> xr.Dataset:
    """``n`` members plus their mean, standard deviation and 5 / 95 % quantiles.

    ``temperature`` multiplies the calibrated τ of the file's quality level.
    """
    if n < 2:
        raise ConfigError(f"--n must be at least 2, got {n}")
    if int(seed) != seed or seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {seed}")
    if not (np.isfinite(temperature) and temperature >= 0):
        raise ConfigError(f"--temperature must be a non-negative number, got {temperature}")
    rd = learned.as_rd_model(model)  # tables and the float64 hyper-synthesis, once
    tau = tau_for(model, learned.file_level(header, rd.levels), rd.for_file(str(header.get("model", "")))
                  ) * float(temperature)
    members = [member(header, streams, rd, seed=seed, index=k, tau=tau, force=force)
               for k in range(n)]
    first = members[0]
    name = str(first.name or "elevation")
    stack = xr.concat(members, dim="member").assign_coords(member=np.arange(n))
    ds = xr.Dataset({name: stack})
    ds[f"{name}_mean"] = stack.mean("member")
    ds[f"{name}_std"] = stack.std("member")
    ds[f"{name}_q05"] = stack.quantile(0.05, dim="member").drop_vars("quantile").astype(stack.dtype)
    ds[f"{name}_q95"] = stack.quantile(0.95, dim="member").drop_vars("quantile").astype(stack.dtype)
    ds.attrs = {"topoae_ensemble": f"{n} members, seed {seed}, tau {tau:g} (calibrated x "
                                   f"temperature {temperature:g}), quality {header['codec']['level']}"}
    if "spatial_ref" in first.coords:
        ds = ds.assign_coords(spatial_ref=first.coords["spatial_ref"])
    return ds


def coverage(truth: np.ndarray, ens: np.ndarray) -> float:
    """Fraction of valid cells of ``truth`` inside the 5–95 % band of ``ens`` (members first)."""
    lo = np.quantile(ens, 0.05, axis=0)
    hi = np.quantile(ens, 0.95, axis=0)
    ok = np.isfinite(truth)
    return float(np.mean((truth[ok] >= lo[ok]) & (truth[ok] <= hi[ok])))
