"""A lossless, compact file of int16 training tiles that needs only numpy and the standard library.

A lent GPU machine takes the working tree plus at most 64 MiB in all, and has no zarr or
netCDF4. The 185 GEBCO 15″ tiles as int16 are 97 MB (``np.savez``), 50 MB with
``np.savez_compressed``. Here each tile is predicted from its left, upper and upper-left
cells (the Lorenzo predictor, in 16-bit wrap-around arithmetic, so any int16 grid, fill
values included, comes back exactly), the residuals are zigzag-mapped to small unsigned
numbers, and their low and high bytes are LZMA-compressed as two planes: 24 MB for the 185
tiles, 22 MB for the 169 training and validation tiles a training run needs.

Layout: ``b"TPK1"``, a little-endian uint32 header length and the header's CRC-32, the header
(JSON: ``names``, ``shape``, ``planes``: the byte lengths of the two LZMA streams, which carry
their own checks), then the two streams.
"""

from __future__ import annotations

import json
import lzma
import struct
import zlib
from pathlib import Path

import numpy as np

from topoae._atomic import atomic_path
from topoae.errors import InputError

MAGIC = b"TPK1"
SUFFIX = ".tpk"


def _residuals(tiles: np.ndarray) -> np.ndarray:
    """Lorenzo residuals of an int16 stack ``(T, H, W)``, zigzag-mapped to uint16 (mod 2**16)."""
    t = tiles.astype(np.int32)
    p = t.copy()
    p[:, 1:, :] -= t[:, :-1, :]
    p[:, :, 1:] -= t[:, :, :-1]
    p[:, 1:, 1:] += t[:, :-1, :-1]
    r = p.astype(np.int16).astype(np.int32)  # wrap to int16
    return ((r << 1) ^ (r >> 15)).astype(np.uint16)


def _tiles(u: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_residuals` (sums in uint16: they wrap mod 2**16 as the residuals did)."""
    v = u.astype(np.int32)
    p = ((v >> 1) ^ -(v & 1)).astype(np.uint16)
    return np.cumsum(np.cumsum(p, axis=1, dtype=np.uint16), axis=2, dtype=np.uint16).view(np.int16)


def pack(names: list[str], tiles: np.ndarray) -> bytes:
    """The file's bytes for ``tiles`` (int16 ``(T, H, W)``) named ``names``."""
    tiles = np.asarray(tiles)
    if tiles.dtype != np.int16 or tiles.ndim != 3 or len(names) != tiles.shape[0]:
        raise ValueError("pack takes an int16 stack (T, H, W) and one name per tile")
    u = _residuals(tiles)
    planes = [lzma.compress((u & 0xFF).astype(np.uint8).tobytes(), preset=9 | lzma.PRESET_EXTREME),
              lzma.compress((u >> 8).astype(np.uint8).tobytes(), preset=9 | lzma.PRESET_EXTREME)]
    head = json.dumps({"names": [str(n) for n in names], "shape": list(tiles.shape),
                       "planes": [len(p) for p in planes]}).encode()
    return MAGIC + struct.pack("<II", len(head), zlib.crc32(head)) + head + b"".join(planes)


def unpack(data: bytes, *, name: str = "tile pack") -> tuple[list[str], np.ndarray]:
    """Inverse of :func:`pack`: ``(names, int16 tiles)``; a damaged file is an InputError."""
    if data[:4] != MAGIC or len(data) < 12:
        raise InputError(f"{name} is not a topoae tile pack")
    try:
        n, crc = struct.unpack("<II", data[4:12])
        raw = data[12:12 + n]
        if len(raw) != n or zlib.crc32(raw) != crc:
            raise ValueError
        head = json.loads(raw)
        shape = tuple(head["shape"])
        names = head["names"]
        a, b = head["planes"]
        if (len(shape) != 3 or not all(type(v) is int and v >= 0 for v in (*shape, a, b))
                or not isinstance(names, list) or not all(isinstance(v, str) for v in names)
                or len(names) != shape[0]):
            raise ValueError
        pos = 12 + n
        lo = np.frombuffer(lzma.decompress(data[pos:pos + a]), dtype=np.uint8)
        hi = np.frombuffer(lzma.decompress(data[pos + a:pos + a + b]), dtype=np.uint8)
        if pos + a + b != len(data) or lo.size != hi.size or lo.size != int(np.prod(shape)):
            raise ValueError
        u = (lo.astype(np.uint16) | (hi.astype(np.uint16) << 8)).reshape(shape)
    except (ValueError, KeyError, TypeError, lzma.LZMAError, struct.error):
        raise InputError(f"{name} is damaged or truncated") from None
    return list(names), _tiles(u)


def write(path: str | Path, names: list[str], tiles: np.ndarray, *, overwrite: bool = True) -> int:
    """Write atomically; returns the size in bytes."""
    data = pack(names, tiles)
    with atomic_path(path, overwrite=overwrite) as tmp:
        Path(tmp).write_bytes(data)
    return len(data)


def read(path: str | Path) -> tuple[list[str], np.ndarray]:
    """The names and int16 tiles of a pack file (:func:`unpack`; missing: an InputError)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p} not found")
    return unpack(p.read_bytes(), name=str(p))
