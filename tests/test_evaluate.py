"""The evaluation harness, its report files and the ``topoae evaluate`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from topoae.errors import ConfigError, OutputExistsError
from topoae.evaluation import EvaluateConfig, baseline_contender, evaluate, pca_basis
from topoae.report import run_evaluation

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def region():
    from topoae.io.synthetic import synthetic_grid

    da = synthetic_grid(130, 170, seed=11)
    z = da.values.copy()
    z[5:9, 100:120] = np.nan
    return da.copy(data=z)


@pytest.fixture
def codecs():
    """The classic codecs come from the optional imagecodecs wheel."""
    return pytest.importorskip("imagecodecs")


class PoolModel:
    """A protocol-following 'model' without training: 4x4 means in, cubic-free upsampling out."""

    def __new__(cls):
        import torch
        import torch.nn.functional as F

        class _Pool(torch.nn.Module):
            patch_size = 32
            latent_dim = 64

            def __init__(self):
                super().__init__()
                self.register_buffer("k", torch.ones(1))

            def encode(self, x):
                return F.avg_pool2d(x, 4).flatten(1), None

            def decode(self, z):
                return F.interpolate(z.view(-1, 1, 8, 8), scale_factor=4, mode="bilinear")

            def forward(self, x):
                mu, _ = self.encode(x)
                return {"x_hat": self.decode(mu), "mu": mu}

        return _Pool()


# RMSE (m) on ``region`` (relief 12,758 m, 22,020 valid cells), measured 2026-11-22
RMSE_AT = {
    ("sz3", 20.0): 29.52,
    ("sperr", 20.0): 17.10,
    ("dct", 20.0): 131.01,
    ("downsample", 20.0): 86.04,
    ("sz3", 60.0): 90.93,
    ("sperr", 60.0): 48.90,
    ("dct", 60.0): 374.04,
    ("downsample", 60.0): 230.90,
}
POOL_MODEL_RMSE = 205.80  # PoolModel through topoae's codec (quantize none, 9.6x)


def test_baselines_at_matched_ratios(region, codecs):
    cfg = EvaluateConfig(
        ratios=(20.0, 60.0), compare=("sz3", "sperr", "dct", "downsample"), timing_s=0.0
    )
    res = evaluate(region, config=cfg)
    assert res["ratios"] == [20.0, 60.0]
    assert {(r["codec"], r["target_ratio"]) for r in res["runs"]} == {
        (c, t) for c in ("sz3", "sperr", "dct", "downsample") for t in (20.0, 60.0)
    }
    cells = region.size
    for r in res["runs"]:
        assert r["reached"]
        assert r["nbytes"] <= 4 * cells / r["target_ratio"]  # never over the byte budget
        assert r["ratio"] == pytest.approx(4 * cells / r["nbytes"])
        m = r["metrics"]
        assert m["n_valid"] == int(np.isfinite(region.values).sum())
        n = m["n_valid"]
        # Cauchy-Schwarz: rmse / sqrt(n) <= mae <= rmse <= max_abs <= rmse * sqrt(n)
        assert m["rmse"] / np.sqrt(n) <= m["mae"] <= m["rmse"] <= m["max_abs"]
        assert m["max_abs"] <= m["rmse"] * np.sqrt(n)
        measured = RMSE_AT[(r["codec"], r["target_ratio"])]
        assert measured / 1.5 <= m["rmse"] <= 1.5 * measured, (r["codec"], m["rmse"])
        assert r["encode_mbs"] > 0 and r["decode_mbs"] > 0
    by = {(r["codec"], r["target_ratio"]): r["metrics"]["rmse"] for r in res["runs"]}
    assert by[("sperr", 20.0)] < by[("sperr", 60.0)]
    json.dumps(res, allow_nan=False)  # JSON-ready, no NaN/inf


def test_topoae_codec_is_one_more_entry(region, codecs):
    pytest.importorskip("torch")
    pytest.importorskip("topoae.codec")
    cfg = EvaluateConfig(ratios=(30.0,), compare=("sperr", "dct"), quantize="none", timing_s=0.0)
    res = evaluate(region, model=PoolModel(), config=cfg)
    own = [r for r in res["runs"] if r["codec"] == "topoae"]
    assert len(own) == 1 and own[0]["target_ratio"] is None
    r_model = round(own[0]["ratio"], 2)
    assert r_model in res["ratios"] and 30.0 in res["ratios"]
    # every baseline also ran at the model's own ratio
    assert {r["codec"] for r in res["runs"] if r["target_ratio"] == r_model} == {"sperr", "dct"}
    assert POOL_MODEL_RMSE / 1.5 <= own[0]["metrics"]["rmse"] <= 1.5 * POOL_MODEL_RMSE
    assert res["model_id"] and own[0]["info"]["patches"] > 0


def test_ratio_next_to_topoaes_own_gives_one_table(region, codecs):
    pytest.importorskip("torch")
    pytest.importorskip("topoae.codec")
    from topoae.report import render_markdown

    base = EvaluateConfig(ratios=(30.0,), compare=("dct",), quantize="none", timing_s=0.0)
    mine = round(
        next(
            r
            for r in evaluate(region, model=PoolModel(), config=base)["runs"]
            if r["codec"] == "topoae"
        )["ratio"],
        2,
    )
    near = round(mine * 1.005, 2)  # what a user types after reading the model card
    res = evaluate(
        region,
        model=PoolModel(),
        config=base.__class__(ratios=(near, 30.0), compare=("dct",), quantize="none", timing_s=0.0),
    )
    assert near not in res["ratios"] and mine in res["ratios"] and 30.0 in res["ratios"]
    md = render_markdown(res)
    assert md.count("## At ") == 2 and f"## At {mine:g}x" in md


def test_report_files_parse_and_are_atomic(region, tmp_path, codecs):
    out = tmp_path / "REPORT"
    cfg = EvaluateConfig(
        ratios=(25.0,), compare=("sz3", "lerc", "dct"), max_error=5.0, timing_s=0.0
    )
    res = run_evaluation(region, out, config=cfg)
    data = json.loads((out / "results.json").read_text())
    assert data["config"]["ratios"] == [25.0]
    assert [r["codec"] for r in data["runs"]] == ["sz3", "lerc", "dct"]
    bounded = {b["codec"]: b for b in data["bounded"]}
    assert set(bounded) == {"sz3", "lerc"}  # dct has no error bound
    for b in bounded.values():
        assert b["max_abs"] <= 5.0 * (1 + 1e-6)
    md = (out / "report.md").read_text()
    assert "## At 25x" in md and "| sz3 |" in md and "every cell within 5 m" in md
    for rel in res["figures"]:
        assert (out / rel).read_bytes()[:8] == PNG
    assert {
        "rate_distortion.png",
        "histogram_25x.png",
        "maps/dct_at_25x.png",
        "worst/dct_at_25x.png",
    } <= set(res["figures"])
    with pytest.raises(OutputExistsError):
        run_evaluation(region, out, config=cfg)
    # a failure half-way leaves nothing behind
    bad = tmp_path / "BAD"

    def boom(grid, ratio):
        raise RuntimeError("codec crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        run_evaluation(
            region,
            bad,
            config=EvaluateConfig(ratios=(25.0,), compare=("dct",)),
            contenders={"broken": boom},
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["REPORT"]


def test_pca_fit_grid_excludes_tohoku(tmp_path):
    from topoae.io.synthetic import write_synthetic_gebco

    # 0.05 deg cells from 134 E, 30 N; 96-cell windows every 24 cells: 5 x 13 = 65 windows.
    # All reach 34 N; only window columns 0, 11, 12 stay clear of 139-147 E: 15 windows.
    path = write_synthetic_gebco(
        tmp_path / "fit.nc", 192, 384, seed=2, resolution_deg=0.05, lon0=134.0, lat0=30.0
    )
    pca = pca_basis(EvaluateConfig(pca_fit=str(path)), 96)
    assert "(15 patches)" in pca.fitted_on and "Tohoku" in pca.fitted_on
    away = write_synthetic_gebco(
        tmp_path / "away.nc", 192, 384, seed=2, resolution_deg=0.05, lon0=60.0, lat0=30.0
    )
    assert "(65 patches)" in pca_basis(EvaluateConfig(pca_fit=str(away)), 96).fitted_on
    z = np.asarray(pca.decode(pca.encode(np.zeros((96, 96), np.float32) + 5, k=3, bits=32)))
    assert np.allclose(z, 5.0, atol=1e-3)


def test_config_validation():
    with pytest.raises(ConfigError):
        EvaluateConfig(ratios=(0.0,))
    with pytest.raises(ConfigError):
        EvaluateConfig(compare=("gzip",))
    with pytest.raises(ConfigError):
        baseline_contender(__import__("topoae.baselines", fromlist=["x"]).get_baseline("dct"))(
            np.zeros((4, 4)), None
        )


def test_cli_region_form(tmp_path, gebco_nc, codecs):
    from click.testing import CliRunner

    from topoae.cli.main import cli

    out = tmp_path / "R"
    args = [
        "evaluate",
        str(gebco_nc),
        "--compare",
        "sz3,dct",
        "--ratios",
        "30",
        "--no-figures",
        "--no-model",
        "--bbox",
        "-29.9,-39.9,-29.5,-39.5",
        "--out",
        str(out),
    ]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    data = json.loads((out / "results.json").read_text())
    assert [x["codec"] for x in data["runs"]] == ["sz3", "dct"]
    assert data["region"]["shape"][0] < 300  # the bbox was applied
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1 and "exists" in r.output
    r = CliRunner().invoke(
        cli, ["evaluate", str(gebco_nc), "--ratios", "x", "--out", str(tmp_path / "S")]
    )
    assert r.exit_code == 1 and "Error: --ratios" in r.output
    r = CliRunner().invoke(
        cli, ["evaluate", str(gebco_nc), "--compare", "gzip", "--out", str(tmp_path / "S")]
    )
    assert r.exit_code == 1 and "unknown baseline" in r.output
    assert not (tmp_path / "S").exists()


def test_cli_patch_store_form(tmp_path):
    pytest.importorskip("torch")
    from click.testing import CliRunner

    from topoae.checkpoint import save_checkpoint
    from topoae.cli.main import cli
    from topoae.data.tiling import TileConfig, tile
    from topoae.io.synthetic import synthetic_grid
    from topoae.models import build_model
    from topoae.training import preset

    store = tmp_path / "p.zarr"
    tile(
        [synthetic_grid(128, 128, seed=4)],
        store,
        TileConfig(patch=32, stride=32, block=1, split=(0.5, 0.25, 0.25)),
    )
    small = {
        "patch_size": 32,
        "latent_dim": 8,
        "enc_filters": (4, 4, 4, 4),
        "dec_filters": (4, 4, 4),
        "hidden_dim": 8,
    }
    cfg = preset("vae", "default", model=small)
    ckpt = save_checkpoint(
        tmp_path / "m.pt",
        build_model(cfg.model),
        cfg,
        normalise={"mode": "global", "zmin": -10880.587890625, "zrange": 19493.744140625},
    )
    out = tmp_path / "S"
    r = CliRunner().invoke(
        cli, ["evaluate", str(store), "--model", str(ckpt), "--split", "all", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert "total_l2" in r.output and "rmse_m" in r.output
    data = json.loads((out / "results.json").read_text())
    assert data["n_patches"] == 16 and data["total_l2"] > 0
    r = CliRunner().invoke(
        cli, ["evaluate", str(store), "--no-model", "--out", str(tmp_path / "T")]
    )
    assert r.exit_code == 1 and "--model" in r.output


def test_cli_units_ft_evaluates_the_region_in_metres(tmp_path, feet_nc, monkeypatch):
    from click.testing import CliRunner

    import topoae.report
    from topoae.cli.main import cli
    from topoae.io import open_grid

    seen = {}

    def fake_run(grid, out, **kw):
        seen["grid"] = grid
        return {"figures": []}

    monkeypatch.setattr(topoae.report, "run_evaluation", fake_run)
    args = ["evaluate", str(feet_nc), "--no-model", "--out", str(tmp_path / "rep"), "--units", "ft"]
    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    metres = open_grid(feet_nc, units="ft").values
    np.testing.assert_allclose(seen["grid"].values, metres)
    assert float(np.abs(metres).max()) > 100.0  # a real conversion, not an all-zero grid
