"""Write outputs under a temporary name and rename them into place.

A crash or a user error half-way through never leaves a partial artefact at
the final path: either the whole output is there, or nothing is.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

from topoae.errors import OutputExistsError

#: outputs written as single files: an existing *directory* of such a name is never replaced
FILE_SUFFIXES = (".tae", ".nc", ".nc4", ".tif", ".tiff", ".png", ".pdf", ".svg", ".csv", ".json",
                 ".pt", ".npz")


def _not_a_file(p: Path) -> OutputExistsError:
    return OutputExistsError(f"{p} is a directory; --overwrite replaces files, not folders "
                             "(remove it or choose another output)")


def check_output(path: str | os.PathLike, *, overwrite: bool) -> Path:
    """Return ``path`` as a Path, refusing an existing one unless ``overwrite``, and never
    offering to replace a directory with a file (an output named like a file)."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p} exists (pass --overwrite to replace it)")
    if p.is_dir() and not p.is_symlink() and p.suffix.lower() in FILE_SUFFIXES:
        raise _not_a_file(p)
    return p


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def _temporary(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")


def remove_stale(final: Path) -> list[str]:
    """Remove temporaries of ``final`` left by a killed run; warn in one line if any."""
    pattern = re.compile(rf"\.{re.escape(final.name)}\.tmp-[0-9a-f]{{8}}")
    try:
        stale = sorted(p for p in final.parent.iterdir() if pattern.fullmatch(p.name))
    except OSError:  # no parent folder yet: nothing stale
        return []
    names = []
    for p in stale:
        with contextlib.suppress(OSError):
            _remove(p)
            names.append(p.name)
    if names:
        warnings.warn(
            f"removed {len(names)} stale temporary output(s) of {final.name} left by an "
            f"interrupted run: {', '.join(names)}",
            RuntimeWarning,
            stacklevel=4,
        )
    return names


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it to ``path`` on success.

    Works for files and directories (Zarr stores). On any exception the
    temporary is removed and the final path is left untouched. Temporaries of the
    same ``path`` left by a run killed before its rename (``.NAME.tmp-XXXXXXXX``)
    are removed first, with a one-line :class:`RuntimeWarning`.
    """
    final = check_output(path, overwrite=overwrite)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    tmp = _temporary(final)
    try:
        yield tmp
    except BaseException:
        with contextlib.suppress(OSError):
            _remove(tmp)
        raise
    if final.is_dir() and not final.is_symlink() and not tmp.is_dir():
        with contextlib.suppress(OSError):
            _remove(tmp)
        raise _not_a_file(final)
    if final.exists():
        _remove(final)
    os.replace(tmp, final)
