"""Fast inference transforms equal the trained ones; warm-start gains for a new λ ladder."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from topoae.models.hyperprior import HyperpriorConfig, HyperpriorModel
from topoae.models.inference import InferenceTransforms, SubPixel, mirror_edges
from topoae.training.rd import map_gains


@pytest.mark.parametrize("cin,cout", [(8, 1), (6, 5)])
@pytest.mark.parametrize("size", [(1, 1), (7, 9), (16, 16)])
def test_subpixel_equals_transposed_conv(cin, cout, size):
    torch.manual_seed(cin * 10 + cout)
    deconv = nn.ConvTranspose2d(cin, cout, 5, stride=2, padding=2, output_padding=1)
    x = torch.randn(2, cin, *size)
    with torch.no_grad():
        ref = deconv(x)
        out = SubPixel(deconv)(x)
    assert out.shape == ref.shape == (2, cout, 2 * size[0], 2 * size[1])
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)


def test_subpixel_refuses_other_geometry():
    with pytest.raises(ValueError):
        SubPixel(nn.ConvTranspose2d(4, 1, 3, stride=2, padding=1, output_padding=1))


def test_inference_transforms_equal_the_model():
    torch.manual_seed(3)
    net = HyperpriorModel(HyperpriorConfig(channels=12, latent_channels=16, hyper_channels=8)).eval()
    fast = InferenceTransforms(net)
    x = torch.randn(1, 1, 96, 80)
    with torch.no_grad():
        y = net.g_a(x)
        assert torch.allclose(fast.analyse(x), y, atol=1e-5, rtol=1e-4)
        for level in (0, net.config.levels - 1):
            yq = torch.round(y * net.gains(level))
            ref = net.synthesise(yq, level)
            out = fast.synthesise(yq, level)
            assert out.is_contiguous() and out.shape == ref.shape == x.shape
            assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4)
    # the trained module is untouched: still NCHW, still a transposed convolution
    assert isinstance(net.g_s[-1], nn.ConvTranspose2d)
    assert net.g_s[0].weight.is_contiguous()


def test_map_gains_keeps_known_levels_and_extends_in_log_lambda():
    gain = torch.tensor([[0.0, 1.0], [1.0, 3.0], [2.0, 5.0]])
    old = (1.0, 10.0, 100.0)
    new = (0.1, 1.0, 10.0, 10 ** 1.5, 100.0, 1000.0)
    out = map_gains(gain, old, new).numpy()
    assert out.shape == (6, 2)
    np.testing.assert_allclose(out[[1, 2, 4]], gain.numpy())  # kept rows
    np.testing.assert_allclose(out[0], [-1.0, -1.0], atol=1e-6)  # extrapolated below
    np.testing.assert_allclose(out[3], [1.5, 4.0], atol=1e-6)  # interpolated
    np.testing.assert_allclose(out[5], [3.0, 7.0], atol=1e-6)  # extrapolated above


def test_train_warm_start_with_a_new_ladder(tmp_path):
    """--init with --lambdas adds a level whose gains come from the old ladder (CLI, 2 steps)."""
    from topoae.checkpoint import save_checkpoint
    from topoae.training.rd import RDTrainConfig

    cfg = HyperpriorConfig(channels=8, latent_channels=8, hyper_channels=8, lambdas=(1.0, 10.0))
    torch.manual_seed(0)
    net = HyperpriorModel(cfg)
    with torch.no_grad():
        net.gain.copy_(torch.tensor([[0.0] * 8, [1.0] * 8]))
    src = tmp_path / "src.pt"
    save_checkpoint(src, net, RDTrainConfig(model=cfg), normalise={"mode": "offset-field"})
    rng = np.random.default_rng(0)
    tiles = (rng.normal(0, 50, (3, 128, 128)).cumsum(1)).astype(np.int16)
    np.savez_compressed(tmp_path / "t.npz", tiles=tiles, names=np.array(["a", "b", "c"]))
    (tmp_path / "split.json").write_text('{"train": ["a", "b"], "val": ["c"], "test": []}')
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "topoae.training.rd", "--data", str(tmp_path / "t.npz"),
           "--split", str(tmp_path / "split.json"), "--out", str(out), "--init", str(src),
           "--lambdas", "0.1,1,10", "--steps", "2", "--val-every", "1", "--crop", "64",
           "--batch", "2", "--channels", "8", "--latent-channels", "8", "--threads", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode:
        pytest.fail(done.stderr[-2000:])
    from topoae.checkpoint import read_checkpoint

    payload, _ = read_checkpoint(out / "last.pt")
    assert payload["config"]["model"]["lambdas"] == [0.1, 1.0, 10.0]
    g = payload["model"]["gain"]
    assert g.shape == (3, 8)
    # two Adam steps at lr 1e-4 move a gain by far less than the 1.0 between levels
    np.testing.assert_allclose(g.mean(1).numpy(), [-1.0, 0.0, 1.0], atol=0.01)
    # --resume continues the run from its step, optimiser and generators (run_state / resume_run)
    more = [c for c in cmd if c not in ("--init", str(src))]
    more[more.index("--steps") + 1] = "3"
    done = subprocess.run([*more[:more.index("--lambdas")], *more[more.index("--lambdas") + 2:], "--resume"],
                          capture_output=True, text=True, timeout=300)
    if done.returncode:
        pytest.fail(done.stderr[-2000:])
    assert "resumed at step 2" in done.stdout
    state = read_checkpoint(out / "last.pt")[0]["state"]
    assert state["step"] == 3 and {"optimizer", "best", "wall", "sampler", "torch_rng"} <= set(state)


@pytest.mark.parametrize("pads", [(0, 0, 0, 0), (2, 2, 2, 2), (1, 0, 0, 3), (0, 7, 5, 0)])
def test_mirror_edges_is_numpy_symmetric_padding_with_gradients(pads):
    y = torch.randn(1, 3, 4, 5, requires_grad=True)
    got = mirror_edges(y, pads)
    t, b, l_, r = pads
    want = np.pad(y.detach().numpy(), ((0, 0), (0, 0), (t, b), (l_, r)), mode="symmetric")
    np.testing.assert_array_equal(got.detach().numpy(), want)
    got.sum().backward()  # each latent's gradient: how many times it is copied
    idx = np.pad(np.arange(20).reshape(4, 5), ((t, b), (l_, r)), mode="symmetric")
    expect = np.bincount(idx.ravel(), minlength=20).reshape(4, 5)
    np.testing.assert_array_equal(y.grad[0, 0].numpy(), expect)
