"""The latents' spatial context: passes, coding with it, old files, training it (tiny models)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from topoae.checkpoint import load_checkpoint, save_checkpoint
from topoae.codec import container, learned, tables
from topoae.errors import ModelMismatchError, StoreError
from topoae.io.synthetic import synthetic_grid
from topoae.models.context import SCHEDULES, pass_masks
from topoae.models.hyperprior import HyperpriorConfig, HyperpriorModel
from topoae.training.rd import RDTrainConfig

PLAIN = HyperpriorConfig(channels=16, latent_channels=24, hyper_channels=16)
CTX = HyperpriorConfig(channels=16, latent_channels=24, hyper_channels=16, context="checkerboard",
                       context_channels=8)


def _plain(seed: int = 0) -> HyperpriorModel:
    torch.manual_seed(seed)
    return HyperpriorModel(PLAIN).eval()


def _with_context(plain: HyperpriorModel, *, trained: bool = True,
                  schedule: str = "checkerboard") -> HyperpriorModel:
    """``plain``'s weights plus a context; ``trained``: its last layers moved off zero."""
    net = HyperpriorModel(replace(CTX, context=schedule)).eval()
    missing, unexpected = net.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("context.") for k in missing)
    if trained:
        torch.manual_seed(1)
        with torch.no_grad():
            for pass_net in net.context.nets:
                for p in pass_net.params[-1].parameters():
                    p.normal_(0.0, 0.3)
    return net


@pytest.fixture(scope="module")
def grid():
    return synthetic_grid(200, 260, seed=3)


@pytest.fixture(scope="module")
def models():
    plain = _plain()
    t = tables.freeze(plain.z_density)
    rd_plain = learned.RDModel(net=plain, tables=t, model_id="a" * 64)
    rd_ctx = learned.RDModel(net=_with_context(plain), tables=t, model_id="b" * 64,
                             same_coding_as=("a" * 64,), without_context=("a" * 64,))
    return rd_plain, rd_ctx


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_passes_cover_every_latent_once(schedule):
    for shape in ((3, 4, 4), (2, 5, 7), (1, 1, 1)):
        masks = pass_masks(schedule, shape)
        assert len(masks) == SCHEDULES[schedule]
        total = sum(m.long() for m in masks)
        assert torch.equal(total, torch.ones(shape, dtype=torch.long))
        anchors = masks[0][0]
        assert bool(anchors[0, 0]) and (shape[2] == 1 or not bool(anchors[0, 1]))


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_the_coders_sparse_pass_is_the_dense_one(schedule):
    """``pass_params_at`` (the coder's: only the pass's positions, channels and live taps)
    gives what ``pass_params`` gives on the pass's mask, to float64 rounding, on an odd shape."""
    net = _with_context(_plain(), schedule=schedule)
    ctx = net.context.double()
    m, h, w = 24, 7, 9
    g = torch.Generator().manual_seed(5)
    y = 4 * torch.randn(1, m, h, w, generator=g, dtype=torch.float64)
    mean = torch.randn(1, m, h, w, generator=g, dtype=torch.float64)
    scale = 0.2 + 3 * torch.rand(1, m, h, w, generator=g, dtype=torch.float64)
    masks = ctx.masks((m, h, w))
    seen = torch.zeros(m, h, w, dtype=torch.bool)
    with torch.no_grad():
        for k in range(1, len(masks)):
            seen |= masks[k - 1]
            sym = torch.round(y - mean) * seen
            dense_m, dense_s = ctx.pass_params(k, (sym + mean) * seen, sym, mean, scale)
            sparse_m, sparse_s = ctx.pass_params_at(k, (sym + mean) * seen, sym, mean, scale)
            assert sparse_m.shape == (int(masks[k].sum()),)
            assert torch.allclose(sparse_m, dense_m[0][masks[k]], rtol=0, atol=1e-10)
            assert torch.allclose(sparse_s, dense_s[0][masks[k]], rtol=1e-12, atol=0)
            assert not torch.equal(dense_m[0][masks[k]], mean[0][masks[k]])  # the context acts


def test_an_untrained_context_changes_nothing():
    plain = _plain()
    net = _with_context(plain, trained=False)
    y = torch.randn(2, 24, 6, 6) * 3
    mean, scale = torch.randn(2, 24, 6, 6), torch.rand(2, 24, 6, 6) + 0.2
    m2, s2 = net.conditional(y, mean, scale)
    assert torch.equal(m2, mean) and torch.allclose(s2, scale.clamp_min(0.11))


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_the_context_is_causal(schedule):
    """A pass's parameters depend on the passes before it, not on its own or later ones."""
    net = _with_context(_plain(), schedule=schedule)
    y = torch.randn(1, 24, 6, 6) * 4
    mean, scale = torch.zeros_like(y), torch.ones_like(y)
    masks = pass_masks(schedule, (24, 6, 6))
    mu1, sc1 = net.conditional(y, mean, scale)
    for k in range(1, len(masks)):
        later = sum(m.long() for m in masks[k:]).bool()[None]
        y2 = torch.where(later, y + 7.0, y)  # change pass k and the ones after it
        mu2, sc2 = net.conditional(y2, mean, scale)
        now = masks[k][None]
        assert torch.equal(mu1[now], mu2[now]) and torch.equal(sc1[now], sc2[now])
        assert not torch.equal(mu1[now], mean[now])  # it does use the passes before


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_context_files_round_trip_and_differ_from_plain(models, grid, schedule):
    rd_plain, rd_ctx = models
    if schedule != "checkerboard":
        rd_ctx = learned.RDModel(net=_with_context(rd_plain.net, schedule=schedule), tables=rd_plain.tables,
                                 model_id="d" * 64)
    h, s = learned.encode(grid, rd_ctx, level=2)
    hp, sp = learned.encode(grid, rd_plain, level=2)
    assert "context" not in h["codec"]  # the model id says it: no byte in the file
    assert s["tile:0,0"] != sp["tile:0,0"]
    header, streams = container.unpack(learned.to_bytes(h, s))
    out1 = learned.decode(header, streams, rd_ctx)
    out2 = learned.decode(header, streams, rd_ctx)
    assert np.array_equal(out1.values, out2.values)
    assert out1.shape == grid.shape
    # what the decoder rebuilds is what the encoder coded: its ŷ
    geo = learned.tile_layout(*grid.shape, 512, 32, learned.ALIGN)
    cfg = learned.RDCodecConfig(**h["codec"], context=schedule)
    nodes = learned._scan(grid, 64, cfg.node_step(rd_ctx.net.config))[0]
    y0 = learned._analyse_tile(rd_ctx.fast, grid, nodes, geo, cfg, 0, 0)
    blob, yhat = learned._code_tile(rd_ctx, y0, 2, schedule)
    assert blob == s["tile:0,0"]
    got = learned._decode_tile(rd_ctx, blob, yhat.shape[1:], 2, schedule)
    assert np.array_equal(got, yhat)


def test_context_decoding_does_not_depend_on_threads(models, grid):
    """Encoded on one thread, decoded on two: the same symbols and scale indices (the
    probability path), and the same grid up to the float32 synthesis' rounding."""
    _, rd_ctx = models
    old = torch.get_num_threads()
    geo = learned.tile_layout(*grid.shape, 512, 32, learned.ALIGN)
    shape = tuple(-(-n // 16) for n in (geo.span(0, 0)[1] - geo.span(0, 0)[0], geo.span(0, 1)[1] - geo.span(0, 1)[0]))
    try:
        torch.set_num_threads(1)
        h, s = learned.encode(grid, rd_ctx, level=3)
        a = learned.decode(h, s, rd_ctx).values
        sym_a = learned.decode_symbols(rd_ctx, s["tile:0,0"], shape, 3, rd_ctx.net.config.context)
        torch.set_num_threads(2)
        b = learned.decode(h, s, rd_ctx).values
        sym_b = learned.decode_symbols(rd_ctx, s["tile:0,0"], shape, 3, rd_ctx.net.config.context)
    finally:
        torch.set_num_threads(old)
    for x, y in zip(sym_a, sym_b, strict=True):
        if x.dtype.kind in "iu":
            assert np.array_equal(x, y)
    assert np.array_equal(sym_a[3], sym_b[3])  # scale indices
    assert np.allclose(a, b, atol=1e-3)


def test_files_without_context_decode_with_a_release_that_adds_one(models, grid):
    """A release that only adds a context lists the old id: its files decode as before."""
    rd_plain, rd_ctx = models
    h, s = learned.encode(grid, rd_plain, level=2)
    assert np.array_equal(learned.decode(h, s, rd_plain).values, learned.decode(h, s, rd_ctx).values)


def test_a_context_file_needs_the_model_with_that_context(models, grid):
    rd_plain, rd_ctx = models
    h, s = learned.encode(grid, rd_ctx, level=1)
    with pytest.raises(ModelMismatchError, match="made with model"):
        learned.decode(h, s, rd_plain)
    with pytest.raises(StoreError, match="damaged|do not match"):
        learned.decode(h, s, rd_plain, force=True)  # forced: caught, not a wrong grid
    with pytest.raises(ModelMismatchError, match="context"):
        learned._decode_tile(rd_plain, s["tile:0,0"], (13, 17), 1, "checkerboard")


def test_the_context_saves_bits_once_trained(tmp_path):
    """A short run of the context trainer on synthetic tiles: the transforms stay frozen
    bit for bit, the context learns (validation bits below the hyperprior's alone), and
    the checkpoint codes."""
    from topoae.training import context as ctx_train

    plain = _plain()
    init = tmp_path / "init.pt"
    save_checkpoint(init, plain, RDTrainConfig(model=PLAIN), normalise={"mode": "offset-field"})
    tiles = np.stack([np.rint(synthetic_grid(128, 128, seed=s).values).astype(np.int16) for s in range(5)])
    names = np.array([f"t{k}" for k in range(5)])
    np.savez(tmp_path / "tiles.npz", names=names, tiles=tiles)
    (tmp_path / "split.json").write_text(json.dumps({"train": list(names[:4]), "val": [names[4]],
                                                     "test": []}))
    cfg = ctx_train.ContextTrainConfig(model=CTX, init=str(init), data=str(tmp_path / "tiles.npz"),
                                       split=str(tmp_path / "split.json"), symmetries=2, batch=4,
                                       lr=3e-3, total_steps=150, val_every=50)
    ctx_train.train(cfg, tmp_path / "run", minutes=5, resume=False, threads=1)
    lm = load_checkpoint(tmp_path / "run" / "best.pt")
    net = lm.model
    assert net.config.context == "checkerboard"
    for k, v in plain.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert float(rows[-1].split(",")[3]) < 0  # mean log(bits with / without context)
    rd = learned.as_rd_model(lm)
    g = synthetic_grid(96, 96, seed=9)
    h, s = learned.encode(g, rd, level=1)
    assert learned.decode(h, s, rd).shape == g.shape
    # the cached latents name what they were made from; other symmetries are analysed again
    cache = tmp_path / "run" / "latents.npz"
    assert np.load(cache)["train"].shape[0] == 4 * 2
    assert str(np.load(cache)["key"]) == ctx_train.latents_key(net, cfg)
    one = replace(cfg, symmetries=1, total_steps=1, val_every=1)
    ctx_train.train(one, tmp_path / "run", minutes=1, resume=False, threads=1)
    assert np.load(cache)["train"].shape[0] == 4
    assert str(np.load(cache)["key"]) != ctx_train.latents_key(net, cfg)
