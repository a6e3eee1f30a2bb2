"""Write outputs under a temporary name and rename them into place.

A crash or a user error half-way through never leaves a partial artefact at
the final path: either the whole output is there, or nothing is.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from topoae.errors import OutputExistsError


def check_output(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Return ``path`` as a Path, refusing an existing one unless ``overwrite``."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p} exists (pass --overwrite to replace it)")
    return p


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it to ``path`` on success.

    Works for files and directories (Zarr stores). On any exception the
    temporary is removed and the final path is left untouched.
    """
    final = check_output(path, overwrite=overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(OSError):
            _remove(tmp)
        raise
    if final.exists():
        _remove(final)
    os.replace(tmp, final)
