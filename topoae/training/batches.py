"""How batches are drawn: device choice, per-epoch seeds, item order, DDP shards, loaders.

Everything here is a pure function of ``(seed, epoch, rank)`` so that a run
and its resumed continuation draw exactly the same batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from topoae.errors import ConfigError
from topoae.training import distributed as ddp


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` picks CUDA when available, as everywhere (:func:`topoae.codec.patch_model.torch_device`);
    ``cuda`` without a GPU is a :class:`ConfigError`; a CUDA device is this rank's GPU."""
    from topoae.codec.patch_model import torch_device

    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, not {device!r}")
    dev = torch_device(device)
    return torch.device("cuda", local_rank) if dev.type == "cuda" else dev


def dataset_len(ds: Dataset) -> int:
    """``len(ds)``: the map-style datasets trained on are sized, though torch's ``Dataset``
    does not declare ``__len__``."""
    return len(ds)  # type: ignore[arg-type]


def derive_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def epoch_order(ds: Dataset, seed: int, epoch: int) -> list[int]:
    """Item order of one epoch, identical on every rank: chunk-grouped for a patch store."""
    from topoae.data.dataset import ChunkSampler, PatchDataset

    if isinstance(ds, PatchDataset):
        sampler = ChunkSampler(ds, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)
    g = torch.Generator().manual_seed(derive_seed(seed, epoch, 7))
    return torch.randperm(dataset_len(ds), generator=g).tolist()


def shard(items: list[int], info: ddp.DistInfo, *, pad: bool) -> list[int]:
    if info.world == 1:
        return items
    if pad and len(items) % info.world:
        items = items + items[: info.world - len(items) % info.world]
    return items[info.rank :: info.world]


def make_loader(
    ds: Dataset, batches: Sequence[list[int]], workers: int, device: torch.device, seed: int
) -> DataLoader:
    # An own generator keeps the DataLoader from drawing on the global RNG (resume equality).
    return DataLoader(
        ds,
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
    )
