"""A learned-codec file as a Zarr store: the same streams, plus the integer latents for analysis.

``topoae encode REGION --out region.zarr`` (learned model) writes a Zarr v3 group with

- ``streams/<name>`` uint8: every stream of the ``.tae`` file (so the store decodes exactly
  like the file), each with its length and CRC-32 in the metadata;
- ``latents`` int32 ``(channel, y, x)``: the coded latent symbols round(y − μ) of the whole
  region (tiles assembled), and ``hyper`` int32: the hyper-latents, tile by tile along a
  leading ``tile`` axis; both for analysis (uncertainty studies, plots), not needed to decode;
- ``attrs["topoae"]``: the kind (:data:`KIND`), the ``.tae`` container version its streams
  follow, the header (JSON) and the stream table.

Reading checks every stream against its length and CRC: a missing or damaged chunk
(Zarr would silently fill it) is a :class:`~topoae.errors.StoreError` naming the stream.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from topoae._atomic import atomic_path
from topoae.codec import container
from topoae.errors import StoreError

#: the kind new stores are written as: from ``.tae`` format 7 a store's streams may hold what
#: earlier readers would ignore (the loop filter); from format 8 the offset stream's nodes may
#: be in 16 m steps (the header's ``offset_step``, which earlier readers do not know), so they
#: must not take a new store for their kind
KIND = "topoae-rd-store-8"
#: the kinds read (stores before format 7 hold the streams of formats up to 6)
READ_KINDS = ("topoae-rd-store", "topoae-rd-store-7", KIND)


def _key(role: str) -> str:
    return role.replace(":", "_").replace(",", "_")


def save(path: str | os.PathLike, header: dict[str, Any], streams: dict[str, bytes], model: Any, *,
         overwrite: bool = False) -> Path:
    """Write the store atomically; returns its path."""
    import zarr

    from topoae.codec import learned

    rd = learned.as_rd_model(model)
    table = {role: {"key": _key(role), "bytes": len(b), "crc32": zlib.crc32(b)} for role, b in streams.items()}
    latents, hyper = _symbols(header, streams, rd)
    p = Path(path)
    with atomic_path(p, overwrite=overwrite) as tmp:
        root = zarr.open_group(str(tmp), mode="w", zarr_format=3)
        for role, b in streams.items():
            a = np.frombuffer(b, dtype=np.uint8)
            arr = root.create_array(f"streams/{_key(role)}", shape=a.shape, dtype="uint8",
                                    chunks=(max(1, a.size),), fill_value=0)
            arr[:] = a
        arr = root.create_array("latents", shape=latents.shape, dtype="int32",
                                chunks=(latents.shape[0], min(256, latents.shape[1]), min(256, latents.shape[2])),
                                fill_value=0)
        arr[:] = latents
        harr = root.create_array("hyper", shape=hyper.shape, dtype="int32", chunks=hyper.shape, fill_value=0)
        harr[:] = hyper
        arrays = {name: {"shape": list(a.shape), "crc32": _crc(a)} for name, a in
                  (("latents", latents), ("hyper", hyper))}
        root.attrs["topoae"] = json.dumps({"kind": KIND, "container_version": container.VERSION,
                                           "header": header, "streams": table, "arrays": arrays})
    return p


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(a, dtype="<i4").tobytes())


def is_store(path: str | os.PathLike) -> bool:
    try:
        import zarr

        root = zarr.open_group(str(path), mode="r")
        text = root.attrs.get("topoae", "{}")
        return isinstance(text, str) and json.loads(text).get("kind") in READ_KINDS
    except Exception:
        return False


def load(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, bytes]]:
    """``(header, streams)`` of a store, every stream checked."""
    import zarr

    try:
        root = zarr.open_group(str(path), mode="r")
        text = root.attrs["topoae"]
        if not isinstance(text, str):
            raise TypeError("the topoae attribute is not a JSON string")
        meta = json.loads(text)
    except Exception:
        raise StoreError(f"{path} is not a topoae learned-codec store") from None
    if meta.get("kind") not in READ_KINDS:
        kind = str(meta.get("kind", ""))
        if kind.startswith("topoae-rd-store"):
            raise StoreError(f"{path} is a learned-codec store of a newer topoae ({kind})")
        raise StoreError(f"{path} is not a topoae learned-codec store")
    streams = {}
    for role, entry in meta["streams"].items():
        try:
            node = root[f"streams/{entry['key']}"]
            if not isinstance(node, zarr.Array):
                raise KeyError(entry["key"])
            a = np.asarray(node[:], dtype=np.uint8)
        except Exception:
            raise StoreError(f"{path}: stream {role!r} is missing") from None
        b = a.tobytes()
        if len(b) != entry["bytes"] or zlib.crc32(b) != entry["crc32"]:
            raise StoreError(f"{path}: stream {role!r} is damaged or has a missing chunk")
        streams[role] = b
    for name, entry in meta.get("arrays", {}).items():  # the analysis arrays, checked too
        try:
            node = root[name]
            if not isinstance(node, zarr.Array):
                raise KeyError(name)
            a = np.asarray(node[:])
        except Exception:
            raise StoreError(f"{path}: array {name!r} is missing") from None
        if list(a.shape) != entry["shape"] or _crc(a) != entry["crc32"]:
            raise StoreError(f"{path}: array {name!r} is damaged or has a missing chunk")
    return meta["header"], streams


def _symbols(header: dict[str, Any], streams: dict[str, bytes], rd) -> tuple[np.ndarray, np.ndarray]:
    """Latent symbols of the whole region and hyper-latents per tile (int32)."""
    from topoae.codec import learned

    rd_, cfg, g, geo, _ = learned._open(header, streams, rd, force=True)
    m, hz = rd_.net.config.latent_channels, rd_.net.config.hyper_channels
    hp, wp = geo.padded
    lat = np.zeros((m, hp // 16, wp // 16), dtype=np.int32)
    hyper = []
    nti, ntj = geo.counts
    for i in range(nti):
        for j in range(ntj):
            a0, a1 = geo.span(i, 0)
            b0, b1 = geo.span(j, 1)
            th, tw = (a1 - a0) // 16, (b1 - b0) // 16
            z, y, _, _ = learned.decode_symbols(rd_, learned._need(streams, f"tile:{i},{j}"), (th, tw),
                                                cfg.level, cfg.context)
            lat[:, a0 // 16:a0 // 16 + th, b0 // 16:b0 // 16 + tw] = y
            zz = np.zeros((hz, geo.patch // 64, geo.patch // 64), dtype=np.int32)
            zz[:, :z.shape[1], :z.shape[2]] = z
            hyper.append(zz)
    return lat, np.stack(hyper)
