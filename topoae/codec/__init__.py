"""The codec: a region goes in, a compact representation comes out, and back.

Two families live here, one module each:

- :mod:`topoae.codec.learned` — the default: a mean–scale hyperprior model codes a
  region to one ``.tae`` file (:mod:`~topoae.codec.container`) whose latents are
  entropy coded (:mod:`~topoae.codec.entropy`, :mod:`~topoae.codec.tables`).
- :mod:`topoae.codec.patch` — the thesis' patch autoencoders (AE, VAE, DFC-VAE,
  VAE-GAN): overlapping 96×96 patches to a latent Dataset (``.zarr`` / ``.nc``).

:func:`encode` / :func:`decode` pick the family from the model.
"""

from __future__ import annotations

from typing import Any

from topoae.codec.patch import (
    BlockDecoder,
    CodecConfig,
    CodecModel,
    add_residual,
    as_codec_model,
    check_model,
    default_stride,
)
from topoae.codec.patch import decode as _patch_decode
from topoae.codec.patch import encode as _patch_encode


def encode(grid: Any, model: Any, **kw: Any) -> Any:
    """Encode ``grid`` with ``model``.

    A hyperprior model gives ``(header, streams)`` of a ``.tae`` file
    (:func:`topoae.codec.learned.encode`); a patch model gives a latent
    ``xr.Dataset`` (:func:`topoae.codec.patch.encode`).
    """
    from topoae.codec import learned

    if learned.is_rd_model(model):
        return learned.encode(grid, model, **kw)
    return _patch_encode(grid, model, **kw)


def decode(data: Any, model: Any, **kw: Any) -> Any:
    """Inverse of :func:`encode`: a ``(header, streams)`` pair or a latent Dataset."""
    from topoae.codec import learned

    if isinstance(data, tuple):
        return learned.decode(data[0], data[1], model, **kw)
    return _patch_decode(data, model, **kw)


__all__ = [
    "BlockDecoder",
    "CodecConfig",
    "CodecModel",
    "add_residual",
    "as_codec_model",
    "check_model",
    "decode",
    "default_stride",
    "encode",
]
