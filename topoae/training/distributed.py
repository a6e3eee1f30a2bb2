"""Multi-process training with ``torchrun`` + DistributedDataParallel.

``torchrun --nproc_per_node=N -m topoae.cli.main train ...`` sets ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`setup` then joins the process group
(NCCL on CUDA, gloo on CPU). Every rank trains on its shard of each epoch's
batches; gradients are averaged by DDP; only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Rank and size of the process group (``rank=0, world=1`` when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def main(self) -> bool:
        """Whether this process writes outputs (rank 0)."""
        return self.rank == 0


def setup(device_type: str) -> DistInfo:
    """Join the process group described by the torchrun environment, if any.

    Reuses a group that is already initialised; returns a single-process
    :class:`DistInfo` when ``WORLD_SIZE`` is unset or 1.
    """
    if dist.is_available() and dist.is_initialized():
        return DistInfo(
            dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))
        )
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)  # NCCL collectives use the current device
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return DistInfo(
        dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), True
    )


def teardown(info: DistInfo, *, wait: bool = True) -> None:
    """Leave the process group if :func:`setup` created it; with ``wait`` (a run that ended
    normally) once every rank is done: a rank that left while another still had gloo work in
    flight aborted at exit ("terminate called without an active exception", 2 of ~10 test
    runs). A failing rank does not wait for ranks that may never come."""
    if info.owns_group and dist.is_initialized():
        if wait and info.world > 1:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce(t: torch.Tensor, info: DistInfo, op: Any = None) -> torch.Tensor:
    """In-place all-reduce (sum by default) when distributed; returns ``t``."""
    if info.world > 1:
        dist.all_reduce(t, op=op or dist.ReduceOp.SUM)
    return t


def broadcast_int(value: int, info: DistInfo, device: torch.device) -> int:
    """Rank 0's ``value`` on every rank."""
    if info.world == 1:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(t, src=0)
    return int(t.item())


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
    if info.world == 1:
        return [obj]
    out: list[Any] = [None] * info.world
    dist.all_gather_object(out, obj)
    return out
