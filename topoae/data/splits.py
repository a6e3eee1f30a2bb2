"""Leak-free train/val/test splits: by spatial blocks, or by input file.

Shuffling overlapping patches into splits leaks: a test patch would share
cells with a training patch. Instead the grid is cut into square blocks of
``block`` cells, whole blocks are assigned to splits at random (seeded), and a
patch takes the split of the block(s) it lies in. A patch that straddles blocks
of different splits (possible only when stride < patch or the block is not a
multiple of the stride) is labelled ``GUARD`` and not stored, so no two stored
patches of different splits share a cell.

Or by input file (:func:`read_split_file`, ``topoae tile --split-by-file``): every patch of
an input goes to the split its file is listed in, and inputs whose footprints overlap must be
listed in the same split (:func:`check_overlaps`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

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


# -- Splits by input file --------------------------------------------------------------------
# Whole inputs (e.g. the 15″ GEBCO tiles of ``benchmarks/rd_split.json``) go to one split each,
# named by file stem. Inputs whose footprints overlap share cells, so they must share a split.


def file_assignment(pairs: Sequence[tuple[str, str]]) -> dict[str, int]:
    """``{stem: label}`` from ``(stem, split name)`` pairs; a stem in two splits is an error."""
    out: dict[str, int] = {}
    for name, split in pairs:
        if split not in NAMES:
            raise ConfigError(f"split {split!r} of {name!r} is not one of {', '.join(NAMES)}")
        if out.get(name, NAMES[split]) != NAMES[split]:
            other = next(k for k, v in NAMES.items() if v == out[name])
            raise ConfigError(f"{name} is listed in two splits ({other} and {split})")
        out[name] = NAMES[split]
    return out


def read_split_file(path: str | os.PathLike) -> tuple[tuple[str, str], ...]:
    """``(stem, split name)`` pairs of a split file, sorted by stem.

    The file is JSON mapping ``"train"``, ``"val"``, ``"test"`` to lists of input file stems
    (the format of ``benchmarks/rd_split.json``); other keys are ignored. A name listed in two
    splits is a :class:`ConfigError`.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"split file {p} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read split file {p}: {exc}") from None
    lists = {k: doc.get(k) for k in NAMES} if isinstance(doc, dict) else {}
    if not any(lists.values()) or not all(
        v is None or (isinstance(v, list) and all(isinstance(n, str) for n in v))
        for v in lists.values()
    ):
        raise ConfigError(
            f"split file {p} must map train/val/test to lists of file names (as rd_split.json)"
        )
    pairs = sorted(
        {(n, k) for k, names in lists.items() for n in names or ()},
        key=lambda p: (p[0], NAMES[p[1]]),
    )
    try:
        file_assignment(pairs)
    except ConfigError as exc:
        raise ConfigError(f"{exc} in {p}") from None
    return tuple(pairs)


def file_labels(stems: Sequence[str], pairs: Sequence[tuple[str, str]]) -> np.ndarray:
    """Split label (0/1/2) of each input, from its file stem; an input in no split is an error."""
    assigned = file_assignment(pairs)
    missing = [s for s in stems if s not in assigned]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ConfigError(f"input {missing[0]} is in no split of the split file{more}")
    return np.array([assigned[s] for s in stems], dtype=np.int8)


def check_overlaps(
    names: Sequence[str],
    boxes: np.ndarray,
    labels: np.ndarray,
    *,
    tolerance: np.ndarray | float = 0.0,
    wrap: float | None = 360.0,
) -> None:
    """Refuse inputs whose footprints overlap but whose splits differ.

    ``boxes`` ``(n, 4)``: each input's ``(W, S, E, N)`` footprint (cell edges, in the grid's
    coordinate units); two footprints overlap when they share more than ``tolerance`` (the
    smaller of the two inputs' values; e.g. half a cell, so edge-to-edge neighbours do not
    count) along both axes. ``wrap`` (360° for geographic grids, ``None`` for projected ones)
    also compares longitudes shifted by ±``wrap``.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    tol = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), (len(b),))
    t = np.minimum(tol[:, None], tol[None, :])
    oy = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
    ox = np.full_like(oy, -np.inf)
    for k in (-wrap, 0.0, wrap) if wrap else (0.0,):
        w, e = b[None, :, 0] + k, b[None, :, 2] + k
        ox = np.maximum(ox, np.minimum(b[:, None, 2], e) - np.maximum(b[:, None, 0], w))
    lab = np.asarray(labels)
    clash = (ox > t) & (oy > t) & (lab[:, None] != lab[None, :])
    i, j = np.nonzero(np.triu(clash, 1))
    if len(i):
        key = {v: k for k, v in NAMES.items()}
        a, c = int(i[0]), int(j[0])
        more = f" ({len(i) - 1} more such pairs)" if len(i) > 1 else ""
        raise ConfigError(
            f"inputs {names[a]} ({key[int(lab[a])]}) and {names[c]} ({key[int(lab[c])]}) "
            f"overlap but are in different splits{more}"
        )
