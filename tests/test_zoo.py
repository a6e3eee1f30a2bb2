"""The model zoo: names, defaults, digests, ``topoae models``."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
from click.testing import CliRunner

from topoae import zoo
from topoae.errors import CheckpointError


def test_registry_names_defaults_and_paths():
    assert zoo.DEFAULT in zoo.REGISTRY and zoo.PATCH_DEFAULT in zoo.REGISTRY
    assert zoo.resolve_model("some/file.pt").name == "file.pt"
    with pytest.raises(CheckpointError, match="unknown model"):
        zoo.model_path("no-such-model")


def test_digest_mismatch_is_refused(tmp_path, monkeypatch):
    src = zoo.WEIGHTS / zoo.REGISTRY[zoo.PATCH_DEFAULT]
    if not src.is_file():
        pytest.skip("no shipped patch model in this checkout")
    monkeypatch.setattr(zoo, "WEIGHTS", tmp_path)
    dst = tmp_path / src.name
    shutil.copy(src, dst)
    card = {"model_id": hashlib.sha256(dst.read_bytes()).hexdigest()}
    zoo.card_path(zoo.PATCH_DEFAULT).write_text(json.dumps(card))
    assert zoo.model_path(zoo.PATCH_DEFAULT) == dst
    with dst.open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(CheckpointError, match="digest"):
        zoo.model_path(zoo.PATCH_DEFAULT)
    dst.unlink()
    with pytest.raises(CheckpointError, match="not installed"):
        zoo.model_path(zoo.PATCH_DEFAULT)


def test_models_command_lists_the_registry():
    from topoae.cli.main import cli

    r = CliRunner().invoke(cli, ["models"])
    assert r.exit_code == 0, r.output
    for name in zoo.REGISTRY:
        assert name in r.output
    default_line = next(line for line in r.output.splitlines() if line.startswith(zoo.DEFAULT))
    assert "default" in default_line
