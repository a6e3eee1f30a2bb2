"""Atomic outputs (topoae._atomic): nothing partial at the final path, no stale temporaries."""

from __future__ import annotations

import signal
import subprocess
import sys
import warnings

import pytest

from topoae._atomic import atomic_path
from topoae.errors import OutputExistsError

KILLED_WRITE = """
import os, signal, sys
from topoae._atomic import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    if sys.argv[2] == "dir":
        tmp.mkdir()
        (tmp / "chunk").write_bytes(b"half a store")
    else:
        tmp.write_bytes(b"half a file")
    os.kill(os.getpid(), signal.SIGKILL)  # killed during the final write
"""


def _killed_write(target, kind):
    r = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(target), kind], check=False)
    assert r.returncode == -signal.SIGKILL


def _hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_temporaries_of_a_killed_run_are_removed_by_the_next(tmp_path, kind):
    target = tmp_path / ("out.zarr" if kind == "dir" else "out.nc")
    _killed_write(target, kind)
    first = _hidden(tmp_path)
    assert len(first) == 1 and first[0].startswith(f".{target.name}.tmp-")
    _killed_write(target, kind)  # the next run removes the first one's temporary
    stale = _hidden(tmp_path)
    assert len(stale) == 1 and stale != first and not target.exists()
    # temporaries of other outputs, and names that only look alike, are not ours to remove
    others = [
        ".other.nc.tmp-0123abcd",
        f".{target.name}.tmp-notahex0",
        f".{target.name}x.tmp-0123abcd",
    ]
    for name in others:
        (tmp_path / name).write_text("someone else's")
    with (
        pytest.warns(RuntimeWarning, match="removed 1 stale temporary") as record,
        atomic_path(target) as tmp,
    ):
        if kind == "file":
            tmp.write_text("whole")
        else:
            tmp.mkdir()
    assert len(record) == 1 and "\n" not in str(record[0].message)
    assert all(n in str(record[0].message) for n in stale)
    assert _hidden(tmp_path) == sorted(others)
    assert target.exists()


def test_no_warning_without_stale_temporaries_and_errors_leave_nothing(tmp_path):
    target = tmp_path / "a.nc"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with atomic_path(target) as tmp:
            tmp.write_text("x")
        with pytest.raises(OutputExistsError), atomic_path(target):
            pass
        with pytest.raises(ValueError), atomic_path(tmp_path / "b.nc") as tmp:
            tmp.write_text("partial")
            raise ValueError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nc"]
