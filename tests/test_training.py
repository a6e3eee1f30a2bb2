"""The trainer: loss goes down, runs are reproducible, resume is bit-for-bit, outputs are safe."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from _training_helpers import make_store, same_weights, state_of, tiny
from click.testing import CliRunner

from topoae.checkpoint import load_checkpoint
from topoae.errors import CheckpointError, ConfigError, ModelMismatchError, OutputExistsError
from topoae.training import TrainConfig, evaluate_store, train


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("stores") / "patch.zarr")


@pytest.fixture(scope="module")
def global_store(tmp_path_factory):
    return make_store(tmp_path_factory.mktemp("stores") / "global.zarr", normalise="global")


def rows(run):
    with open(run / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_training_lowers_the_loss_and_writes_a_run(store, tmp_path):
    cfg = tiny("vae", epochs=4, lr=3e-3)
    result = train(store, tmp_path / "run", cfg, device="cpu")
    assert result.completed and result.epochs_done == 4
    table = rows(tmp_path / "run")
    assert [int(r["epoch"]) for r in table] == [1, 2, 3, 4]
    for col in (
        "train_loss",
        "train_recon",
        "train_kl",
        "train_grad",
        "val_loss",
        "val_rmse_m",
        "val_psnr_db",
    ):
        assert col in table[0]
    assert float(table[-1]["train_recon"]) < 0.85 * float(table[0]["train_recon"])
    assert float(table[-1]["val_rmse_m"]) < float(table[0]["val_rmse_m"])
    assert float(table[0]["kl_weight"]) == 0.0 and float(table[2]["kl_weight"]) > 0
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best.normalise["mode"] == "patch" and best.config == cfg.model
    assert TrainConfig.from_dict(best.train_config) == cfg
    assert best.extra["val_rmse_m"] == pytest.approx(
        min(float(r["val_rmse_m"]) for r in table), rel=1e-5
    )
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert doc["config"]["model"]["latent_dim"] == 8 and doc["train_patches"] > 0
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "best.pt",
        "config.json",
        "last.pt",
        "metrics.csv",
    ]


def test_same_seed_same_weights(store, tmp_path):
    cfg = tiny("vae", epochs=1)
    train(store, tmp_path / "a", cfg, device="cpu")
    train(store, tmp_path / "b", cfg, device="cpu")
    train(store, tmp_path / "c", cfg.replace(seed=1), device="cpu")
    a, b, c = (state_of(tmp_path / n / "last.pt") for n in "abc")
    assert same_weights(a, b)
    assert not same_weights(a, c)


def test_resume_after_epochs_is_bit_for_bit(store, tmp_path):
    cfg = tiny("vae", epochs=2)
    train(store, tmp_path / "full", cfg, device="cpu")
    train(store, tmp_path / "part", cfg, device="cpu", epochs=1)
    result = train(store, tmp_path / "part", None, resume=True, device="cpu", epochs=2)
    assert result.epochs_done == 2
    assert same_weights(
        state_of(tmp_path / "full" / "last.pt"), state_of(tmp_path / "part" / "last.pt")
    )
    full, part = rows(tmp_path / "full"), rows(tmp_path / "part")
    assert [r["val_rmse_m"] for r in full] == [r["val_rmse_m"] for r in part]


@pytest.mark.parametrize("kind", ["vae", pytest.param("vae-gan", marks=pytest.mark.slow)])
def test_resume_mid_epoch_is_bit_for_bit(store, tmp_path, kind):
    cfg = tiny(kind, epochs=2)
    train(store, tmp_path / "full", cfg, device="cpu")
    stopped = train(
        store, tmp_path / "part", cfg, device="cpu", max_minutes=1e-9
    )  # stops after one step
    assert not stopped.completed and stopped.epochs_done == 0 and stopped.steps == 1
    payload = torch.load(tmp_path / "part" / "last.pt", weights_only=True)
    assert payload["state"]["step_in_epoch"] == 1
    again = train(store, tmp_path / "part", None, resume=True, device="cpu", max_minutes=1e-9)
    assert again.steps == 2
    done = train(store, tmp_path / "part", None, resume=True, device="cpu")
    assert done.completed and done.epochs_done == 2
    assert same_weights(
        state_of(tmp_path / "full" / "last.pt"), state_of(tmp_path / "part" / "last.pt")
    )
    assert same_weights(
        state_of(tmp_path / "full" / "best.pt"), state_of(tmp_path / "part" / "best.pt")
    )


def test_run_folder_rules(store, tmp_path):
    cfg = tiny("ae", epochs=1)
    with pytest.raises(CheckpointError):
        train(store, tmp_path / "run", None, resume=True)
    train(store, tmp_path / "run", cfg, device="cpu")
    with pytest.raises(OutputExistsError):
        train(store, tmp_path / "run", cfg, device="cpu")
    with pytest.raises(ConfigError, match="differ"):
        train(store, tmp_path / "run", cfg.replace(lr=0.5), resume=True, device="cpu")
    train(store, tmp_path / "run", cfg.replace(seed=5), overwrite=True, device="cpu")
    assert load_checkpoint(tmp_path / "run" / "last.pt").train_config["seed"] == 5
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError):
        train(store, other, cfg, overwrite=True, device="cpu")
    assert (other / "notes.txt").exists()


def test_config_must_fit_the_store(store, global_store, tmp_path):
    # an explicit config of the other normalisation is refused (the CLI's default follows the store)
    with pytest.raises(ConfigError, match="global normalisation"):
        train(store, tmp_path / "a", tiny("vae", "thesis"), device="cpu")
    with pytest.raises(ConfigError, match="patch normalisation"):
        train(global_store, tmp_path / "b", tiny("vae"), device="cpu")
    with pytest.raises(ConfigError, match="32x32"):
        train(store, tmp_path / "c", tiny("vae", model={"patch_size": 64}), device="cpu")


def test_cli_tile_then_train_compose(gebco_nc, tmp_path):
    """`topoae tile X --out p.zarr` then `topoae train p.zarr --out run` works with both defaults."""
    from topoae.cli.main import cli

    runner = CliRunner()
    patches = tmp_path / "p.zarr"
    res = runner.invoke(cli, ["tile", str(gebco_nc), "--out", str(patches)])
    assert res.exit_code == 0, res.output
    quick = ["--epochs", "1", "--batch", "4", "--max-minutes", "2"]
    res = runner.invoke(cli, ["train", str(patches), "--out", str(tmp_path / "run"), *quick])
    assert res.exit_code == 0, res.output
    assert "config: thesis" in res.output
    loaded = load_checkpoint(tmp_path / "run" / "last.pt")
    assert loaded.train_config["preset"] == "thesis" and loaded.normalise["mode"] == "global"
    # an explicit --config that does not fit the store is still one error line, exit 1
    run = tmp_path / "mismatch"
    res = runner.invoke(cli, ["train", str(patches), "--out", str(run), "--config", "default"])
    assert res.exit_code == 1 and not run.exists()
    assert res.output.startswith("Error: the default config expects a store with patch")
    assert len(res.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_thesis_models_train(global_store, tmp_path):
    for kind in ("ae", "vae"):
        result = train(global_store, tmp_path / kind, tiny(kind, "thesis", epochs=1), device="cpu")
        assert result.completed and math.isfinite(result.best_val_rmse_m)


@pytest.mark.slow
def test_dfc_vae_records_its_feature_network(store, tmp_path):
    cfg = tiny("dfc-vae", epochs=1, loss={"feature_net": "vgg19-random"})
    train(store, tmp_path / "dfc", cfg, device="cpu")
    loaded = load_checkpoint(tmp_path / "dfc" / "best.pt")
    assert loaded.feature_net == "vgg19-random:seed0"
    assert "train_perceptual" in rows(tmp_path / "dfc")[0]


def test_vae_gan_trains_its_discriminator(store, tmp_path):
    train(store, tmp_path / "gan", tiny("vae-gan", epochs=1), device="cpu")
    row = rows(tmp_path / "gan")[0]
    assert float(row["train_d_loss"]) > 0 and "train_adv" in row


def test_evaluate_store(store, global_store, tmp_path):
    from topoae import metrics
    from topoae.data.dataset import PatchDataset
    from topoae.training.evaluate import reconstruct

    train(store, tmp_path / "run", tiny("vae", epochs=2), device="cpu")
    ckpt = tmp_path / "run" / "best.pt"
    res = evaluate_store(ckpt, store, split="test", out_png=tmp_path / "eval.png")
    assert (tmp_path / "eval.png").stat().st_size > 10_000
    ds = PatchDataset(store, split="test", augment="none")
    assert res["n_patches"] == len(ds) and res["n_cells"] == len(ds) * 32 * 32
    # recompute by hand from the same reconstructions
    model = load_checkpoint(ckpt).model
    x = torch.stack([ds[i]["x"] for i in range(len(ds))])
    rec = (
        reconstruct(model, x).double().numpy()[:, 0] * ds.scale[:, None, None]
        + ds.offset[:, None, None]
    )
    ref = x.double().numpy()[:, 0] * ds.scale[:, None, None] + ds.offset[:, None, None]
    assert res["rmse_m"] == pytest.approx(metrics.rmse(ref, rec), rel=1e-6)
    th = metrics.thesis_metrics(ref, rec, patch=32)
    assert res["total_l2"] == pytest.approx(th["total_l2"], rel=1e-6)
    assert res["max_patch_l2"] == pytest.approx(th["max_patch_l2"], rel=1e-6)
    assert res["total_l2_rmse_m"] == pytest.approx(res["rmse_m"], rel=1e-6)
    assert res["psnr_db"] == pytest.approx(metrics.psnr(ref, rec), rel=1e-6)
    d = [np.diff(rec, axis=a) - np.diff(ref, axis=a) for a in (1, 2)]
    slope = np.sqrt(sum(float((e**2).sum()) for e in d) / sum(e.size for e in d))
    assert res["slope_rmse_m"] == pytest.approx(slope, rel=1e-9)
    with pytest.raises(ModelMismatchError):
        evaluate_store(ckpt, global_store)
    with pytest.raises(OutputExistsError):
        evaluate_store(ckpt, store, out_png=tmp_path / "eval.png")


@pytest.fixture(scope="module")
def store96(tmp_path_factory):
    from topoae.data.tiling import TileConfig, tile
    from topoae.io.synthetic import synthetic_grid

    path = tmp_path_factory.mktemp("stores") / "p96.zarr"
    tile(
        [synthetic_grid(384, 480, seed=1)],
        path,
        TileConfig(patch=96, stride=96, split=(0.6, 0.2, 0.2), block=1, chunk=8, normalise="patch"),
    )
    return path


@pytest.mark.slow
def test_cli_train_stop_and_resume(store96, store, tmp_path):
    from topoae.cli.main import cli

    runner = CliRunner()
    run = tmp_path / "run"
    args = [
        "train",
        str(store96),
        "--out",
        str(run),
        "--epochs",
        "1",
        "--batch",
        "4",
        "--device",
        "cpu",
        "--latent-dim",
        "16",
        "--kl-max",
        "0.1",
        "--clip-norm",
        "0",
        "--quiet",
    ]
    res = runner.invoke(cli, [*args, "--max-minutes", "1e-9"])
    assert res.exit_code == 0, res.output
    assert "--resume" in res.output
    res = runner.invoke(cli, ["train", str(store96), "--out", str(run), "--resume", "--lr", "0.1"])
    assert res.exit_code == 1 and "cannot change --lr" in res.output
    res = runner.invoke(cli, ["train", str(store96), "--out", str(run), "--resume", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "best:" in res.output and (run / "best.pt").exists()
    cfg = TrainConfig.from_dict(load_checkpoint(run / "best.pt").train_config)
    assert cfg.model.latent_dim == 16 and cfg.loss.kl_max == 0.1
    assert cfg.clip_norm == 0 and cfg.clip == "none"
    res = runner.invoke(
        cli, ["train", str(store96), "--out", str(run), "--resume", "--clip-norm", "1"]
    )
    assert res.exit_code == 1 and "cannot change --clip-norm" in res.output
    res = runner.invoke(cli, args)
    assert res.exit_code == 1 and "exists" in res.output
    # a fresh run builds the model for the store's patch size; a resumed one keeps its own
    res = runner.invoke(cli, ["train", str(store), "--out", str(run), "--resume", "--device", "cpu"])
    assert res.exit_code == 1 and "32x32" in res.output
    res = runner.invoke(
        cli, ["train", str(store96), "--out", str(tmp_path / "y"), "--feature-net", "terrain"]
    )
    assert res.exit_code == 1 and "dfc-vae only" in res.output


@pytest.mark.gpu
def test_cuda_bf16_channels_last(store, tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    result = train(store, tmp_path / "gpu", tiny("vae", epochs=1), device="cuda")
    assert result.completed and math.isfinite(result.best_val_rmse_m)
    loaded = load_checkpoint(tmp_path / "gpu" / "best.pt")
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters())
