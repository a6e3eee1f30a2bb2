"""Conventions every ``topoae`` command shares: the ``--device`` default and the exit status.

Exit status: 0 on success; 1 on every error, whether a library error (one ``Error:``
line), an internal error, or a click usage error (unknown option or command,
missing argument: the usage, a hint and one ``Error:`` line); 130 on Ctrl-C.
"""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
import torch
from click.testing import CliRunner

from topoae.cli.main import COMMANDS, cli

DEVICE_COMMANDS = ("train", "evaluate", "encode", "decode", "sample")


def _command(name):
    return cli.get_command(None, name)


def _device_option(name):
    return next((p for p in _command(name).params if p.name == "device"), None)


def test_device_commands_are_the_known_ones():
    with_device = {name for name in COMMANDS if _device_option(name) is not None}
    assert with_device == set(DEVICE_COMMANDS)


@pytest.mark.parametrize(
    "name",
    [
        n for n in DEVICE_COMMANDS
    ],
)
def test_device_defaults_to_auto(name):
    assert _device_option(name).default == "auto"


@pytest.mark.parametrize("cuda", [False, True])
def test_auto_is_cuda_when_available_else_cpu(monkeypatch, cuda):
    from topoae.codec.patch_model import torch_device
    from topoae.training.batches import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    want = "cuda" if cuda else "cpu"
    assert torch_device("auto").type == want  # the codec (encode, decode, sample, evaluate)
    assert resolve_device("auto").type == want  # training and patch-store evaluation
    assert resolve_device("auto", local_rank=1) == (
        torch.device("cuda", 1) if cuda else torch.device("cpu")
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", ".", "--out", "run", "--bogus"], "No such option '--bogus'"),
        (["tile", "--bogus"], "No such option '--bogus'"),
        (["evaluate", ".", "--bogus"], "No such option '--bogus'"),
        (["encode", "--bogus"], "No such option '--bogus'"),
        (["tile"], "Missing argument 'INPUTS...'"),
        (["nosuch"], "No such command 'nosuch'"),
        (["--bogus"], "No such option '--bogus'"),
    ],
)
def test_usage_errors_exit_1(args, message):
    r = CliRunner().invoke(cli, args)
    assert f"Error: {message}" in r.output
    assert r.exit_code == 1


def _commands_with(option):
    """``(path, command)`` of every command and ``export`` subcommand that has ``option``."""
    found = []
    for name in COMMANDS:
        cmd = _command(name)
        subs = cmd.commands.items() if isinstance(cmd, click.Group) else [(None, cmd)]
        for sub, c in subs:
            if any(option in p.opts for p in c.params):
                found.append(([name] + ([sub] if sub else []), c))
    return found


def test_every_bbox_help_says_metres_on_projected_grids():
    with_bbox = _commands_with("--bbox")
    assert {" ".join(path) for path, _ in with_bbox} >= {"encode", "tile", "evaluate", "simulate"}
    for path, _ in with_bbox:
        r = CliRunner().invoke(cli, [*path, "--help"])
        assert r.exit_code == 0, r.output
        assert "metres on projected grids" in " ".join(r.output.split()), path


def test_stale_temporaries_are_reported_in_one_warning_line(tmp_path, gebco_nc):
    """The console script prints a warning as one ``Warning:`` line, no file path or code."""
    out = tmp_path / "p.zarr"
    stale = tmp_path / ".p.zarr.tmp-0123abcd"
    stale.mkdir()
    r = subprocess.run(
        [sys.executable, "-m", "topoae.cli.main", "tile", str(gebco_nc), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert out.exists() and not stale.exists()
    noted = [ln for ln in r.stderr.splitlines() if "stale" in ln]
    assert noted == [
        "Warning: removed 1 stale temporary output(s) of p.zarr left by an interrupted run: "
        ".p.zarr.tmp-0123abcd"
    ], r.stderr
    assert ".py:" not in r.stderr and "atomic_path" not in r.stderr


def test_a_bare_group_prints_its_help_and_exits_0():
    for args in ([], ["export"]):
        r = subprocess.run([sys.executable, "-m", "topoae.cli.main", *args], capture_output=True,
                           text=True)
        assert r.returncode == 0, (args, r.stderr)
        out = r.stdout + r.stderr  # click prints the help of a bare group on stderr
        assert "Usage:" in out and "Commands:" in out and "Error" not in out
