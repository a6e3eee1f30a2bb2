"""The one exception hierarchy of topoae.

Every error a user can cause derives from :class:`TopoAEError`; the CLI turns
them into a single line on stderr and a non-zero exit status.
"""

from __future__ import annotations


class TopoAEError(Exception):
    """Base class of every error topoae raises on purpose."""

    exit_code = 1


class InputError(TopoAEError):
    """An input file is missing, unreadable or not a grid."""


class VariableError(InputError):
    """The elevation variable cannot be found (or the one asked for is absent)."""


class RegionError(TopoAEError):
    """A bounding box or region is invalid, empty, all-NaN or too small."""


class OutputExistsError(TopoAEError):
    """An output path exists and overwriting was not asked for."""


class StoreError(TopoAEError):
    """A patch or latent store is missing, corrupted or of the wrong kind."""


class CheckpointError(TopoAEError):
    """A checkpoint is missing, corrupted, tampered with or foreign."""


class ModelMismatchError(TopoAEError):
    """An artefact was made by another model than the one given."""


class ConfigError(TopoAEError):
    """An option or configuration value is invalid."""


class DependencyError(TopoAEError):
    """An optional dependency needed for this operation is not installed."""
