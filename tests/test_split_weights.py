"""benchmarks/split_weights.py: a GPU run's weights come back in parts and join exactly."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from topoae.checkpoint import read_checkpoint, save_checkpoint
from topoae.models.hyperprior import HyperpriorConfig, HyperpriorModel
from topoae.training.rd import RDTrainConfig

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "split_weights.py"


def _module():
    spec = importlib.util.spec_from_file_location("split_weights", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_parts_stay_under_the_limit_and_join_bit_for_bit(tmp_path):
    mod = _module()
    cfg = RDTrainConfig(model=HyperpriorConfig(channels=16, latent_channels=24, hyper_channels=16,
                                               context="checkerboard", context_channels=8))
    torch.manual_seed(1)
    net = HyperpriorModel(cfg.model)
    ckpt = tmp_path / "last.pt"
    save_checkpoint(ckpt, net, cfg, normalise={"mode": "offset-field"}, state={"step": 7})
    limit_mib = 0.05
    paths = mod.split(ckpt, tmp_path / "out", limit_mib)
    assert len(paths) > 1
    for p in paths:
        part = torch.load(p, weights_only=True)
        assert sum(v.numel() * v.element_size() for v in part.values()) <= limit_mib * 2**20
    with pytest.raises(SystemExit, match="max-parts"):
        mod.split(ckpt, tmp_path / "few", limit_mib, max_parts=len(paths) - 1)
    assert not (tmp_path / "few").exists()
    mod.join(tmp_path / "out", tmp_path / "joined.pt")
    a, _ = read_checkpoint(ckpt)
    b, _ = read_checkpoint(tmp_path / "joined.pt")
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert b["config"]["model"] == a["config"]["model"] and b["extra"]["step"] == 7
