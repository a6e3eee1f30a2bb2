"""Checkpoints: round trip, model id, the model config on its own, and rejection of corrupted,
tampered and foreign files."""

from __future__ import annotations

import hashlib

import pytest
import torch

from topoae.checkpoint import (
    LoadedModel,
    content_digest,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from topoae.errors import CheckpointError
from topoae.models import HyperpriorConfig, HyperpriorModel, ModelConfig, PatchModel, build_model
from topoae.training import TrainConfig, preset

NORM = {"mode": "global", "zmin": -10880.587890625, "zrange": 19493.744140625}


@pytest.fixture
def saved(tmp_path):
    cfg = preset(
        "vae",
        "default",
        model={
            "latent_dim": 12,
            "enc_filters": (8, 8, 8, 16),
            "dec_filters": (8, 8, 8),
            "hidden_dim": 16,
            "patch_size": 32,
        },
    )
    torch.manual_seed(0)
    model = build_model(cfg.model)
    model(torch.rand(4, 1, 32, 32))  # move BatchNorm statistics away from their initial values
    path = save_checkpoint(
        tmp_path / "m.pt",
        model,
        cfg,
        normalise=NORM,
        feature_net="terrain:abc",
        extra={"epoch": 3, "val_rmse_m": 12.5},
    )
    return path, model.eval(), cfg


def test_round_trip(saved):
    path, model, cfg = saved
    loaded = load_checkpoint(path)
    assert isinstance(loaded, LoadedModel)
    assert loaded.config == cfg.model and loaded.model_config == cfg.model
    assert TrainConfig.from_dict(loaded.train_config) == cfg  # the trainer rebuilds its own
    assert isinstance(loaded.model, PatchModel)
    assert loaded.normalise == NORM and loaded.feature_net == "terrain:abc"
    assert loaded.extra == {"epoch": 3, "val_rmse_m": 12.5}
    assert loaded.model_id == hashlib.sha256(path.read_bytes()).hexdigest()
    assert not loaded.model.training
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x)["x_hat"], model(x)["x_hat"])
    assert [p.name for p in path.parent.iterdir()] == ["m.pt"]  # no temporary left behind


def test_tampered_weights_are_detected(saved, tmp_path):
    path, _, _ = saved
    payload = torch.load(path, weights_only=True)
    key = next(iter(payload["model"]))
    payload["model"][key] = payload["model"][key] + 1e-3
    torch.save(payload, tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match="digest"):
        load_checkpoint(tmp_path / "t.pt")


def test_tampered_config_is_detected(saved, tmp_path):
    path, _, _ = saved
    payload = torch.load(path, weights_only=True)
    payload["normalise"]["mode"] = "patch"
    torch.save(payload, tmp_path / "t.pt")
    with pytest.raises(CheckpointError, match="modified"):
        load_checkpoint(tmp_path / "t.pt")


def test_truncated_and_garbage_files(saved, tmp_path):
    path, _, _ = saved
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all" * 10)
    (tmp_path / "flip.pt").write_bytes(data[:-100] + bytes(100))
    for name in ("cut.pt", "junk.pt", "flip.pt"):
        with pytest.raises(CheckpointError):
            load_checkpoint(tmp_path / name)


def test_foreign_files(tmp_path):
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a topoae checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "absent.pt")


class _Payload:
    """An arbitrary object: unpickling it would run code, so weights_only refuses it."""

    def __reduce__(self):
        return (print, ("this must never run",))


class _Custom:
    """A plain custom class: loading it would import and build arbitrary objects."""

    def __init__(self) -> None:
        self.weights = [1.0, 2.0]


def test_pickled_code_is_refused(tmp_path, capsys):
    torch.save({"format": "topoae-checkpoint", "evil": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not a topoae checkpoint.*other than tensors"):
        read_checkpoint(tmp_path / "evil.pt")
    assert "must never run" not in capsys.readouterr().out


@pytest.mark.parametrize("obj", [_Custom(), _Payload()], ids=["custom-class", "reduce"])
def test_refusal_never_suggests_unsafe_loading(tmp_path, obj):
    torch.save({"format": "topoae-checkpoint", "model": obj}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "c.pt")
    msg = str(info.value)
    assert "not a topoae checkpoint" in msg and "other than tensors" in msg
    assert "weights_only" not in msg and "will likely succeed" not in msg
    assert "safe_globals" not in msg and "\n" not in msg
    if isinstance(obj, _Custom):
        assert "_Custom" in msg  # names what it refused


def test_weights_that_do_not_fit_the_config(saved, tmp_path):
    path, model, cfg = saved
    other = cfg.replace(model={"latent_dim": 13})
    save_checkpoint(tmp_path / "x.pt", model, other, normalise=NORM)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "x.pt")


def test_a_bare_model_config_is_enough(saved, tmp_path):
    _, model, cfg = saved
    path = save_checkpoint(tmp_path / "bare.pt", model, cfg.model, normalise=NORM)
    loaded = load_checkpoint(path)
    assert loaded.config == cfg.model and loaded.train_config == {"model": cfg.model.to_dict()}
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model.decode(loaded.model.encode(x)[0]), model(x)["x_hat"])


def test_hyperprior_round_trip(tmp_path):
    cfg = HyperpriorConfig(channels=8, latent_channels=8, hyper_channels=8, lambdas=(1.0, 4.0))
    torch.manual_seed(0)
    net = build_model(cfg)
    assert isinstance(net, HyperpriorModel) and not isinstance(net, PatchModel)
    path = save_checkpoint(tmp_path / "h.pt", net, cfg, normalise={"mode": "offset-field"})
    loaded = load_checkpoint(path)
    assert isinstance(loaded.model, HyperpriorModel) and loaded.config == cfg
    assert loaded.feature_net is None and loaded.normalise == {"mode": "offset-field"}
    for (k, a), b in zip(net.state_dict().items(), loaded.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_a_config_without_a_model_config_is_not_saved(saved, tmp_path):
    _, model, _ = saved
    for bad in ({"lr": 1e-3}, {"model": {"kind": "transformer"}}, {"model": None}, 3):
        with pytest.raises(CheckpointError, match="model config"):
            save_checkpoint(tmp_path / "bad.pt", model, bad, normalise=NORM)
    assert not (tmp_path / "bad.pt").exists()


def test_an_invalid_model_config_is_refused_on_loading(saved, tmp_path):
    path, _, _ = saved
    payload = torch.load(path, weights_only=True)
    for i, model_cfg in enumerate(({"kind": "transformer"}, {"kind": "vae", "depth": 3}, None)):
        bad = dict(payload, config=dict(payload["config"], model=model_cfg))
        bad["digest"] = content_digest(bad)
        torch.save(bad, tmp_path / f"bad{i}.pt")
        with pytest.raises(CheckpointError, match="invalid configuration"):
            load_checkpoint(tmp_path / f"bad{i}.pt")


def test_the_model_config_does_not_need_the_training_config(saved, tmp_path):
    """Loading reads ``config["model"]`` only: training fields it does not know are kept, unread."""
    path, model, cfg = saved
    payload = torch.load(path, weights_only=True)
    future = dict(payload, config=dict(payload["config"], optimiser="lion", lr=None))
    future["digest"] = content_digest(future)
    torch.save(future, tmp_path / "f.pt")
    loaded = load_checkpoint(tmp_path / "f.pt")
    assert loaded.config == cfg.model and loaded.train_config["optimiser"] == "lion"
    assert ModelConfig.from_dict(loaded.train_config["model"]) == cfg.model
