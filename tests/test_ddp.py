"""DistributedDataParallel on CPU: two gloo processes, as torchrun would start them."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, store: str, out: str, report: str) -> None:
    import hashlib
    import os

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    from _training_helpers import tiny

    from topoae.checkpoint import unwrap
    from topoae.training import train
    from topoae.training import trainer as trainer_module

    saves: list[str] = []
    original_save = trainer_module.save_checkpoint

    def counting_save(path, *args, **kwargs):
        saves.append(str(path))
        return original_save(path, *args, **kwargs)

    trainer_module.save_checkpoint = counting_save
    captured = {}
    original_run = trainer_module.Trainer.run

    def run(self):
        result = original_run(self)
        captured["model"] = unwrap(self.model)
        return result

    trainer_module.Trainer.run = run
    result = train(store, out, tiny("vae", epochs=2, batch_size=8), device="cpu")
    h = hashlib.sha256()
    for v in captured["model"].parameters():  # BatchNorm running statistics stay per rank
        h.update(v.detach().contiguous().numpy().tobytes())
    Path(report, f"rank{rank}.json").write_text(
        json.dumps(
            {
                "saves": saves,
                "weights": h.hexdigest(),
                "epochs": result.epochs_done,
                "steps": result.steps,
            }
        )
    )


@pytest.mark.slow
def test_two_gloo_processes_train_in_step(tmp_path):
    from _training_helpers import make_store

    from topoae.checkpoint import load_checkpoint

    store = make_store(tmp_path / "p.zarr")
    out, report = tmp_path / "run", tmp_path / "report"
    report.mkdir()
    mp.spawn(
        _worker, args=(2, _free_port(), str(store), str(out), str(report)), nprocs=2, join=True
    )
    r0 = json.loads((report / "rank0.json").read_text())
    r1 = json.loads((report / "rank1.json").read_text())
    assert r0["weights"] == r1["weights"]  # DDP kept the replicas identical
    assert r0["epochs"] == r1["epochs"] == 2 and r0["steps"] == r1["steps"]
    assert r0["saves"] and not r1["saves"]  # only rank 0 writes
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt",
        "config.json",
        "last.pt",
        "metrics.csv",
    ]
    doc = json.loads((out / "config.json").read_text())
    assert doc["world_size"] == 2
    loaded = load_checkpoint(out / "last.pt")
    assert loaded.extra["epoch"] == 2


def test_batch_must_split_evenly(tmp_path, monkeypatch):
    from _training_helpers import tiny

    from topoae.data.normalise import Normalisation
    from topoae.errors import ConfigError
    from topoae.training import distributed, fit

    monkeypatch.setattr(distributed, "setup", lambda device_type: distributed.DistInfo(0, 3, 0))
    data = [
        {
            "x": torch.rand(1, 32, 32),
            "offset": torch.tensor(0.0, dtype=torch.float64),
            "scale": torch.tensor(1.0, dtype=torch.float64),
        }
    ] * 4
    with pytest.raises(ConfigError, match="divisible"):
        fit(
            tiny("vae", batch_size=8),
            data,
            None,
            tmp_path / "run",
            normalise=Normalisation(mode="patch"),
            device="cpu",
        )
