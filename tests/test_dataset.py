"""The torch Dataset over a patch store: symmetries, splits, chunk-wise sampling, workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from topoae.data.dataset import ChunkSampler, PatchDataset, symmetry
from topoae.data.tiling import TileConfig, open_store, tile
from topoae.io import open_grid


@pytest.fixture(scope="module")
def store(tmp_path_factory, gebco_nc):
    path = tmp_path_factory.mktemp("ds") / "p.zarr"
    tile(
        [open_grid(gebco_nc)],
        path,
        TileConfig(stride=32, chunk=7, block=1, split=(0.6, 0.2, 0.2), seed=1),
    )
    return path


def test_eight_distinct_symmetries():
    x = np.arange(16.0).reshape(4, 4)
    outs = [symmetry(x, k) for k in range(8)]
    assert len({o.tobytes() for o in outs}) == 8
    np.testing.assert_array_equal(outs[0], x)
    for o in outs:  # every symmetry is a permutation of the cells
        np.testing.assert_array_equal(np.sort(o.ravel()), x.ravel())


def test_items_match_store(store):
    g, _ = open_store(store)
    ds = PatchDataset(store, split="val", augment="none")
    assert len(ds) == int(np.sum(g["split"][:] == 1)) > 0
    item = ds[3]
    assert item["x"].shape == (1, 96, 96) and item["x"].dtype == torch.float32
    idx = int(item["index"])
    assert g["split"][idx] == 1
    np.testing.assert_array_equal(item["x"][0].numpy(), g["patches"][idx])
    assert float(item["scale"]) == g["scale"][idx]


def test_splits_partition_the_store(store):
    g, _ = open_store(store)
    seen = np.concatenate(
        [PatchDataset(store, split=s, augment="none").indices for s in ("train", "val", "test")]
    )
    assert sorted(seen.tolist()) == list(range(g["patches"].shape[0]))


def test_augment_all_and_random(store):
    base = PatchDataset(store, split="train", augment="none")
    full = PatchDataset(store, split="train", augment="all")
    assert len(full) == 8 * len(base)
    x = base[2]["x"][0].numpy()
    for k in range(8):
        np.testing.assert_array_equal(full[16 + k]["x"][0].numpy(), symmetry(x, k))
    rnd = PatchDataset(store, split="train", augment="random", seed=4)
    first = [rnd[i]["x"] for i in range(20)]
    again = [rnd[i]["x"] for i in range(20)]
    assert all(
        torch.equal(a, b) for a, b in zip(first, again, strict=True)
    )  # deterministic per epoch
    rnd.set_epoch(1)
    assert any(not torch.equal(a, rnd[i]["x"]) for i, a in enumerate(first))  # reseeded by epoch


def test_chunk_sampler_reads_chunks_contiguously(store):
    ds = PatchDataset(store, split="train", augment="random")
    sampler = ChunkSampler(ds, seed=2)
    order = list(sampler)
    assert sorted(order) == list(range(len(ds)))
    chunks = [int(ds.indices[i]) // ds.chunk for i in order]
    changes = sum(a != b for a, b in zip(chunks, chunks[1:], strict=False))
    assert changes == len(set(chunks)) - 1  # each chunk visited in one run
    assert order == list(ChunkSampler(ds, seed=2))
    sampler.set_epoch(1)
    assert order != list(sampler)


def test_dataloader_with_workers_matches_single_process(store):
    ds = PatchDataset(store, split="train", augment="random", seed=3)

    def collect(workers):
        dl = DataLoader(ds, batch_size=8, sampler=ChunkSampler(ds, seed=0), num_workers=workers)
        return torch.cat([b["index"] for b in dl]), torch.cat([b["x"] for b in dl])

    i0, x0 = collect(0)
    i2, x2 = collect(2)
    assert torch.equal(i0, i2) and torch.equal(x0, x2)
