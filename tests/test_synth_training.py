"""Fine-tuning the synthesis alone (topoae.training.synth) on tiny models made in code."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from topoae.checkpoint import load_checkpoint, save_checkpoint
from topoae.codec import learned
from topoae.errors import ConfigError
from topoae.io.synthetic import synthetic_grid
from topoae.models.hyperprior import HyperpriorConfig, HyperpriorModel
from topoae.models.inference import mirror_edges
from topoae.training import synth
from topoae.training.rd import RDTrainConfig

TINY = HyperpriorConfig(channels=16, latent_channels=24, hyper_channels=16)


@pytest.mark.parametrize("low,high", [(True, True), (True, False), (False, True), (False, False)])
def test_the_edges_are_mirrored_as_the_codec_mirrors_them(low, high):
    n, m = 40, 32
    block = np.arange(n, dtype=float)
    want = np.pad(block, m, mode="reflect")  # the analysis: about the edge cell
    i = synth.reflect_index(-m, n + m, n, low, high)
    inside = (np.arange(-m, n + m) >= 0) & (np.arange(-m, n + m) < n)
    side = np.where(np.arange(-m, n + m) < 0, low, high)
    mirrored = ~inside & side
    np.testing.assert_array_equal(block[i[mirrored]], want[mirrored])
    np.testing.assert_array_equal(i[~mirrored], np.arange(-m, n + m)[~mirrored])  # the real cells
    y = torch.arange(5.0).reshape(1, 1, 1, 5).expand(1, 1, 5, 5)
    j = synth.latent_index(2, 5, low, high)
    ref = mirror_edges(y, (0, 0, 2, 2))[0, 0, 0].numpy()  # the decoder: edge latent repeated
    k = np.arange(-2, 7)
    edge = ((k < 0) & low) | ((k >= 5) & high)
    np.testing.assert_array_equal(j[edge], ref[edge])
    np.testing.assert_array_equal(j[~edge], k[~edge])


def _tiny_run(tmp_path):
    """A tiny model saved as ``init.pt`` and four synthetic int16 tiles (3 train, 1 val) as
    ``tiles.npz`` and ``split.json`` in ``tmp_path``: ``(model, init path)``."""
    torch.manual_seed(0)
    base = HyperpriorModel(TINY).eval()
    init = tmp_path / "init.pt"
    save_checkpoint(init, base, RDTrainConfig(model=TINY), normalise={"mode": "offset-field"})
    tiles = np.stack([np.rint(synthetic_grid(224, 224, seed=s).values).astype(np.int16) for s in range(4)])
    names = np.array([f"t{k}" for k in range(4)])
    np.savez(tmp_path / "tiles.npz", names=names, tiles=tiles)
    (tmp_path / "split.json").write_text(json.dumps({"train": list(names[:3]), "val": [names[3]], "test": []}))
    return base, init


def test_fine_tuning_changes_the_synthesis_alone_and_lowers_its_error(tmp_path):
    """A short run on synthetic tiles: every tensor but the synthesis' stays bit for bit, the
    validation error falls, a run resumes, and the checkpoint codes the same latents."""
    base, init = _tiny_run(tmp_path)
    cfg = synth.SynthTrainConfig(init=str(init), data=str(tmp_path / "tiles.npz"),
                                 split=str(tmp_path / "split.json"), crop=64, batch=4, lr=3e-3,
                                 lr_final=1e-3, total_steps=60, val_every=30, edge_prob=0.5)
    synth.train(cfg, tmp_path / "run", minutes=5, resume=False, threads=1)
    rows = [r.split(",") for r in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1:]]
    assert [int(r[0]) for r in rows] == [0, 30, 60]
    assert float(rows[-1][3]) < float(rows[0][3])  # region windows
    assert float(rows[-1][4]) < float(rows[0][4])  # interior windows
    lm = load_checkpoint(tmp_path / "run" / "last.pt")
    changed = {k for k, v in lm.model.state_dict().items() if not torch.equal(v, base.state_dict()[k])}
    assert changed and all(k.startswith("g_s.") for k in changed)
    more = synth.SynthTrainConfig(**{**cfg.to_dict(), "total_steps": 70})
    synth.train(more, tmp_path / "run", minutes=5, resume=True, threads=1)
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["state"]["step"] == 70
    g = synthetic_grid(96, 112, seed=9)
    h0, s0 = learned.encode(g, learned.as_rd_model(load_checkpoint(init)), level=2)
    h1, s1 = learned.encode(g, learned.as_rd_model(lm), level=2)
    assert s1["tile:0,0"] == s0["tile:0,0"]


def test_the_context_latents_see_what_the_neighbouring_tiles_analysis_sees():
    """The window reads ``BORDER`` cells around a block: the latents of the block and of the
    ``SYNTH_MARGIN`` latents around it come out as from an analysis of the whole grid (as the
    codec's neighbouring tiles give them), not truncated by the window's edge."""
    torch.manual_seed(0)
    net = HyperpriorModel(TINY).eval()
    crop, extra = 64, 64
    n, k0 = crop // synth.STRIDE, synth.BORDER // synth.STRIDE
    big = torch.randn(1, 1, crop + 2 * (synth.BORDER + extra), crop + 2 * (synth.BORDER + extra))
    win = big[..., extra:-extra, extra:-extra]
    with torch.no_grad():
        y_win = net.g_a(win)
        y_big = net.g_a(big)
    e = extra // synth.STRIDE
    sel = slice(k0 - synth.SYNTH_MARGIN, k0 + n + synth.SYNTH_MARGIN)
    big_sel = slice(e + k0 - synth.SYNTH_MARGIN, e + k0 + n + synth.SYNTH_MARGIN)
    torch.testing.assert_close(y_win[..., sel, sel], y_big[..., big_sel, big_sel], atol=1e-5, rtol=1e-5)
    # with only the analysis margin around the block the outer context latents differ
    short = big[..., extra + synth.BORDER - synth.MARGIN:-(extra + synth.BORDER - synth.MARGIN),
                extra + synth.BORDER - synth.MARGIN:-(extra + synth.BORDER - synth.MARGIN)]
    with torch.no_grad():
        y_short = net.g_a(short)
    k = synth.MARGIN // synth.STRIDE
    assert not torch.allclose(y_short[..., k - 2, k:k + n], y_big[..., e + k0 - 2, e + k0:e + k0 + n], atol=1e-3)


def test_the_encoder_side_learns_with_the_synthesis_and_the_entropy_model_stays(tmp_path):
    """``analysis=True``: the analysis and hyper-analysis train with the synthesis on rate +
    λ · distortion; the decoder's entropy model (hyper-synthesis, densities, context, gains)
    stays bit for bit, the rate–distortion score falls, and the file's tiles are still coded
    with the tables every release shares (the decoder decodes them without the new analysis)."""
    base, init = _tiny_run(tmp_path)
    with pytest.raises(ConfigError, match="multiple of 64"):
        synth.SynthTrainConfig(crop=96, analysis=True)
    cfg = synth.SynthTrainConfig(init=str(init), data=str(tmp_path / "tiles.npz"),
                                 split=str(tmp_path / "split.json"), crop=64, batch=4, lr=2e-3,
                                 lr_final=1e-3, total_steps=60, val_every=30, edge_prob=0.5, analysis=True)
    synth.train(cfg, tmp_path / "run", minutes=5, resume=False, threads=1)
    rows = [r.split(",") for r in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1:]]
    assert float(rows[0][3]) == 1.0 and float(rows[0][4]) == 1.0  # scores relative to the start
    assert float(rows[-1][3]) < 1.0 and float(rows[-1][4]) < 1.0
    lm = load_checkpoint(tmp_path / "run" / "last.pt")
    changed = {k.split(".")[0] for k, v in lm.model.state_dict().items() if not torch.equal(v, base.state_dict()[k])}
    assert changed == {"g_s", "g_a", "h_a"}
    # a file of the new encoder decodes with a network that has only its synthesis and the old rest
    g = synthetic_grid(96, 112, seed=9)
    new = learned.as_rd_model(lm)
    head, streams = learned.encode(g, new, level=2)
    dec_net = HyperpriorModel(TINY)
    dec_net.load_state_dict({k: (v if k.startswith("g_s.") else base.state_dict()[k])
                             for k, v in lm.model.state_dict().items()})
    dec = learned.RDModel(net=dec_net.eval(), tables=new.tables, model_id=new.model_id, name=new.name,
                          level_ratios=new.level_ratios)
    np.testing.assert_array_equal(learned.decode(head, streams, dec).values,
                                  learned.decode(head, streams, new).values)


def test_hyper_trains_the_hyper_synthesis_and_gains_and_keeps_densities_and_context(tmp_path):
    """``hyper=True`` (with the analysis only): the hyper-synthesis and the gains train too,
    the densities and the context stay bit for bit, and the score falls."""
    with pytest.raises(ConfigError, match="with the analysis"):
        synth.SynthTrainConfig(hyper=True)
    base, init = _tiny_run(tmp_path)
    cfg = synth.SynthTrainConfig(init=str(init), data=str(tmp_path / "tiles.npz"),
                                 split=str(tmp_path / "split.json"), crop=64, batch=4, lr=2e-3,
                                 lr_final=1e-3, total_steps=30, val_every=30, edge_prob=0.5,
                                 analysis=True, hyper=True)
    synth.train(cfg, tmp_path / "run", minutes=5, resume=False, threads=1)
    rows = [r.split(",") for r in (tmp_path / "run" / "metrics.csv").read_text().splitlines()[1:]]
    assert float(rows[-1][3]) < 1.0 and float(rows[-1][4]) < 1.0
    lm = load_checkpoint(tmp_path / "run" / "last.pt")
    changed = {k.split(".")[0] for k, v in lm.model.state_dict().items() if not torch.equal(v, base.state_dict()[k])}
    assert changed == {"g_s", "g_a", "h_a", "h_s", "gain"}


def test_the_distortion_counts_a_cell_at_most_what_its_outlier_correction_costs():
    err2 = torch.tensor([[0.0, 0.01, 4.0, 100.0], [1.0, 1.0, 1.0, 1.0]])
    lam = torch.tensor([2.0, 0.5])
    torch.testing.assert_close(synth.distortion(err2, lam, 0.0), err2.mean(1))  # plain MSE
    got = synth.distortion(err2, lam, 6.0)  # caps: 6 / 2 = 3 and 6 / 0.5 = 12
    torch.testing.assert_close(got, torch.tensor([(0.0 + 0.01 + 3.0 + 3.0) / 4, 1.0]))
    assert bool((lam * got <= 6.0).all())  # λ · distortion: at most the correction's bits per cell
    with pytest.raises(ConfigError, match="outlier_bits"):
        synth.SynthTrainConfig(outlier_bits=-1.0)


def test_the_estimated_bits_are_the_blocks_own_latents_and_hyper_latents():
    """``code_windows``' bits per cell (rounded symbols) are those of the block's 8×8 latents
    (64 cells of border: latents 4..11) and 2×2 hyper-latents (1..2) of the window's analysis,
    counted here from the geometry rather than the module's constants."""
    torch.manual_seed(0)
    net = HyperpriorModel(TINY).eval()
    x = torch.randn(2, 1, 256, 256)
    level = torch.tensor([1, 3])
    with torch.no_grad():
        _, bpc = synth.code_windows(net, x, level, np.zeros((2, 4), bool))
        y = net.analyse(x, level)
        z = torch.round(net.hyper_analyse(y))
        mean, scale = net.conditional(y, *net.hyper_params(z))
        from topoae.models.entropy import gaussian_likelihood
        yb = -torch.log2(gaussian_likelihood(torch.round(y - mean), scale))[..., 4:12, 4:12]
        zb = -torch.log2(net.z_density.likelihood(z))[..., 1:3, 1:3]
        want = (yb.reshape(2, -1).sum(1) + zb.reshape(2, -1).sum(1)) / 128 ** 2
    torch.testing.assert_close(bpc, want)
    assert bool((bpc > 0).all())
