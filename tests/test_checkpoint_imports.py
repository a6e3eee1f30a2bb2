"""Loading a model (what the codec and the CLI do) imports the models, never the trainer.

Each check runs in a fresh interpreter, so modules imported by other tests do not count.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from topoae import zoo

PATCH = zoo.WEIGHTS / zoo.REGISTRY[zoo.PATCH_DEFAULT]
LEARNED = zoo.WEIGHTS / zoo.REGISTRY[zoo.DEFAULT]

# the trainer, its DDP set-up and its losses: nothing that loads or runs a model needs them
TRAINING = ("topoae.training", "topoae.losses", "topoae.perceptual")


def _imported_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; return the topoae modules it left in ``sys.modules``."""
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import json, sys
        print(json.dumps({"modules": sorted(m for m in sys.modules if m.startswith("topoae")),
                          "result": globals().get("result")}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _training_modules(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == t or m.startswith(t + ".") for t in TRAINING)]


@pytest.mark.skipif(not PATCH.is_file(), reason="no shipped patch model in this checkout")
def test_loading_the_shipped_patch_model_leaves_the_trainer_out():
    got = _imported_after(
        f"""
        from topoae.checkpoint import load_checkpoint
        lm = load_checkpoint({str(PATCH)!r})
        result = [lm.model_id, type(lm.config).__name__, lm.train_config.get("preset")]
        """
    )
    assert "topoae.models" in got["modules"]
    assert _training_modules(got["modules"]) == []
    model_id, config_type, preset = got["result"]
    assert model_id == zoo.card(zoo.PATCH_DEFAULT)["model_id"]  # same file, same id
    assert config_type == "ModelConfig" and preset == "default"


@pytest.mark.skipif(not LEARNED.is_file(), reason="no shipped learned model in this checkout")
def test_loading_the_shipped_learned_model_leaves_the_trainer_out():
    got = _imported_after(
        f"""
        from topoae.checkpoint import load_checkpoint
        lm = load_checkpoint({str(LEARNED)!r})
        result = [lm.model_id, type(lm.config).__name__]
        """
    )
    assert _training_modules(got["modules"]) == []
    assert got["result"] == [zoo.card(zoo.DEFAULT)["model_id"], "HyperpriorConfig"]


@pytest.mark.skipif(not PATCH.is_file(), reason="no shipped patch model in this checkout")
def test_patch_codec_round_trip_leaves_the_trainer_out():
    got = _imported_after(
        f"""
        import numpy as np
        import topoae.codec as codec
        from topoae.checkpoint import load_checkpoint
        from topoae.io.synthetic import synthetic_grid

        lm = load_checkpoint({str(PATCH)!r})
        grid = synthetic_grid(150, 170, seed=1)
        rec = codec.decode(codec.encode(grid, lm, quantize="8bit"), lm)
        result = [list(rec.shape), bool(np.isfinite(rec.values).all())]
        """
    )
    assert got["result"] == [[150, 170], True]
    assert "topoae.codec.patch" in got["modules"]
    assert _training_modules(got["modules"]) == []


@pytest.mark.skipif(not LEARNED.is_file(), reason="no shipped learned model in this checkout")
def test_learned_codec_round_trip_leaves_the_trainer_out():
    got = _imported_after(
        f"""
        import topoae.codec as codec
        from topoae.checkpoint import load_checkpoint
        from topoae.io.synthetic import synthetic_grid

        lm = load_checkpoint({str(LEARNED)!r})
        grid = synthetic_grid(130, 150, seed=2)
        rec = codec.decode(codec.encode(grid, lm), lm)
        result = list(rec.shape)
        """
    )
    assert got["result"] == [130, 150]
    assert "topoae.codec.learned" in got["modules"]
    assert _training_modules(got["modules"]) == []


def test_checkpoint_module_has_no_training_import():
    """Not even inside a function: no import statement of topoae.checkpoint names the trainer."""
    import ast

    import topoae.checkpoint

    tree = ast.parse(Path(topoae.checkpoint.__file__).read_text(encoding="utf-8"))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    assert names and not [n for n in names if n.startswith("topoae.training")]
    assert "importlib" not in names and "__import__" not in ast.unparse(tree)
