"""What the patch codec needs from a model: the protocol of ``docs/ARCHITECTURE.md`` ("Models").

:class:`PatchModel` is structural: :class:`~topoae.models.AE` and
:class:`~topoae.models.VAE` follow it without inheriting from it, and so may any
other network. In practice it is an ``nn.Module`` (the codec also calls
``eval()``, ``to()`` and ``state_dict()``). The learned codec's
:class:`~topoae.models.hyperprior.HyperpriorModel` is fully convolutional and
does not follow it.

Importing this module does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@runtime_checkable
class PatchModel(Protocol):
    """A patch autoencoder as the patch codec uses it.

    ``isinstance(net, PatchModel)`` checks that the four members exist (not their
    signatures).
    """

    @property
    def latent_dim(self) -> int:
        """``L``: length of the flat latent vector of one patch."""
        ...

    @property
    def patch_size(self) -> int:
        """``P``: side of the square patch in cells."""
        ...

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mu (B, L), logvar (B, L) or None)`` of normalised patches ``x`` ``(B, 1, P, P)``."""
        ...

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Patches ``(B, 1, P, P)`` on the normalised scale from flat latents ``z`` ``(B, L)``."""
        ...
