"""Conventions every ``topoae`` command shares: the ``--device`` default and the exit status.

Exit status: 0 on success; 1 on every error, whether a library error (one ``Error:``
line), an internal error, or a click usage error (unknown option or command,
missing argument: the usage, a hint and one ``Error:`` line); 130 on Ctrl-C.
"""

from __future__ import annotations

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
    from topoae.codec_model import torch_device
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
