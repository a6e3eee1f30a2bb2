"""The context-adaptive coder of correction grids: exact, deterministic, guarded, and smaller
than zstd where non-zero cells cluster."""

from __future__ import annotations

import numpy as np
import pytest

from topoae.codec import context_coder, residual
from topoae.errors import StoreError


def _clustered(seed: int, shape=(200, 300)) -> np.ndarray:
    """Mostly zero; non-zero (some far past the alphabet) in rough patches, as model errors are."""
    rng = np.random.default_rng(seed)
    rough = np.zeros(shape)
    for _ in range(6):
        r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        rr, cc = np.ogrid[:shape[0], :shape[1]]
        rough += np.exp(-((rr - r) ** 2 + (cc - c) ** 2) / (2 * 15.0 ** 2))
    q = np.rint(rng.laplace(0, 3 * rough)).astype(np.int64)
    q[rng.random(shape) < 0.001] = rng.integers(-5000, 5000)  # spikes: escapes
    return q


@pytest.mark.parametrize("seed", [0, 1])
def test_round_trip_exact_and_deterministic(seed):
    q = _clustered(seed)
    assert np.abs(q).max() > context_coder.A  # escapes exercised
    blob = context_coder.encode(q)
    assert blob == context_coder.encode(q.copy())
    np.testing.assert_array_equal(context_coder.decode(blob, q.shape), q)


@pytest.mark.parametrize("q", [np.zeros((1, 1), np.int64), np.zeros((3, 70), np.int64),
                               np.full((5, 4), -context_coder.A, np.int64),
                               np.arange(-40, 40, dtype=np.int64).reshape(8, 10)])
def test_edge_grids_round_trip(q):
    np.testing.assert_array_equal(context_coder.decode(context_coder.encode(q), q.shape), q)


def test_the_frame_of_a_fixed_grid_is_pinned():
    """The bytes are the format: a change in the model, the contexts or the range coder's
    quantisation of the probabilities (``constriction``) would make old files undecodable."""
    q = np.array([[0, 0, 1, -1, 0, 0], [0, 2, -3, 0, 0, 0], [0, 0, 0, 0, 40, -13], [1, 0, 0, -1, 0, 12]])
    frame = bytes.fromhex("031c01004ce842f51903cac6879c7040")
    assert context_coder.encode(q) == frame
    np.testing.assert_array_equal(context_coder.decode(frame, q.shape), q)


def test_extreme_values_round_trip_and_impossible_ones_are_refused():
    lim = context_coder.LIMIT
    q = np.array([[-lim + 1, 3], [0, lim - 1]], dtype=np.int64)
    np.testing.assert_array_equal(context_coder.decode(context_coder.encode(q), q.shape), q)
    for bad in (np.array([[1.5]]), np.array([[-(2**63)]], dtype=np.int64), np.zeros((0, 3), np.int64)):
        with pytest.raises(ValueError):
            context_coder.encode(bad)
    huge = np.array([[-(2**63), 1], [2, 3]], dtype=np.int64)  # residual frames fall back to zstd
    frame = residual.encode_residual(huge)
    assert frame[0] != 2
    np.testing.assert_array_equal(residual.decode_residual(frame, huge.shape), huge)


def test_smaller_than_zstd_on_clustered_corrections():
    q = _clustered(2)
    ctx = len(context_coder.encode(q))
    z = min(len(residual.encode_ints(q)), len(residual.encode_ints(residual.lorenzo(q))))
    assert ctx < 0.9 * z


def test_residual_frames_use_it_unless_told_not_to():
    q = _clustered(3)
    frame = residual.encode_residual(q)
    assert residual.PREDICTORS[frame[0]].startswith("context")
    np.testing.assert_array_equal(residual.decode_residual(frame, q.shape), q)
    plain = residual.encode_residual(q, zstd_only=True)  # the patch codec's format-1 frames
    assert plain[0] in (0, 1) and len(plain) > len(frame)


def test_damaged_frames_are_store_errors():
    q = _clustered(4)
    blob = context_coder.encode(q)
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 0x5A
    for b in (bytes(bad), blob[:len(blob) // 2], blob[:3], b""):
        with pytest.raises(StoreError):
            context_coder.decode(b, q.shape)
    with pytest.raises(StoreError):
        context_coder.decode(blob, (q.shape[0] + 1, q.shape[1]))


def _sparse(seed: int, shape=(512, 512), rate=0.004) -> np.ndarray:
    """A tile's outlier corrections at a middle level: a few hundred, mostly ±1."""
    rng = np.random.default_rng(seed)
    q = np.zeros(shape, np.int64)
    hit = rng.random(shape) < rate
    q[hit] = rng.choice([-2, -1, 1, 2], size=int(hit.sum()), p=[0.15, 0.35, 0.35, 0.15])
    return q


def test_the_primed_counts_are_frozen():
    """Primed frames decode only with exactly these starting counts."""
    import hashlib

    data = context_coder.COUNTS_FILE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == context_coder.COUNTS_SHA256 == (
        "95fe51ee91b654a6b14195120c99ac7dcf2f9271aee18166a6866cbb963f0fa6")
    c = context_coder.primed_counts()
    assert c.shape == (context_coder.CONTEXTS, context_coder.K) and int(c.min()) >= 1
    assert not c.flags.writeable


@pytest.mark.parametrize("q", [_clustered(5), _sparse(0), np.zeros((3, 7), np.int64)])
def test_primed_frames_round_trip_and_differ_from_plain_ones(q):
    blob = context_coder.encode(q, primed=True)
    assert blob == context_coder.encode(q.copy(), primed=True)
    np.testing.assert_array_equal(context_coder.decode(blob, q.shape, primed=True), q)
    frame = residual.encode_residual(q)
    np.testing.assert_array_equal(residual.decode_residual(frame, q.shape), q)
    if q.any():
        assert blob != context_coder.encode(q)
        with pytest.raises(StoreError):  # read with the wrong counts: the hash catches it
            context_coder.decode(blob, q.shape)


def test_primed_frames_are_smaller_on_sparse_corrections():
    q = _sparse(1)
    primed, plain = len(context_coder.encode(q, primed=True)), len(context_coder.encode(q))
    assert primed < 0.97 * plain
    frame = residual.encode_residual(q)
    assert residual.PREDICTORS[frame[0]] == "context-primed" and len(frame) == primed + 1


def test_the_primed_frame_of_a_fixed_grid_is_pinned():
    q = np.array([[0, 0, 1, -1, 0, 0], [0, 2, -3, 0, 0, 0], [0, 0, 0, 0, 40, -13], [1, 0, 0, -1, 0, 12]])
    frame = context_coder.encode(q, primed=True)
    assert frame.hex() == PRIMED_FRAME
    np.testing.assert_array_equal(context_coder.decode(frame, q.shape, primed=True), q)


PRIMED_FRAME = "031c01004ce842f5ecaba2fa0019874ca4ccb1d1"


def test_changed_or_missing_counts_are_a_clear_error(tmp_path, monkeypatch):
    """Other counts would write files no other install decodes: refused, as is a missing file."""
    changed = tmp_path / "counts.npy"
    c = np.array(context_coder.primed_counts())
    c[0, 0] += 1
    np.save(changed, c)
    q = _sparse(2, (40, 40), 0.05)
    for path, match in ((changed, "frozen counts"), (tmp_path / "missing.npy", "incomplete")):
        monkeypatch.setattr(context_coder, "COUNTS_FILE", path)
        context_coder.primed_counts.cache_clear()
        try:
            with pytest.raises(StoreError, match=match):
                residual.encode_residual(q)
        finally:
            context_coder.primed_counts.cache_clear()
    monkeypatch.undo()
    assert context_coder.primed_counts().shape == (context_coder.CONTEXTS, context_coder.K)


def _scarp(seed: int, shape=(256, 256)) -> np.ndarray:
    """Corrections along a sharp diagonal step the synthesis misses: many past the alphabet."""
    rng = np.random.default_rng(seed)
    q = np.zeros(shape, np.int64)
    for r in range(shape[0]):
        c = (r * 3) // 4 + 20
        q[r, c - 2:c + 3] = np.rint(rng.normal(0, 25, 5)).astype(np.int64)
    return q


@pytest.mark.parametrize("primed", [False, True])
def test_golomb_escapes_round_trip_and_are_kept_where_smaller(primed):
    q = _scarp(0)
    assert (np.abs(q) >= context_coder.A).sum() > 100
    varint = context_coder.encode(q, primed=primed)
    coded = context_coder.encode(q, primed=primed, golomb_escapes=True)
    assert len(coded) < len(varint)
    np.testing.assert_array_equal(context_coder.decode(coded, q.shape, primed=primed, golomb_escapes=True), q)
    assert context_coder.encode_best(q, primed=primed) == (True, coded)
    frame = residual.encode_residual(q)
    assert residual.PREDICTORS[frame[0]].endswith("golomb-escapes")
    np.testing.assert_array_equal(residual.decode_residual(frame, q.shape), q)
    # without escapes, or with a few large ones, the varint frame stays
    small = np.clip(q, -3, 3)
    assert context_coder.encode_best(small, primed=primed) == (False, context_coder.encode(small, primed=primed))


def test_the_golomb_escape_frame_of_a_fixed_grid_is_pinned():
    q = np.array([[0, 0, 1, -1, 0, 0], [0, 2, -3, 0, 0, 0], [0, 0, 0, 0, 40, -13], [1, 0, 0, -1, 0, 12]])
    frame = context_coder.encode(q, golomb_escapes=True)
    assert frame.hex() == "030300072e4ce842f51903cac6879c7040"  # 3 escapes, a 3-byte Exp-Golomb frame
    np.testing.assert_array_equal(context_coder.decode(frame, q.shape, golomb_escapes=True), q)


def test_damaged_golomb_escapes_are_store_errors():
    q = _scarp(1)
    blob = context_coder.encode(q, golomb_escapes=True)
    n, pos = context_coder._get_uvarint(blob, 0)
    size, at = context_coder._get_uvarint(blob, pos)
    for bad in (blob[:at + size // 2], blob[:at] + bytes([0xFF]) + blob[at + 1:],
                bytes([0x02]) + blob[1:]):
        with pytest.raises(StoreError):
            context_coder.decode(bad, q.shape, golomb_escapes=True)
