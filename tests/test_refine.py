"""Encode-time latent refinement (tiny models made in code)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from topoae.checkpoint import save_checkpoint
from topoae.codec import learned
from topoae.errors import ConfigError
from topoae.io.synthetic import synthetic_grid
from topoae.models.hyperprior import HyperpriorConfig, HyperpriorModel
from topoae.training.rd import RDTrainConfig

TINY = HyperpriorConfig(channels=16, latent_channels=24, hyper_channels=16)


@pytest.fixture(scope="module")
def rd():
    torch.manual_seed(0)
    return learned.as_rd_model(HyperpriorModel(TINY).eval())


def _cost(rd, grid, level: int, refine: int, tile: int = 512) -> tuple[float, bytes]:
    """bits per cell of the latent streams + λ·MSE of the decoded synthesis (network scale)."""
    h, s = learned.encode(grid, rd, level=level, outliers=False, refine=refine, tile=tile)
    out = learned.decode(h, s, rd).values.astype(np.float64)
    x = grid.values.astype(np.float64)
    scale = TINY.unit * learned.RDCodecConfig(**h["codec"]).scale
    cells = x.size
    bits = 8 * sum(len(v) for k, v in s.items() if k.startswith("tile:")) / cells
    mse = float(np.mean(((out - x) / scale) ** 2))
    return bits + float(rd.net.lambdas[level]) * mse, learned.to_bytes(h, s)


@pytest.mark.parametrize("tile", [512, 64])
def test_refinement_lowers_the_real_cost_and_is_deterministic(rd, tile):
    grid = synthetic_grid(128, 192, seed=5)
    j0, _ = _cost(rd, grid, 3, 0, tile)
    j1, b1 = _cost(rd, grid, 3, 8, tile)
    _, b2 = _cost(rd, grid, 3, 8, tile)
    assert b1 == b2
    assert j1 < j0 * 0.999, (j0, j1)


def test_refined_files_keep_the_error_bound(rd):
    grid = synthetic_grid(100, 140, seed=7)
    h, s = learned.encode(grid, rd, max_error=3.0, level=2, refine=4, tile=64)
    out = learned.decode(h, s, rd).values.astype(np.float64)
    assert np.max(np.abs(out - grid.values)) <= 3.0 + 1e-6


@pytest.mark.parametrize("bad", [-1, 2.5, True, "3", 10_001])
def test_bad_refine_values_are_refused(rd, bad):
    with pytest.raises(ConfigError, match="--refine"):
        learned.encode(synthetic_grid(64, 64, seed=1), rd, level=1, refine=bad)


def test_cli_refine(tmp_path, gebco_nc):
    from topoae.cli.main import cli

    ckpt = tmp_path / "tiny.pt"
    torch.manual_seed(0)
    save_checkpoint(ckpt, HyperpriorModel(TINY).eval(), RDTrainConfig(model=TINY),
                    normalise={"mode": "offset-field"})
    out = tmp_path / "r.tae"
    res = CliRunner().invoke(cli, ["encode", str(gebco_nc), "--model", str(ckpt), "--out", str(out),
                                   "--quality", "2", "--refine", "3"])
    assert res.exit_code == 0, res.output
    assert out.is_file() and "refined" in res.output
    res = CliRunner().invoke(cli, ["encode", str(gebco_nc), "--model", str(ckpt), "--out",
                                   str(tmp_path / "s.tae"), "--refine", "-1"])
    assert res.exit_code != 0 and not (tmp_path / "s.tae").exists()


def test_ratio_with_refinement_reaches_the_ratio_with_at_most_two_refined_encodes(rd, monkeypatch):
    grid = synthetic_grid(128, 128, seed=9)
    raw = grid.size * 4
    plain, _, _ = learned.encode_to_ratio(grid, rd, 60.0)
    calls = []
    real = learned.encode

    def counting(*a, **kw):
        if kw.get("refine"):
            calls.append(kw["level"])
        return real(*a, **kw)

    monkeypatch.setattr(learned, "encode", counting)
    h, s, reached = learned.encode_to_ratio(grid, rd, 60.0, refine=3)
    assert 1 <= len(calls) <= 2
    assert reached and raw / len(learned.to_bytes(h, s)) >= 60.0
    assert h["codec"]["level"] >= plain["codec"]["level"]
