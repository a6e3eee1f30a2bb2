"""Leak-free train/val/test splits by spatial blocks.

Shuffling overlapping patches into splits leaks: a test patch would share
cells with a training patch. Instead the grid is cut into square blocks of
``block`` cells, whole blocks are assigned to splits at random (seeded), and a
patch takes the split of the block(s) it lies in. A patch that straddles blocks
of different splits (possible only when stride < patch or the block is not a
multiple of the stride) is labelled ``GUARD`` and not stored, so no two stored
patches of different splits share a cell.
"""

from __future__ import annotations

import numpy as np

from topoae.errors import ConfigError

TRAIN, VAL, TEST, GUARD = 0, 1, 2, -1
NAMES = {"train": TRAIN, "val": VAL, "test": TEST}


def parse_fractions(text: str | tuple[float, ...]) -> tuple[float, float, float]:
    """Parse ``"0.9,0.05,0.05"`` into three fractions summing to one."""
    try:
        vals = [float(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        raise ConfigError(f"split {text!r} must be three numbers train,val,test") from None
    if len(vals) != 3 or any(v < 0 for v in vals) or not np.isclose(sum(vals), 1.0, atol=1e-6):
        raise ConfigError(f"split {text!r} must be three non-negative fractions summing to 1")
    return vals[0], vals[1], vals[2]


def assign_blocks(n_blocks: int, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """Split label (0/1/2) of each of ``n_blocks`` blocks, in a seeded random order.

    Every split with a non-zero fraction gets at least one block when there are
    enough blocks; the rest follow the fractions (rounded).
    """
    f = np.asarray(fractions, dtype=float)
    counts = np.floor(f * n_blocks + 0.5).astype(int)
    for k in (1, 2):  # val/test get a block if asked for and there are enough blocks
        if f[k] > 0 and counts[k] == 0 and n_blocks >= np.count_nonzero(f):
            counts[k] = 1
    counts[0] = n_blocks - counts[1] - counts[2]
    while counts[0] < 0:  # rounding gave val+test more blocks than exist
        k = 1 if counts[1] >= counts[2] else 2
        counts[k] -= 1
        counts[0] += 1
    labels = np.repeat(np.arange(3, dtype=np.int8), counts)[:n_blocks]
    order = np.random.default_rng(seed).permutation(n_blocks)
    out = np.empty(n_blocks, dtype=np.int8)
    out[order] = labels
    return out


def patch_labels(
    row0: np.ndarray,
    col0: np.ndarray,
    patch: int,
    block: int,
    block_labels: np.ndarray,
    blocks_per_row: int,
) -> np.ndarray:
    """Split label of each patch (``GUARD`` where its blocks disagree).

    ``row0``/``col0`` are the patches' first cells; ``block_labels`` is indexed by
    ``block_row * blocks_per_row + block_col``. Requires ``block >= patch`` so a
    patch touches at most 2×2 blocks.
    """
    if block < patch:
        raise ConfigError(f"split block ({block} cells) must be at least the patch size ({patch})")
    r_a, r_b = row0 // block, (row0 + patch - 1) // block
    c_a, c_b = col0 // block, (col0 + patch - 1) // block
    corners = [block_labels[r * blocks_per_row + c] for r in (r_a, r_b) for c in (c_a, c_b)]
    same = np.all([corners[0] == c for c in corners[1:]], axis=0)
    return np.where(same, corners[0], GUARD).astype(np.int8)
