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


def test_refinement_with_outliers_costs_no_more_than_the_analysis(rd):
    """With the outlier stream on, a refined tile is kept only if its latents plus outlier
    corrections cost less (bits + λ·squared error) than the analysis's: one tile, so the
    whole file's cost is the tile's."""
    grid = synthetic_grid(128, 128, seed=9)
    x = grid.values.astype(np.float64)
    for level in (1, 4):
        costs = []
        for steps in (0, 8):
            h, s = learned.encode(grid, rd, level=level, refine=steps)
            out = learned.decode(h, s, rd).values.astype(np.float64)
            scale = TINY.unit * learned.RDCodecConfig(**h["codec"]).scale
            bits = 8 * sum(len(v) for k, v in s.items() if k.startswith(("tile:", "out:"))) / x.size
            costs.append(bits + float(rd.net.level_lambda(level)) * float(np.mean(((out - x) / scale) ** 2)))
        assert costs[1] <= costs[0] * 1.001, (level, costs)


def test_refined_bounded_files_keep_the_bound_and_are_never_larger(rd):
    grid = synthetic_grid(100, 140, seed=7)
    h, s = learned.encode(grid, rd, max_error=3.0, level=2, refine=4, tile=64)
    out = learned.decode(h, s, rd).values.astype(np.float64)
    assert np.max(np.abs(out - grid.values)) <= 3.0 + 1e-6
    plain = learned.to_bytes(*learned.encode(grid, rd, max_error=3.0, tile=64))
    h, s = learned.encode(grid, rd, max_error=3.0, refine=4, tile=64)  # the level walk
    assert len(learned.to_bytes(h, s)) <= len(plain)
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
    up = plain["codec"]["level"] + 2 / learned.LEVEL_STEPS
    assert h["codec"]["level"] in (plain["codec"]["level"], up)


def test_refinement_sees_the_decoded_neighbours_above_and_left(rd, monkeypatch):
    from topoae.codec import refine

    grid = synthetic_grid(150, 200, seed=4)  # 3x4 tiles of 64, the last row and column ragged
    seen = {}
    real = refine.refine

    def spy(net, window, inner, x, mask, level, steps, code, *, seed=0, edges=(0, 0, 0, 0), correct=None):
        seen[divmod(seed, 65536)] = (window.copy(), inner)
        i, j = divmod(seed, 65536)  # the region's edges: mirrored latents, as the decoder sees
        assert edges == (2 * (i == 0), 2 * (i == 2), 2 * (j == 0), 2 * (j == 3))
        assert correct is not None  # the outlier stream counts in the refined tile's cost
        return real(net, window, inner, x, mask, level, steps, code, seed=seed, edges=edges, correct=correct)

    monkeypatch.setattr(refine, "refine", spy)
    h, s = learned.encode(grid, rd, level=2, tile=64, refine=2)
    geo = learned.tile_layout(150, 200, 64, h["codec"]["margin"], h["codec"]["align"])
    assert len(seen) == 12

    def decoded(i, j):
        (r0, r1), (c0, c1) = geo.span(i, 0), geo.span(j, 1)
        return learned._decode_tile(rd, s[f"tile:{i},{j}"], ((r1 - r0) // 16, (c1 - c0) // 16), 2, "")

    checked = 0
    for (i, j), (win, (ri, ci)) in seen.items():
        if i > 0:
            above = decoded(i - 1, j)
            np.testing.assert_array_equal(win[:, :ri.start, ci], above[:, -ri.start:, :])
            checked += 1
        if j > 0:
            left = decoded(i, j - 1)
            np.testing.assert_array_equal(win[:, ri, :ci.start], left[:, :, -ci.start:])
            checked += 1
    assert checked == 17  # 8 tiles with a row above, 9 with a tile to the left


def test_refinement_under_no_grad_leaves_the_network_as_it_was(rd):
    grid = synthetic_grid(64, 96, seed=2)
    ref = learned.to_bytes(*learned.encode(grid, rd, level=3, refine=3))
    flags = [p.requires_grad for p in rd.net.parameters()]
    with torch.no_grad():
        a = learned.to_bytes(*learned.encode(grid, rd, level=3, refine=3))
    with torch.inference_mode():
        b = learned.to_bytes(*learned.encode(grid, rd, level=3, refine=3))
    assert a == b == ref
    assert [p.requires_grad for p in rd.net.parameters()] == flags
    assert all(p.grad is None for p in rd.net.parameters())
