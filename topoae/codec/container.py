"""The ``.tae`` container: one compact file per region.

Layout (little-endian), format versions 4 to 8::

    magic     b"TAE"  + format version (1 byte)
    count     uvarint: number of streams
    table     per stream: uvarint length
    crc       4-byte CRC-32 of every byte before it and of the payloads
    payloads  the streams, back to back

Versions 1–3 hold a CRC-32 per stream instead (in the table, after each length) and no
file CRC.

Stream 0 is the header: zstd-compressed JSON (model id, codec config, grid
shape, dims, coordinates, CRS, attributes, stream roles). From format version 2
the header is compressed against a fixed raw-content dictionary (a typical header:
:data:`HEADER_DICT`), which takes a GEBCO tile's header from ~600 to ~220 bytes;
version 1 files (no dictionary) still read. Version 3 (:data:`HEADER_DICT_V3`) adds
context-coded correction frames (:mod:`topoae.codec.context_coder`), regular-axis
coordinate entries and the outlier cost; its layout is version 2's, and version 1 and 2
files read unchanged. Version 4 trims the fixed cost of a file, which decides small
windows and high ratios (~400 bytes of a 512² GEBCO tile were not terrain): one CRC for
the file instead of one per stream (16 bytes on a typical tile), the header's zstd frame
without its 4-byte magic number, and Exp-Golomb frames for short integer streams such
as the offset field (:mod:`topoae.codec.golomb`, ~45 bytes). Version 5 has version 4's
layout; its dictionary (:data:`HEADER_DICT_V5`) holds the learned codec's settings that its
files add: the synthesis' edge (mirrored latents past the region's edges) and the grid's
alignment (padded to 16 cells instead of 64). Version 6 has version 5's layout and
dictionary; its integer streams may be primed context-coded frames
(:mod:`topoae.codec.context_coder`, frame kind 4 of :data:`topoae.codec.residual.PREDICTORS`),
which earlier readers do not know. Version 7 has version 6's layout and dictionary; a
learned-codec file may hold a ``"filter"`` stream (:mod:`topoae.codec.loop_filter`), which
earlier readers would ignore, so they refuse the version, and its context-coded frames may
keep their escapes in an Exp-Golomb frame (kinds 5 and 6 of
:data:`topoae.codec.residual.PREDICTORS`). Version 8 has version 7's layout and streams; its
header is a compact binary difference from a typical header, its free text range-coded
(:mod:`topoae.codec.header_codec`): ~35 bytes less a file. The other streams are
named in the header (``streams``: list of roles such as ``"offset"``, ``"mask"``,
``"tile:r,c"``, ``"residual:b"``). A missing, truncated or damaged stream is a
:class:`~topoae.errors.StoreError` (naming the stream, or from version 4, where one CRC
covers the file, the file), never a silent wrong grid.
The file is written to a temporary name and renamed (no half-written output).
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

from topoae._atomic import atomic_path
from topoae.codec import header_codec
from topoae.codec import residual as _res
from topoae.codec.entropy import _get_uvarint, _put_uvarint
from topoae.errors import StoreError

MAGIC = b"TAE"
VERSION = 8
READABLE = (1, 2, 3, 4, 5, 6, 7, 8)

# The header dictionary of format version 2: a typical header's keys, common values and
# attribute strings. Frozen: any change is a new format version (tests pin its digest).
_WORDS = ('"y","x","degrees_north","degrees_east","latitude","longitude",'
          '"projection_x_coordinate","projection_y_coordinate","metre","float32","float64",'
          '"int32","mask:0,0","res:0,0","coast:0,0","rel:0,0","tile:0,1","tile:1,0",'
          '"tile:1,1","out:0,1","out:1,0","out:1,1"')
_TEMPLATE: dict[str, Any] = {
    "format": "topoae-rd", "topoae": "0.1.0", "model": "0000000000000000",
    "codec": {"level": 0, "tile": 512, "margin": 32, "synth_margin": 2, "max_error": None,
              "keep_attrs": True, "outliers": True, "coastline": None, "relative_error": None,
              "floor": 0.5, "scale_exp": 15},
    "grid": {"name": "elevation", "dims": ["lat", "lon"], "shape": [512, 512], "dtype": "int16",
             "integer": True,
             "coords": {"lat": {"kind": "linspace", "start": -1.0, "stop": 1.0, "n": 512,
                                "float32": True},
                        "lon": {"kind": "packed", "start": 1.0, "stop": 2.0, "n": 512}},
             "coord_attrs": {"lat": {"units": "degrees_north", "standard_name": "latitude"},
                             "lon": {"units": "degrees_east", "standard_name": "longitude"}},
             "attrs": {"long_name": "Elevation relative to sea level", "units": "m",
                       "standard_name": "height_above_mean_sea_level", "positive": "up",
                       "grid_mapping": "spatial_ref"},
             "crs": "EPSG:4326", "nan_cells": 0,
             "global_attrs": {"title": "GEBCO", "Conventions": "CF-1.6", "source": "GEBCO",
                              "history": ""}},
    "streams": ["offset", "tile:0,0", "out:0,0", "coord:lat", "coord:lon"],
}
HEADER_DICT = (_WORDS + json.dumps(_TEMPLATE, separators=(",", ":"), sort_keys=True)).encode()


# Format version 3's dictionary: version 2's plus the regular-axis coordinate entries
# (:data:`topoae.codec.files.LINE_FORMS`) and the outlier cost in the codec settings.
_TEMPLATE_V3: dict[str, Any] = json.loads(json.dumps(_TEMPLATE))
_TEMPLATE_V3["codec"]["outlier_bits"] = 6.0
_TEMPLATE_V3["grid"]["coords"] = {
    "lat": {"kind": "edge", "start": -1.0, "n": 512, "per": 240, "sign": -1, "ulps": True},
    "lon": {"kind": "origin_mul", "k": 0, "n": 512, "per": 240, "sign": 1, "origin": -180.0}}
_WORDS_V3 = (_WORDS + ',"step","div","index","origin_div","origin":-90.0,"origin":0.0,'
             '"per":120,"per":60,"per":3600,"sign":1,"ulps":true')
HEADER_DICT_V3 = (_WORDS_V3 + json.dumps(_TEMPLATE_V3, separators=(",", ":"), sort_keys=True)).encode()


# Format version 5's dictionary: version 3's with the synthesis edge and the grid alignment
# of new learned-codec files in the codec settings, and a latitude axis counted from its
# last cell (``files.LINE_FORMS``' ``edge_end``, new in version 5).
_TEMPLATE_V5: dict[str, Any] = json.loads(json.dumps(_TEMPLATE_V3))
_TEMPLATE_V5["codec"]["edge"] = "mirror"
_TEMPLATE_V5["codec"]["align"] = 16
_TEMPLATE_V5["grid"]["coords"]["lat"] = {"kind": "edge_end", "start": -1.0, "n": 512, "per": 240, "sign": 1}
HEADER_DICT_V5 = (_WORDS_V3 + json.dumps(_TEMPLATE_V5, separators=(",", ":"), sort_keys=True)).encode()


def _dictionary(version: int) -> bytes | None:
    return {1: None, 2: HEADER_DICT, 3: HEADER_DICT_V3, 4: HEADER_DICT_V3}.get(version, HEADER_DICT_V5)


def _compress_header(header: dict[str, Any]) -> bytes:
    if VERSION >= 8:
        return header_codec.encode(header, HEADER_DICT_V5)
    data = header_codec.canonical(header).encode()  # tests write old files
    return _res.compress(data, 19, dictionary=_dictionary(VERSION), magicless=VERSION >= 4)


def _decompress_header(frame: bytes, version: int) -> dict[str, Any]:
    if version >= 8:
        return header_codec.decode(frame, HEADER_DICT_V5)
    out = json.loads(_res.decompress(frame, dictionary=_dictionary(version), magicless=version >= 4,
                                     max_size=header_codec.MAX_BYTES))
    if not isinstance(out, dict):
        raise StoreError("header is not a dictionary")
    return out


def pack(header: dict[str, Any], streams: list[bytes]) -> bytes:
    """The container bytes for ``header`` and its streams (``header["streams"]`` names them)."""
    if len(header.get("streams", [])) != len(streams):
        raise ValueError("header must name every stream")
    head = _compress_header(header)
    parts = [head, *streams]
    out = bytearray(MAGIC + bytes([VERSION]))
    _put_uvarint(out, len(parts))
    for p in parts:
        _put_uvarint(out, len(p))
    crc = zlib.crc32(bytes(out))
    for p in parts:
        crc = zlib.crc32(p, crc)
    out += crc.to_bytes(4, "little")
    for p in parts:
        out += p
    return bytes(out)


def unpack(data: bytes, *, name: str = "file") -> tuple[dict[str, Any], dict[str, bytes]]:
    """Inverse of :func:`pack`: ``(header, {role: payload})``, every CRC checked."""
    if len(data) < 5 or data[:3] != MAGIC:
        raise StoreError(f"{name} is not a topoae .tae file")
    if data[3] not in READABLE:
        raise StoreError(f"{name} has .tae format version {data[3]}; this topoae reads versions "
                         f"{min(READABLE)}–{max(READABLE)}" + (" (a newer topoae wrote it)"
                                                              if data[3] > max(READABLE) else ""))
    per_stream = data[3] < 4  # versions 1-3: a CRC per stream; from 4: one for the file
    try:
        n, pos = _get_uvarint(data, 4)
        table = []
        for _ in range(n):
            length, pos = _get_uvarint(data, pos)
            crc = int.from_bytes(data[pos:pos + 4], "little") if per_stream else None
            pos += 4 if per_stream else 0
            table.append((length, crc))
    except StoreError:
        raise StoreError(f"{name}: stream table is truncated or damaged") from None
    if not per_stream:
        if len(data) < pos + 4:
            raise StoreError(f"{name}: stream table is truncated or damaged")
        file_crc = zlib.crc32(data[:pos])
        want = int.from_bytes(data[pos:pos + 4], "little")
        pos += 4
    payloads = []
    for i, (length, crc) in enumerate(table):
        p = data[pos:pos + length]
        pos += length
        if len(p) != length:
            raise StoreError(f"{name}: stream {i} is truncated ({len(p)} of {length} bytes)")
        if per_stream and zlib.crc32(p) != crc:
            raise StoreError(f"{name}: stream {i} is damaged (checksum mismatch)")
        if not per_stream:
            file_crc = zlib.crc32(p, file_crc)
        payloads.append(p)
    if not per_stream and file_crc != want:
        raise StoreError(f"{name} is damaged (checksum mismatch)")
    if pos != len(data):
        raise StoreError(f"{name}: {len(data) - pos} unexpected bytes after the last stream")
    try:
        header = _decompress_header(payloads[0], data[3])
    except Exception:
        raise StoreError(f"{name}: header cannot be read (damaged)") from None
    roles = header.get("streams", [])
    if len(roles) != len(payloads) - 1:
        raise StoreError(f"{name}: header names {len(roles)} streams, file holds {len(payloads) - 1}")
    return header, dict(zip(roles, payloads[1:], strict=True))


def write(path: str | os.PathLike, header: dict[str, Any], streams: list[bytes], *,
          overwrite: bool = False) -> int:
    """Write atomically; returns the file size in bytes."""
    data = pack(header, streams)
    with atomic_path(path, overwrite=overwrite) as tmp:
        Path(tmp).write_bytes(data)
    return len(data)


def is_tae(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a ``.tae`` file, by its name or its first bytes (a renamed one)."""
    p = Path(path)
    if p.suffix.lower() == ".tae":
        return True
    try:
        with p.open("rb") as fh:
            return fh.read(3) == MAGIC
    except OSError:
        return False


def read(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, bytes]]:
    p = Path(path)
    if not p.is_file():
        raise StoreError(f"{p} not found")
    return unpack(p.read_bytes(), name=str(p))
