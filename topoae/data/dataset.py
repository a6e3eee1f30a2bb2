"""A torch ``Dataset`` over a patch store, with on-the-fly square symmetries.

Safe with ``num_workers > 0``: the Zarr store is opened lazily in each worker
process (never pickled open), and each process caches the last chunk it
decoded. :class:`ChunkSampler` orders indices chunk by chunk (chunks shuffled,
patches shuffled inside a chunk), so every chunk is read once per epoch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from topoae.data import splits as _splits
from topoae.data.normalise import Normalisation
from topoae.data.tiling import open_store
from topoae.errors import ConfigError

AUGMENT_MODES = ("random", "all", "none")


def symmetry(x: np.ndarray, k: int) -> np.ndarray:
    """The ``k``-th (0–7) of the 8 symmetries of the square applied to the last two axes.

    0–3 rotate by k·90°, 4–7 transpose then rotate; 0 is the identity.
    """
    if k >= 4:
        x = np.swapaxes(x, -1, -2)
    return np.rot90(x, k % 4, axes=(-2, -1))


class PatchDataset(Dataset):
    """Patches of one split of a store as dicts ``x`` (1, P, P), ``offset``, ``scale``, ``index``.

    Parameters
    ----------
    path
        A store written by :func:`topoae.data.tiling.tile`.
    split
        ``"train"``, ``"val"``, ``"test"`` or ``None`` (all patches).
    augment
        ``"random"``: one of the 8 symmetries per access, drawn from (seed, epoch, index);
        ``"all"``: the dataset is 8× longer and item ``8*i + k`` is symmetry ``k`` of patch ``i``;
        ``"none"``: patches as stored.
    include_nan
        Keep patches flagged as containing NaN (off by default: models cannot train on NaN).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        split: str | None = "train",
        augment: str = "random",
        seed: int = 0,
        include_nan: bool = False,
    ):
        if augment not in AUGMENT_MODES:
            raise ConfigError(f"augment must be one of {', '.join(AUGMENT_MODES)}")
        if split is not None and split not in _splits.NAMES:
            raise ConfigError(f"split must be one of {', '.join(_splits.NAMES)} or None")
        group, attrs = open_store(path)
        self.path = str(path)
        self.attrs = attrs
        self.normalise = Normalisation.from_dict(attrs["normalise"])
        self.patch_size = int(attrs["patch"])
        sel = np.ones(group["split"].shape[0], dtype=bool)
        if split is not None:
            sel &= group["split"][:] == _splits.NAMES[split]
        if not include_nan:
            sel &= ~group["has_nan"][:]
        self.indices = np.flatnonzero(sel)
        self.offset = group["offset"][:][self.indices]
        self.scale = group["scale"][:][self.indices]
        self.chunk = int(group["patches"].chunks[0])
        self.augment, self.seed, self.epoch = augment, int(seed), 0
        self._array: Any = None  # the store's zarr array, opened once per process
        self._pid: int | None = None
        self._cache: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.indices) * (8 if self.augment == "all" else 1)

    def set_epoch(self, epoch: int) -> None:
        """Reseed the random symmetries (call once per epoch, before iterating)."""
        self.epoch = int(epoch)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_array=None, _pid=None, _cache=None)  # never pickle an open store
        return state

    def _patches(self):
        if self._array is None or self._pid != os.getpid():
            import zarr

            self._array = zarr.open_group(self.path, mode="r")["patches"]
            self._pid, self._cache = os.getpid(), None
        return self._array

    def read(self, position: int) -> np.ndarray:
        """Stored patch at ``position`` of this split (reads and caches its whole chunk)."""
        idx = int(self.indices[position])
        cid = idx // self.chunk
        if self._cache is None or self._cache[0] != cid:
            arr = self._patches()
            self._cache = (cid, np.asarray(arr[cid * self.chunk : (cid + 1) * self.chunk]))
        return self._cache[1][idx - cid * self.chunk]

    def symmetry_of(self, item: int) -> tuple[int, int]:
        """``(position, k)``: which patch and which symmetry dataset item ``item`` is."""
        if self.augment == "all":
            return divmod(item, 8)
        if self.augment == "none":
            return item, 0
        k = int(np.random.default_rng((self.seed, self.epoch, item)).integers(8))
        return item, k

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        if not 0 <= item < len(self):
            raise IndexError(item)
        pos, k = self.symmetry_of(item)
        x = symmetry(self.read(pos), k).astype(np.float32, copy=True)
        return {
            "x": torch.from_numpy(x[None]),
            "offset": torch.tensor(self.offset[pos], dtype=torch.float64),
            "scale": torch.tensor(self.scale[pos], dtype=torch.float64),
            "index": torch.tensor(int(self.indices[pos])),
        }


class ChunkSampler(Sampler[int]):
    """Dataset items grouped by store chunk: chunks in random order, items shuffled within.

    Deterministic for ``(seed, epoch)``; call :meth:`set_epoch` each epoch.
    """

    def __init__(self, dataset: PatchDataset, *, shuffle: bool = True, seed: int = 0):
        self.dataset, self.shuffle, self.seed, self.epoch = dataset, shuffle, int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[int]:
        ds = self.dataset
        items = np.arange(len(ds))
        per = 8 if ds.augment == "all" else 1
        chunk_of = ds.indices[items // per] // ds.chunk
        if not self.shuffle:
            yield from items[np.argsort(chunk_of, kind="stable")].tolist()
            return
        rng = np.random.default_rng((self.seed, self.epoch))
        chunks = np.unique(chunk_of)
        for cid in rng.permutation(chunks):
            members = items[chunk_of == cid]
            yield from rng.permutation(members).tolist()
