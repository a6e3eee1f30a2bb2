"""The learned rate–distortion codec: a region in, one ``.tae`` file out, and back.

Pipeline (encoder)::

    z (metres) ──► offset field nodes (int, lossless)        stream "offset"
               └─► residual r = (z − offset) / unit, NaN → 0
                   tiles of T×T cells, each analysed with a margin of M cells
                   (≥ the analysis receptive field), so the latent grid equals a
                   one-shot pass over the region ──► y (gained, per level)
                   per tile: ẑ = round(h_a(y)); μ, σ = h_s(ẑ) in float64;
                   symbols round(y − μ) coded against zero-mean tables   stream "tile:i,j"
                   (with a spatial context, in passes: each later pass's μ, σ
                   corrected from the latents decoded before, see _Passes)
    NaN mask per tile (when any)                                          stream "mask:i,j"
    per tile, the synthesis x̂ of the coded latents; a linear loop filter
    fitted to x̂ where it pays (format 7, :mod:`.loop_filter`)            stream "filter"
    error-bounded residual per tile (``max_error``)                       stream "res:i,j"
    or sparse outlier corrections against the filtered x̂                 stream "out:i,j"

The decoder rebuilds ŷ = symbols + μ tile by tile, synthesises each tile from
its latents plus a margin of neighbouring latents (so tile borders do not show),
applies the tile's loop filter, adds the offset field and returns the exact input grid: shape, coordinates,
name, attributes (plus a history line), CRS and dtype. Memory is bounded by a
band of three tile rows, whatever the region's size.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import xarray as xr

from topoae import offset_field
from topoae._version import __version__
from topoae.codec import container, corrections, entropy, tables
from topoae.codec import loop_filter as _loop
from topoae.codec import refine as _refine
from topoae.codec import residual as _res
from topoae.codec.files import coord_has_stream, pack_coord, unpack_coord
from topoae.codec.patch import _check_grid as _check_labelled_grid
from topoae.codec.patch import _crs_text
from topoae.codec.patch_model import jsonable as _jsonable
from topoae.errors import ConfigError, ModelMismatchError, RegionError, StoreError
from topoae.io.grid import DESCENDING, add_history, data_attrs, descending_dims, file_attrs
from topoae.layout import PatchLayout
from topoae.models.context import SCHEDULES, LatentContext, pass_masks
from topoae.models.hyperprior import RELEASE_PARTS, HyperpriorModel
from topoae.models.inference import InferenceTransforms, mirror_edges

FORMAT = "topoae-rd"
#: the synthesis' handling of the region's edges (:attr:`RDCodecConfig.edge`): all it knows,
#: and what new files use
EDGES = ("zero", "mirror")
EDGE = "mirror"
#: cells the coded grid is padded to a multiple of (:attr:`RDCodecConfig.align`): what they
#: may be, and what new files use
ALIGNS = (16, 64)
ALIGN = 16
#: the offset field's nodes in steps of this many metres below level COARSE_OFFSET_BELOW
#: (format 8): the latents code a block's level again anyway, so 1 m nodes (the model's step)
#: spent 10–11 bits a 64×64 block on precision the synthesis does not need. Measured on six
#: validation and training tiles (``RESULTS.md``): files 2–3 % smaller at level 0 for 0–1 %
#: more RMSE, 1–1.5 % smaller at level 2 for the same RMSE; no gain from level 4 on
COARSE_OFFSET_STEP = 16.0
COARSE_OFFSET_BELOW = 4


#: quality levels between the trained ones: steps of 1/LEVEL_STEPS of a level (the gains
#: interpolated, :meth:`HyperpriorModel.gains`), so ``--ratio`` can land near its target
LEVEL_STEPS = 8


def quality_level(level: Any) -> int | float:
    """``level`` as the codec stores it: an int for a trained level, else a float on the
    1/:data:`LEVEL_STEPS` grid (a :class:`ConfigError` off that grid)."""
    if isinstance(level, bool) or not isinstance(level, (int, float, np.integer, np.floating)):
        raise ConfigError(f"--quality must be a number, got {level!r}")
    v = float(level)
    ok = math.isfinite(v) and abs(v) < 1e6
    k = round(v * LEVEL_STEPS) if ok else 0
    if not ok or abs(v * LEVEL_STEPS - k) > 1e-9:
        raise ConfigError(f"--quality must be a multiple of 1/{LEVEL_STEPS}, got {level}")
    return k // LEVEL_STEPS if k % LEVEL_STEPS == 0 else k / LEVEL_STEPS


def file_level(header: dict[str, Any], levels: int) -> int | float:
    """The quality level a file's header holds, checked (a :class:`StoreError` naming it)."""
    raw = (header.get("codec") or {}).get("level") if isinstance(header, dict) else None
    try:
        lev = quality_level(raw)
    except ConfigError:
        lev = None
    if lev is None or lev != raw or not 0 <= lev <= levels - 1:
        raise StoreError(f"the file's header holds an invalid quality level ({raw!r}; this model has "
                         f"0..{levels - 1} in steps of 1/{LEVEL_STEPS})")
    return lev


def table_level(level: float) -> int:
    """The trained level whose hyper-latent tables code ``level`` (the nearest)."""
    return int(math.floor(float(level) + 0.5))


@dataclass(frozen=True)
class RDCodecConfig:
    """How a region is coded; stored in every file's header."""

    level: int | float  # a trained level (int) or one between two (float, see quality_level)
    tile: int = 512  # cells per tile side (multiple of 64)
    #: analysis margin in cells: a latent sees 30 cells before its 16-cell block and 15 after
    margin: int = 32
    #: synthesis margin in latents: a block's cells see one latent before and two after
    synth_margin: int = 2
    #: what the synthesis sees past the region's edges: "mirror", ``synth_margin`` latents
    #: mirrored (:func:`~topoae.models.inference.mirror_edges`; new files), or "zero", the
    #: convolutions' zero padding (files before format 5: 3–13× the interior's squared error
    #: on the outermost 4 cells)
    edge: str = "zero"
    #: the coded grid is the region padded (mirrored) to a multiple of this many cells: 16,
    #: one latent (new files), or 64, one hyper-latent (files before format 5: a 202×201
    #: region coded 256×256 cells, 60 % more latents than 208×208)
    align: int = 64
    max_error: float | None = None
    keep_attrs: bool = True
    outliers: bool = True  # sparse corrections of the cells the model misses (spikes)
    #: bits one outlier correction is taken to cost (sets the correction threshold, see
    #: :func:`outlier_step`); files before format 3 (zstd-coded corrections) used 10
    outlier_bits: float = 10.0
    coastline: str | None = None  # "exact": every cell keeps the sign of the original
    relative_error: float | None = None  # with max_error: |err| ≤ min(E, max(floor, r·|z|))
    floor: float = 0.5
    scale_exp: int = 0  # the region's roughness s = 2^(scale_exp/4) metres per cell
    #: metres per unit of the offset field's nodes; 0: the model's (1 m; files before format 8).
    #: Below level :data:`COARSE_OFFSET_BELOW` new files take :data:`COARSE_OFFSET_STEP`
    offset_step: float = 0.0
    #: the latents' spatial context (:mod:`topoae.models.context`): the encoding model's
    #: schedule, or "" (one pass, hyperprior only). Not stored in the header: the file's model
    #: id says it (:meth:`RDModel.file_context`)
    context: str = ""

    @property
    def scale(self) -> float:
        return offset_field.scale_from_exponent(self.scale_exp)

    def node_step(self, mc: Any) -> float:
        """Metres per unit of the offset field's nodes (``mc``: the network's config)."""
        return float(self.offset_step) if self.offset_step else float(mc.offset_step)

    def check(self, levels: int) -> None:
        quality_level(self.level)
        if not 0 <= self.level <= levels - 1:
            raise ConfigError(f"--quality must be 0..{levels - 1}, got {self.level}")
        if self.tile % 64 or self.tile < 64:
            raise ConfigError(f"tile must be a positive multiple of 64 cells, got {self.tile}")
        if self.margin % 16:
            raise ConfigError("margin must be a multiple of 16 cells")
        if self.relative_error is not None:
            if self.max_error is None:
                raise ConfigError("--relative-error needs --max-error (the rule is "
                                  "|error| <= min(E, max(floor, r*|z|)))")
            if not (math.isfinite(self.relative_error) and 0 < self.relative_error < 1):
                raise ConfigError(f"--relative-error must be in (0, 1), got {self.relative_error}")
            if not (math.isfinite(self.floor) and self.floor > 0):
                raise ConfigError(f"--floor must be a positive number of metres, got {self.floor}")
        if self.context and self.context not in SCHEDULES:
            raise ConfigError(f"unknown latent context {self.context!r}")
        if self.edge not in EDGES:
            raise ConfigError(f"unknown synthesis edge {self.edge!r}; one of {', '.join(EDGES)}")
        if self.align not in ALIGNS or self.tile % self.align:
            raise ConfigError(f"the coded grid's alignment must be one of {ALIGNS} and divide the tile, "
                              f"got {self.align!r}")
        if self.coastline not in (None, "exact"):
            raise ConfigError(f"--coastline must be exact or off, got {self.coastline!r}")
        if self.max_error is not None and not (math.isfinite(self.max_error) and self.max_error > 0):
            raise ConfigError(f"--max-error must be a positive number of metres, got {self.max_error}")


@dataclass
class RDModel:
    """A hyperprior model ready to code: network, frozen tables and id.

    ``h_s64`` is a float64 copy of the hyper-synthesis, made once: the decisive
    probability path (scale indices) runs in float64 on every tile.
    """

    net: HyperpriorModel
    tables: tables.Tables
    model_id: str
    name: str = "hyperprior"
    level_ratios: tuple[float, ...] = ()
    #: the id of an earlier release of the same network with the tables of
    #: :func:`tables.freeze` (before :mod:`topoae.codec.table_fit` refitted them): its files
    #: still decode with this model
    network_of: str = ""
    #: ids of earlier releases with this network *and* these tables (they differ only in what
    #: coding never reads, e.g. the ensemble's calibrated τ): their files decode with this model
    same_coding_as: tuple[str, ...] = ()
    #: ids of earlier releases whose files code their latents without the spatial context this
    #: network has (it was added later; :meth:`file_context`)
    without_context: tuple[str, ...] = ()
    #: makes the release this one's synthesis replaced (:func:`as_rd_model` reads it from the
    #: checkpoint's ``extra["earlier_synthesis"]``), on first use: see :attr:`earlier_synthesis`
    replaced: Callable[[], RDModel] | None = field(default=None, repr=False)
    #: the ensemble's calibrated τ per level for this release's files (empty: none recorded;
    #: :func:`topoae.codec.ensemble.tau_for` then reads the weights' own ``sample_tau``). τ is
    #: in gained-latent units, so a release that retrained the gains keeps the replaced τ
    #: for the replaced release's files
    sample_tau: tuple[float, ...] = ()
    h_s64: torch.nn.Module = field(init=False, repr=False)
    #: float64 copy of the latent context (None without one): it decides scale indices too
    ctx64: LatentContext | None = field(init=False, repr=False, default=None)
    fast: InferenceTransforms = field(init=False, repr=False)
    _earlier: RDModel | None = field(init=False, repr=False, default=None)
    _replaced: RDModel | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        if self.tables.z_levels and len(self.tables.z_levels) != self.levels:
            raise ModelMismatchError(f"the model has {self.levels} quality levels but hyper-latent "
                                     f"tables for {len(self.tables.z_levels)}")
        self.h_s64 = copy.deepcopy(self.net.h_s).double().eval()
        if self.net.context is not None:
            self.ctx64 = copy.deepcopy(self.net.context).double().eval()
        self.fast = InferenceTransforms(self.net)

    @property
    def levels(self) -> int:
        return self.net.config.levels

    @property
    def earlier_synthesis(self) -> RDModel | None:
        """The release this one's synthesis replaced: the synthesis differs (and maybe the
        analysis, which no decoder runs, and the hyper-synthesis, gains and fitted tables, which
        the record keeps), the densities and context are the same, so its files (and those of
        the releases it decoded) decode with it. Made on first use and kept: each release is a
        whole network with its float64 copies (~60 MB), which a file of the current release
        never needs."""
        if self._replaced is None and self.replaced is not None:
            self._replaced = self.replaced()
        return self._replaced

    def for_file(self, file_model: str) -> RDModel | None:
        """The model that decodes a file made with model ``file_model`` (its 16-hex id):
        this one, an earlier release that codes the same (:attr:`same_coding_as`), its release
        before the tables were refitted (same network, original tables), or None."""
        if file_model == self.model_id[:16] or file_model in {m[:16] for m in self.same_coding_as}:
            return self
        if self.earlier_synthesis is not None:
            before = self.earlier_synthesis.for_file(file_model)
            if before is not None:
                return before
        if self.network_of and file_model == self.network_of[:16]:
            if self._earlier is None:
                self._earlier = RDModel(net=self.net, tables=tables.freeze(self.net.z_density),
                                        model_id=self.network_of, name=self.name,
                                        level_ratios=self.level_ratios,
                                        without_context=(self.network_of,))
            return self._earlier
        return None

    def file_context(self, file_model: str) -> str:
        """The latent context the files of model ``file_model`` (16-hex id) were coded with:
        this network's, except for releases from before it had one."""
        if file_model in {m[:16] for m in self.without_context}:
            return ""
        return self.net.config.context


def is_rd_model(model: Any) -> bool:
    net = getattr(model, "model", model)
    return isinstance(model, RDModel) or isinstance(net, HyperpriorModel)


def as_rd_model(model: Any) -> RDModel:
    """An :class:`RDModel` from a ``LoadedModel`` of a hyperprior checkpoint (or itself)."""
    if isinstance(model, RDModel):
        return model
    net = getattr(model, "model", model)
    if not isinstance(net, HyperpriorModel):
        raise ConfigError("this codec needs a hyperprior model")
    extra = getattr(model, "extra", {}) or {}
    if "tables" in extra:
        t = tables.Tables.from_arrays({k: np.asarray(v) for k, v in extra["tables"].items()})
    else:
        t = tables.freeze(net.z_density)
    mid = getattr(model, "model_id", None) or _weights_id(net)
    return _release(net.eval(), t, mid, extra, tuple(float(v) for v in extra.get("level_ratios", ())))




def _release(net: HyperpriorModel, t: tables.Tables, mid: str, extra: dict[str, Any],
             ratios: tuple[float, ...], inherited_tau: tuple[float, ...] = ()) -> RDModel:
    """The coding model of a release whose record is ``extra``, with the release its synthesis
    replaced (``extra["earlier_synthesis"]``: that release's id, its synthesis weights
    (``g_s.*``, and the whole hyper-synthesis ``h_s.*`` and ``gain`` where those were replaced
    too: :data:`RELEASE_PARTS`), its probability tables where they differ from this release's
    (``tables``; absent: the same) and its own record; nested for a chain of them), made on
    first use from a copy of ``net`` with those weights; every record of the chain is checked
    now (:func:`_check_record`). Its τ is ``extra["sample_tau"]``; a record without one
    inherits the newer release's (``inherited_tau``)."""
    tau = _record_tau(extra) or inherited_tau
    replaced: Callable[[], RDModel] | None = None
    rec = extra.get("earlier_synthesis")
    if rec:
        t_old = _check_record(net, rec, t)

        def replaced_release() -> RDModel:
            old = copy.deepcopy(net)
            state = old.state_dict()
            state.update({k: torch.as_tensor(v) for k, v in rec["synthesis"].items()})
            old.load_state_dict(state)
            return _release(old.eval(), t_old, str(rec["model_id"]), dict(rec.get("extra", {})),
                            ratios, tau)
        replaced = replaced_release
    earlier = str((extra.get("tables_fitted") or {}).get("network_of", ""))
    same = tuple(str(m) for m in extra.get("same_coding_as", ()))
    plain = tuple(str(m) for m in extra.get("without_context", ()))
    return RDModel(net=net, tables=t, model_id=mid, level_ratios=ratios, network_of=earlier,
                   same_coding_as=same, without_context=plain, replaced=replaced, sample_tau=tau)


def _record_tau(extra: dict[str, Any]) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in extra.get("sample_tau", ()))
    except (TypeError, ValueError):
        raise ModelMismatchError("the weights' ensemble spread (sample_tau) is not a list of numbers") from None


def _check_record(net: HyperpriorModel, rec: Any, t: tables.Tables) -> tables.Tables:
    """The tables of the release record ``rec`` (``t``, the newer release's, unless it holds
    its own), after checking the record and those nested in it: the synthesis and whole groups
    of :data:`RELEASE_PARTS` with ``net``'s shapes and dtypes, an id, readable tables for the
    network's levels and τ. Anything else is a :class:`ModelMismatchError` when the weights
    load, not when a file first needs the release."""
    bad = ModelMismatchError("the weights' earlier synthesis does not fit their network")
    if not isinstance(rec, dict) or not isinstance(rec.get("synthesis"), dict) or "model_id" not in rec:
        raise bad
    state = net.state_dict()
    got = rec["synthesis"]
    parts = {k: {n for n in state if n == k or n.startswith(k + ".")} for k in RELEASE_PARTS}
    held = [k for k, names in parts.items() if names & set(got)]
    if ("g_s" not in held or set(got) != set().union(*(parts[k] for k in held))
            or any(tuple(torch.as_tensor(v).shape) != tuple(state[k].shape)
                   or torch.as_tensor(v).dtype != state[k].dtype for k, v in got.items())):
        raise bad
    inner = rec.get("extra", {})
    if not isinstance(inner, dict):
        raise bad
    t_old = t
    if rec.get("tables") is not None:
        try:
            t_old = tables.Tables.from_arrays({k: np.asarray(v) for k, v in rec["tables"].items()})
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            raise ModelMismatchError("the weights' earlier release has unreadable tables") from None
    if t_old.z_levels and len(t_old.z_levels) != net.config.levels:
        raise ModelMismatchError(f"the weights' earlier release has hyper-latent tables for "
                                 f"{len(t_old.z_levels)} levels, the network {net.config.levels}")
    _record_tau(inner)
    if inner.get("earlier_synthesis"):
        _check_record(net, inner["earlier_synthesis"], t_old)
    return t_old


def _weights_id(net: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# -- geometry ------------------------------------------------------------------------
def tile_layout(height: int, width: int, tile: int, context: int = 64, align: int = 64) -> PatchLayout:
    """The codec's tiles: ``tile`` × ``tile`` cells side by side from the first cell, on the
    grid padded to a multiple of ``align`` cells (16: one latent, new files; 64: one
    hyper-latent, files before format 5), the last row and column of tiles cut at that
    padding; each tile is analysed with ``context`` cells around it (its neighbours',
    mirrored about the edge cell past the grid: with the synthesis' mirrored latents (:attr:`RDCodecConfig.edge`) the outermost cells come out
    closer than with the edge cell repeated, 3 % less squared error over a 512² tile; the
    decoder never reads the grid, so this is the encoder's choice alone)."""
    return PatchLayout(height, width, tile, tile, edge="reflect", margin=0, align=align,
                       context=context, ragged=True)


def _read(grid: xr.DataArray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """float64 values at (reflected) row/col indices, read as one contiguous block."""
    r0, r1 = int(rows.min()), int(rows.max()) + 1
    c0, c1 = int(cols.min()), int(cols.max()) + 1
    block = np.asarray(grid.isel({grid.dims[0]: slice(r0, r1), grid.dims[1]: slice(c0, c1)}).values,
                       dtype=np.float64)
    return block[np.ix_(rows - r0, cols - c0)]


#: metres: no elevation on Earth is near this; a value beyond it is a fill value or other units
PLAUSIBLE = 100_000.0


def _check_values(z: np.ndarray, row0: int) -> None:
    """Refuse ±inf and values beyond :data:`PLAUSIBLE` (NaN marks missing cells): one such cell
    would spoil the coding of its whole neighbourhood, or of the whole region."""
    bad = ~np.isnan(z) & ~(np.abs(z) <= PLAUSIBLE)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise RegionError(
            f"{int(bad.sum())} cell(s) hold values that are not elevations in metres (e.g. "
            f"{z[r, c]:g} at row {row0 + int(r)}, column {int(c)}; the codec takes finite values "
            f"within ±{PLAUSIBLE:,.0f} m): mark missing cells as NaN or set the variable's _FillValue")


def _scan(grid: xr.DataArray, stride: int, step: float, cells: int = 1 << 20
          ) -> tuple[np.ndarray, bool, int]:
    """One pass over the grid in bands of rows (about ``cells`` cells each, at least
    ``stride`` rows, so memory stays bounded on wide grids too): the offset-field nodes,
    whether every valid value is a whole number, and the roughness exponent."""
    h, w = grid.shape
    means = []
    integer = True
    rsum, rcount = 0.0, 0
    band = max(stride, cells // max(w, 1) // stride * stride)
    prev = None
    for r0 in range(0, h, band):
        z = np.asarray(grid.isel({grid.dims[0]: slice(r0, min(h, r0 + band))}).values, dtype=np.float64)
        _check_values(z, r0)
        means.append(offset_field.block_means(z, stride))
        if integer:
            v = z[np.isfinite(z)]
            integer = bool(np.all(v == np.rint(v)))
        a, n = offset_field.roughness_sums(z if prev is None else np.vstack([prev, z]))
        if prev is not None:  # the joined row pair only adds the vertical step across the seam
            a0, n0 = offset_field.roughness_sums(prev)
            a, n = a - a0, n - n0
        rsum, rcount = rsum + a, rcount + n
        prev = z[-1:]
    rough = 2.0 * rsum / rcount if rcount else 1.0
    nodes = offset_field.nodes_from_means(np.concatenate(means, axis=0), step)
    return nodes, integer, offset_field.scale_exponent(rough)


# -- encoding ------------------------------------------------------------------------
def _h_s64(rd: RDModel, z_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """μ and σ from integer hyper-latents, in float64 (the decisive probability path)."""
    with torch.no_grad():
        mean, scale = HyperpriorModel.mean_scale(rd.h_s64(torch.from_numpy(z_hat[None].astype(np.float64))))
    return mean[0].numpy(), scale[0].numpy()


def _analyse_padded(fast: InferenceTransforms, grid: xr.DataArray, nodes: np.ndarray,
                    geo: PatchLayout, cfg: RDCodecConfig, i: int, j: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the analysis of tile (i, j) reads and gives, on the tile's span widened by
    ``geo.context`` cells: ungained latents (float32 ``(M, ·, ·)``), the normalised residual
    it analysed (NaN cells as 0) and the elevations read (NaN kept)."""
    mc = fast.net.config
    rows = geo.indices(i, i + 1, axis=0)  # the tile and its context, mirrored past the grid
    cols = geo.indices(j, j + 1, axis=1)
    z = _read(grid, rows, cols)
    off = offset_field.expand(nodes, (geo.height, geo.width), mc.offset_stride, cfg.node_step(mc),
                              rows=rows, cols=cols)
    r = np.where(np.isfinite(z), (z - off) / (mc.unit * cfg.scale), 0.0).astype(np.float32)
    return fast.analyse(torch.from_numpy(r)[None, None])[0].numpy(), r, z


def _analyse_tile(fast: InferenceTransforms, grid: xr.DataArray, nodes: np.ndarray,
                  geo: PatchLayout, cfg: RDCodecConfig, i: int, j: int) -> np.ndarray:
    """Ungained latents of tile (i, j), float32 ``(M, th/16, tw/16)``."""
    y, _, _ = _analyse_padded(fast, grid, nodes, geo, cfg, i, j)
    r0, r1 = geo.span(i, 0)
    c0, c1 = geo.span(j, 1)
    k = geo.context // 16
    return y[:, k:k + (r1 - r0) // 16, k:k + (c1 - c0) // 16]


def _check_context(rd: RDModel, context: str) -> None:
    if context and context != rd.net.config.context:
        raise ModelMismatchError(f"latents coded with the context {context!r} need a model that "
                                 f"has it (this one: {rd.net.config.context or 'none'})")


class _Passes:
    """The coding passes of one tile's latents, the same on both sides of the coder.

    Without a context (``context`` ""), one pass: every latent with the hyperprior's μ, σ.
    With one, the passes of its schedule (:func:`topoae.models.context.pass_masks`): the
    first with the hyperprior's μ, σ, each later one with μ, σ corrected by the context
    network (float64, like the hyper-synthesis) from the latents of the passes before.
    ``next()`` gives the pass's means, scale indices and near-tie flags on its positions (C
    order); ``put(symbols)`` records them. ``mean`` and ``sym`` fill in as passes complete.
    """

    def __init__(self, rd: RDModel, z_hat: np.ndarray, shape: tuple[int, int, int], context: str) -> None:
        _check_context(rd, context)
        self.rd = rd
        mean, scale = _h_s64(rd, z_hat)  # on 4 × the hyper-latents: cut to the latents
        self.hyper = mean[:, :shape[1], :shape[2]], scale[:, :shape[1], :shape[2]]
        self.masks = ([m.numpy() for m in pass_masks(context, shape)] if context
                      else [np.ones(shape, dtype=bool)])
        self.mean = np.zeros(shape)
        self.sym = np.zeros(shape, dtype=np.int64)
        self.seen = np.zeros(shape)  # 1 where decoded
        self.k = 0
        self._mean_k = np.zeros(0)

    @property
    def done(self) -> bool:
        return self.k == len(self.masks)

    @property
    def mask(self) -> np.ndarray:
        return self.masks[self.k]

    def next(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mean, scale = self.hyper
        if self.k:
            seen = self.seen
            t = [torch.from_numpy(a)[None] for a in (seen * (self.sym + self.mean), seen * self.sym, mean, scale)]
            with torch.no_grad():  # this pass's latents only (k > 0: the model has a context)
                mk, sk = self.rd.ctx64.pass_params_at(self.k, *t)  # type: ignore[union-attr]
            self._mean_k, scale_k = mk.numpy(), sk.numpy()
        else:
            self._mean_k, scale_k = mean[self.mask], scale[self.mask]
        idx, flagged = tables.scale_indices(scale_k)
        return self._mean_k, idx, flagged

    def put(self, symbols: np.ndarray) -> None:
        m = self.mask
        self.sym[m] = symbols
        self.mean[m] = self._mean_k
        self.seen[m] = 1.0
        self.k += 1


def _code_tile(rd: RDModel, y_base: np.ndarray, level: float, context: str) -> tuple[bytes, np.ndarray]:
    """Stream of one tile at ``level`` and its dequantised latents ŷ (float32)."""
    net = rd.net
    with torch.no_grad():
        g = net.gains(level)[0].numpy()
        y = y_base * g
        z_hat = torch.round(net.h_a(torch.from_numpy(y)[None]))[0].numpy().astype(np.int64)
    y64 = y.astype(np.float64)
    passes = _Passes(rd, z_hat, y.shape, context)
    parts = []
    while not passes.done:
        mean, idx, flagged = passes.next()
        sym = np.rint(y64[passes.mask] - mean).astype(np.int64)
        parts.append((sym, idx, flagged))
        passes.put(sym)
    blob = entropy.encode_tile(z_hat, parts, rd.tables.for_level(table_level(level)))
    return blob, (passes.sym + passes.mean).astype(np.float32)


def decode_symbols(rd: RDModel, blob: bytes, shape: tuple[int, int], level: float, context: str
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hyper-latents, latent symbols, the means they were coded around and their scale
    indices, of one tile of ``shape`` latents."""
    m, hz = rd.net.config.latent_channels, rd.net.config.hyper_channels
    th, tw = shape
    state: dict[str, Any] = {}
    idx = np.zeros((m, th, tw), dtype=np.int64)

    def plan(z: np.ndarray, parts: list[np.ndarray]) -> np.ndarray | None:
        if "passes" not in state:
            state["passes"] = _Passes(rd, z, (m, th, tw), context)
        passes = state["passes"]
        if parts:
            passes.put(parts[-1])
        if passes.done:
            return None
        _, got, _ = passes.next()
        idx[passes.mask] = got
        return got

    z, _ = entropy.decode_tile(blob, (hz, -(-th // 4), -(-tw // 4)), rd.tables.for_level(table_level(level)),
                               plan)
    passes = state["passes"]
    return z, passes.sym, passes.mean, idx


def _decode_tile(rd: RDModel, blob: bytes, shape: tuple[int, int], level: float, context: str) -> np.ndarray:
    """Dequantised latents ŷ of one tile (float32)."""
    _, sym, mean, _ = decode_symbols(rd, blob, shape, level, context)
    return (sym + mean).astype(np.float32)


def synth_margins(geo: PatchLayout, i: int, j: int, k: int) -> tuple[int, int, int, int]:
    """Latents of neighbours (top, bottom, left, right) the synthesis of tile (i, j) sees:
    ``k`` on each side that has a neighbour tile, 0 at the region's edges."""
    nti, ntj = geo.counts
    return (k if i > 0 else 0, k if i < nti - 1 else 0, k if j > 0 else 0, k if j < ntj - 1 else 0)


def edge_pads(margins: tuple[int, int, int, int], k: int, edge: str) -> tuple[int, int, int, int]:
    """Latents mirrored past the region's edges (top, bottom, left, right) for a tile whose
    neighbour margins are ``margins``: ``k`` on each side without a neighbour when ``edge`` is
    "mirror", none with "zero"."""
    if edge == "zero":
        return (0, 0, 0, 0)
    t, b, l_, r = margins
    return (0 if t else k, 0 if b else k, 0 if l_ else k, 0 if r else k)


class _Synth:
    """Synthesis of tiles from a latent source with a margin of neighbouring latents."""

    def __init__(self, rd: RDModel, geo: PatchLayout, cfg: RDCodecConfig, latents) -> None:
        self.rd, self.geo, self.level, self.margin, self.edge = rd, geo, cfg.level, cfg.synth_margin, cfg.edge
        self.latents = latents  # callable (i, j) -> ŷ of tile (i, j)

    def tile(self, i: int, j: int, border: int = 0) -> np.ndarray:
        """Normalised residual of tile (i, j) on its padded span, float32, with ``border``
        cells of the synthesis window around it (mirrored where the window ends)."""
        geo, k = self.geo, self.margin
        nti, ntj = geo.counts
        lt = geo.patch // 16
        parts_r = []
        for di in (-1, 0, 1):
            ii = i + di
            if not 0 <= ii < nti:
                continue
            row = [self.latents(ii, jj) for jj in (j - 1, j, j + 1) if 0 <= jj < ntj]
            parts_r.append(np.concatenate(row, axis=2))
        big = np.concatenate(parts_r, axis=1)
        top, bottom, left, right = synth_margins(geo, i, j, k)
        r0 = (lt - k) if i > 0 else 0
        c0 = (lt - k) if j > 0 else 0
        h = self.latents(i, j).shape[1]
        w = self.latents(i, j).shape[2]
        win = big[:, r0:r0 + top + h + bottom, c0:c0 + left + w + right]
        pads = edge_pads((top, bottom, left, right), k, self.edge)
        top, left = top + pads[0], left + pads[2]
        y = mirror_edges(torch.from_numpy(np.ascontiguousarray(win))[None], pads)
        x = self.rd.fast.synthesise(y, self.level)[0, 0].numpy()
        r0, r1, c0, c1 = top * 16 - border, (top + h) * 16 + border, left * 16 - border, (left + w) * 16 + border
        cut = x[max(r0, 0):r1, max(c0, 0):c1]
        short = (max(-r0, 0), max(r1 - x.shape[0], 0), max(-c0, 0), max(c1 - x.shape[1], 0))
        if any(short):
            cut = np.pad(cut, ((short[0], short[1]), (short[2], short[3])), mode="symmetric")
        return cut

    def filtered(self, i: int, j: int, q: np.ndarray | None) -> np.ndarray:
        """:meth:`tile` after the loop filter ``q`` (:mod:`.loop_filter`; None: unfiltered)."""
        if q is None:
            return self.tile(i, j)
        return _loop.apply(self.tile(i, j, _loop.RADIUS), q)


def _metres(rd: RDModel, x: np.ndarray, nodes: np.ndarray, geo: PatchLayout, cfg: RDCodecConfig,
            i: int, j: int) -> np.ndarray:
    """Tile (i, j) in metres (float64) on its real cells."""
    mc = rd.net.config
    a0, a1 = geo.cells(i, 0)
    b0, b1 = geo.cells(j, 1)
    off = offset_field.expand(nodes, (geo.height, geo.width), mc.offset_stride, cfg.node_step(mc),
                              rows=slice(a0, a1), cols=slice(b0, b1))
    s0, _ = geo.span(i, 0)
    t0, _ = geo.span(j, 1)
    return off + (mc.unit * cfg.scale) * x[a0 - s0:a1 - s0, b0 - t0:b1 - t0].astype(np.float64)


def _check_grid(grid: xr.DataArray) -> None:
    """A labelled 2-D numeric grid (the patch codec's check) of at least 16×16 cells."""
    _check_labelled_grid(grid)
    if min(grid.shape) < 16:
        raise RegionError(f"region {grid.shape[0]}x{grid.shape[1]} cells is too small: the learned "
                          "codec needs at least 16x16 cells")


def encode(grid: xr.DataArray, model: Any, *, level: float | None = None, max_error: float | None = None,
           keep_attrs: bool = True, tile: int = 512, outliers: bool = True,
           coastline: str | None = None, relative_error: float | None = None, floor: float = 0.5,
           refine: int = 0, loop_filter: bool = True) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Code a region; returns the container's header and its streams by role (:func:`to_bytes`).

    ``level`` defaults to :func:`default_level`; with ``max_error`` and no ``level``, to
    the level whose whole file is smallest (:func:`_smallest_bounded`). With ``max_error``
    every decoded cell is within that many metres of ``grid``, in float output and, for
    integer-valued input (GEBCO int16), in the input's integer dtype too. ``refine``: gradient
    steps per tile on the latents at encode time (:mod:`topoae.codec.refine`; 0: none).
    ``loop_filter``: fit each tile's loop filter (:mod:`topoae.codec.loop_filter`), kept
    where it pays for its coefficients.
    """
    rd = as_rd_model(model)
    _check_grid(grid)
    _check_refine(refine)
    if level is None and max_error is not None:
        return _smallest_bounded(grid, rd, {
            "max_error": max_error, "keep_attrs": keep_attrs, "tile": tile, "outliers": outliers,
            "coastline": coastline, "relative_error": relative_error, "floor": floor,
            "refine": refine, "loop_filter": loop_filter})
    lev = default_level(rd) if level is None else quality_level(level)
    cfg = RDCodecConfig(level=lev, tile=tile, max_error=max_error, keep_attrs=keep_attrs,
                        coastline=coastline, relative_error=relative_error, floor=floor)
    cfg.check(rd.levels)
    mc = rd.net.config
    geo = tile_layout(int(grid.shape[0]), int(grid.shape[1]), cfg.tile, cfg.margin, ALIGN)
    step = COARSE_OFFSET_STEP if lev < COARSE_OFFSET_BELOW else float(mc.offset_step)
    nodes, integer, scale_exp = _scan(grid, mc.offset_stride, step)
    cfg = RDCodecConfig(level=lev, tile=tile, max_error=max_error, keep_attrs=keep_attrs,
                        outliers=outliers, outlier_bits=OUTLIER_BITS, coastline=coastline,
                        relative_error=relative_error, floor=floor, scale_exp=scale_exp,
                        edge=EDGE, align=ALIGN, context=rd.net.config.context, offset_step=step)
    cfg.check(rd.levels)
    streams: dict[str, bytes] = {"offset": _res.encode_residual(nodes)}
    nti, ntj = geo.counts
    yhat: dict[tuple[int, int], np.ndarray] = {}
    filters: dict[tuple[int, int], np.ndarray | None] | None = {} if loop_filter else None
    nan_cells = 0
    for i in range(nti):
        for j in range(ntj):
            if refine:
                y0 = _refined(rd, grid, nodes, geo, cfg, i, j, yhat, refine)
            else:
                y0 = _analyse_tile(rd.fast, grid, nodes, geo, cfg, i, j)
            blob, yh = _code_tile(rd, y0, lev, cfg.context)
            streams[f"tile:{i},{j}"] = blob
            yhat[(i, j)] = yh
            a0, a1 = geo.cells(i, 0)
            b0, b1 = geo.cells(j, 1)
            z = np.asarray(grid.isel({grid.dims[0]: slice(a0, a1), grid.dims[1]: slice(b0, b1)}).values,
                           dtype=np.float64)
            nan = ~np.isfinite(z)
            if nan.any():
                nan_cells += int(nan.sum())
                streams[f"mask:{i},{j}"] = _res.encode_mask(nan)
        # residuals of the previous tile row, once its lower neighbours exist
        if i >= 1:
            _residual_row(rd, grid, nodes, geo, cfg, i - 1, yhat, streams, integer, filters)
        for key in [k for k in yhat if k[0] < i - 1]:
            del yhat[key]
    _residual_row(rd, grid, nodes, geo, cfg, nti - 1, yhat, streams, integer, filters)
    if nan_cells == geo.height * geo.width:
        raise RegionError("the region holds no valid (non-NaN) cell")
    if filters is not None:
        packed = _loop.pack([filters[(i, j)] for i in range(nti) for j in range(ntj)])
        if packed is not None:
            streams["filter"] = packed
    header = _header(grid, rd, cfg, geo, integer, nan_cells, streams)
    return header, streams


def _check_refine(steps: Any) -> None:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 0 <= steps <= 10_000:
        raise ConfigError(f"--refine must be a whole number of steps in 0..10000, got {steps!r}")


def _refined(rd: RDModel, grid: xr.DataArray, nodes: np.ndarray, geo: PatchLayout,
             cfg: RDCodecConfig, i: int, j: int, yhat: dict[tuple[int, int], np.ndarray],
             steps: int) -> np.ndarray:
    """Ungained latents of tile (i, j) after encode-time refinement (:mod:`.refine`).

    The synthesis sees ``synth_margin`` latents on each side that has a neighbour: for the
    neighbours already coded (``yhat``: the tile row above and the tile to the left) their
    decoded latents, exactly what the decoder will see; for the others (right, below) this
    tile's own analysis of its 32-cell context, an approximation of the latents they will
    get. Without an improvement the analysis's latents come back unchanged."""
    y_pad, r, z = _analyse_padded(rd.fast, grid, nodes, geo, cfg, i, j)
    kc, k = geo.context // 16, cfg.synth_margin
    if k > kc:
        raise ConfigError("refinement needs synth_margin <= margin / 16")
    (r0, r1), (c0, c1) = geo.span(i, 0), geo.span(j, 1)
    (a0, a1), (b0, b1) = geo.cells(i, 0), geo.cells(j, 1)
    cx = geo.context  # the tile's span inside the padded read, its real cells in the mask
    x = r[cx:cx + r1 - r0, cx:cx + c1 - c0]
    mask = np.zeros(x.shape, dtype=np.float32)
    mask[:a1 - a0, :b1 - b0] = np.isfinite(z[cx:cx + a1 - a0, cx:cx + b1 - b0])
    h, w = x.shape[0] // 16, x.shape[1] // 16
    top, bottom, left, right = synth_margins(geo, i, j, k)
    gain = rd.net.gains(cfg.level)[0].detach().numpy()
    win = y_pad[:, kc - top:kc + h + bottom, kc - left:kc + w + right] * gain
    # the neighbours already coded: above-left, above, above-right and left (raster order)
    for di, dj in ((-1, -1), (-1, 0), (-1, 1), (0, -1)):
        got = yhat.get((i + di, j + dj))
        if got is None:
            continue
        nh, nw = got.shape[1:]  # its latents in window coordinates, cut to the window
        n0 = top - nh if di < 0 else top
        m0 = left - nw if dj < 0 else (left + w if dj > 0 else left)
        rs, cs = max(n0, 0), max(m0, 0)
        re, ce = min(n0 + nh, win.shape[1]), min(m0 + nw, win.shape[2])
        if re > rs and ce > cs:
            win[:, rs:re, cs:ce] = got[:, rs - n0:re - n0, cs - m0:ce - m0]
    inner = (slice(top, top + h), slice(left, left + w))
    correct = None
    if cfg.outliers and cfg.max_error is None:  # the outlier stream (coastline ones not counted)
        unit = rd.net.config.unit * cfg.scale
        step = outlier_step(rd, cfg)
        real = mask > 0
        cut = (slice(0, a1 - a0), slice(0, b1 - b0))  # the tile's cells on the grid, as coded

        def correct(xh: np.ndarray) -> tuple[int, float]:
            e = np.where(real, (x - xh) * unit, 0.0)[cut]
            q = _outlier_symbols(e, step)
            left_ = (e - q * step)[real[cut]] / unit
            return (len(_res.encode_residual(q)) if q.any() else 0), float(np.sum(left_ ** 2))
    y = _refine.refine(rd.net, win, inner, x, mask, cfg.level, steps,
                       lambda yb: _code_tile(rd, yb, cfg.level, cfg.context), seed=i * 65536 + j,
                       edges=edge_pads((top, bottom, left, right), k, cfg.edge), correct=correct)
    return y_pad[:, kc:kc + h, kc:kc + w] if y is None else y


def _smallest_bounded(grid: xr.DataArray, rd: RDModel, kw: dict[str, Any]
                      ) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The error-bounded file at the level whose whole file is smallest, as found by a walk.

    The bound holds at every level; the level trades latent bytes against residual
    bytes. File size against level falls then rises, so a walk from the default level
    toward the smaller neighbour stops at a minimum (3–5 encodes; the smallest of all
    levels when the sizes have one minimum, as measured on the held-out tiles). Regions
    larger than 2×2 tiles choose the level on their central 2×2 tiles, then code the whole
    region once. With ``refine`` the walk runs on plain encodes; the chosen level is then
    coded refined, and the smaller of the two files is kept.
    """
    steps = kw.pop("refine", 0)
    if steps:
        plain = _smallest_bounded(grid, rd, kw)
        refined = encode(grid, rd, level=quality_level(plain[0]["codec"]["level"]), refine=steps, **kw)
        return min((plain, refined), key=lambda f: len(to_bytes(*f)))
    h, w = (int(v) for v in grid.shape)
    span = 2 * int(kw["tile"])
    probe = grid
    if h * w > span * span:
        r0, c0 = max(0, (h - span) // 2), max(0, (w - span) // 2)
        probe = grid.isel({grid.dims[0]: slice(r0, r0 + span), grid.dims[1]: slice(c0, c0 + span)})
    files: dict[int, tuple[tuple[dict[str, Any], dict[str, bytes]], int]] = {}

    def size(level: int) -> int:
        if level not in files:
            f = encode(probe, rd, level=level, **kw)
            files[level] = (f, len(to_bytes(*f)))
        return files[level][1]

    lev = default_level(rd)
    try:
        while True:
            best = min((c for c in (lev - 1, lev, lev + 1) if 0 <= c < rd.levels),
                       key=lambda c: (size(c), c))
            if best == lev:
                break
            lev = best
    except RegionError:
        if probe is grid:
            raise
        lev = default_level(rd)  # the central tiles hold no valid cell: code at the default level
    if probe is grid:
        return files[lev][0]
    return encode(grid, rd, level=lev, **kw)


def _rule(cfg: RDCodecConfig) -> corrections.RelativeRule:
    if cfg.max_error is None or cfg.relative_error is None:  # RDCodecConfig refuses this
        raise ConfigError("a relative error bound needs max_error and relative_error")
    return corrections.RelativeRule(float(cfg.max_error), float(cfg.relative_error), float(cfg.floor))


def _residual_row(rd, grid, nodes, geo, cfg, i, yhat, streams, integer, filters=None) -> None:
    """Side streams of tile row ``i``: the loop filters (into ``filters``, when not None),
    the error-bounded residual (``max_error``) or else the sparse outlier corrections, and the
    coastline corrections. Without any of them the encoder needs no reconstruction, and the
    synthesis is skipped."""
    if cfg.max_error is None and not cfg.outliers and cfg.coastline is None and filters is None:
        return
    synth = _Synth(rd, geo, cfg, lambda a, b: yhat[(a, b)])
    for j in range(geo.n_cols):
        a0, a1 = geo.cells(i, 0)
        b0, b1 = geo.cells(j, 1)
        z = np.asarray(grid.isel({grid.dims[0]: slice(a0, a1), grid.dims[1]: slice(b0, b1)}).values,
                       dtype=np.float64)
        if filters is None:
            base = _metres(rd, synth.tile(i, j), nodes, geo, cfg, i, j)
        else:
            xb = synth.tile(i, j, _loop.RADIUS)
            base = _metres(rd, _loop.inner(xb), nodes, geo, cfg, i, j)
            filters[(i, j)] = q = _fit_filter(rd, cfg, xb, z, base)
            if q is not None:
                base = _metres(rd, _loop.apply(xb, q), nodes, geo, cfg, i, j)
        if cfg.max_error is not None:
            streams[f"res:{i},{j}"] = _encode_residual(z, base, cfg.max_error, integer)
            if cfg.relative_error is not None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    y1 = _apply_residual(streams[f"res:{i},{j}"], base, cfg.max_error, integer,
                                         (a1 - a0, b1 - b0), i, j)
                blob = corrections.encode_relative(z, y1, _rule(cfg), integer)
                if blob is not None:
                    streams[f"rel:{i},{j}"] = blob
        elif cfg.outliers:
            blob = _encode_outliers(z, base, outlier_step(rd, cfg))
            if blob is not None:
                streams[f"out:{i},{j}"] = blob
        if cfg.coastline == "exact":
            shape = (a1 - a0, b1 - b0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                final = _corrected(rd, cfg, streams, base, integer, shape, i, j)
            blob = corrections.encode_coast(z, final, integer)
            if blob is not None:
                streams[f"coast:{i},{j}"] = blob


def _fit_filter(rd: RDModel, cfg: RDCodecConfig, xb: np.ndarray, z: np.ndarray, base: np.ndarray
                ) -> np.ndarray | None:
    """A tile's loop filter (:func:`.loop_filter.fit`) from its synthesis with border ``xb``,
    its cells ``z`` and its unfiltered reconstruction ``base`` (metres, on those cells): fitted
    on the cells within the outlier step, whose larger errors the outlier stream leaves alone."""
    x = _loop.inner(xb)
    e = z - base
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(e) & (np.abs(e) <= outlier_step(rd, cfg))
    unit = rd.net.config.unit * cfg.scale
    use = np.zeros(x.shape, dtype=bool)
    target = x.astype(np.float64)
    use[:z.shape[0], :z.shape[1]] = ok
    target[:z.shape[0], :z.shape[1]] += np.where(ok, e, 0.0) / unit
    return _loop.fit(xb, target, use, rd.net.level_lambda(cfg.level))


def _corrected(rd, cfg, streams, base, integer, shape, i, j) -> np.ndarray:
    """The tile after its residual or outlier corrections (what the decoder computes)."""
    if cfg.max_error is not None:
        y = _apply_residual(_need(streams, f"res:{i},{j}"), base, cfg.max_error, integer, shape, i, j)
        if f"rel:{i},{j}" in streams:
            y = corrections.apply_relative(streams[f"rel:{i},{j}"], y, _rule(cfg), integer)
        return y
    if f"out:{i},{j}" in streams:
        return _apply_outliers(streams[f"out:{i},{j}"], base, outlier_step(rd, cfg), shape)
    return base


#: bits a sparse correction costs (position and value, context-coded), what new files use:
#: 4–14 bits measured on held-out 15″ tiles (fewer at the high levels, where corrections
#: cluster); 6 gave the lowest RMSE at equal bytes over 25–200× (10, 6, 4, 2.5 tried)
OUTLIER_BITS = 6.0


def outlier_step(rd: RDModel, cfg: RDCodecConfig) -> float:
    """Metres: correct a cell when its error exceeds this (RD-optimal for the level's λ:
    a correction pays when λ·e² on the network scale exceeds its bits)."""
    lam = rd.net.level_lambda(cfg.level)
    return float(rd.net.config.unit * cfg.scale * math.sqrt(cfg.outlier_bits / lam))


def _outlier_symbols(e: np.ndarray, step: float) -> np.ndarray:
    """The outlier rule: ``round(e / step)`` where the error exceeds ``step``, else 0."""
    return np.where(np.abs(e) > step, np.rint(e / step), 0).astype(np.int64)


def _encode_outliers(z: np.ndarray, base: np.ndarray, step: float) -> bytes | None:
    """Sparse corrections ``q·step`` on cells whose error exceeds ``step`` (None when none do)."""
    e = np.where(np.isfinite(z), z - base.astype(np.float32).astype(np.float64), 0.0)
    q = _outlier_symbols(e, step)
    if not q.any():
        return None
    return _res.encode_residual(q)


def _apply_outliers(blob: bytes, base: np.ndarray, step: float, shape: tuple[int, int]) -> np.ndarray:
    q = _res.decode_residual(blob, shape)
    return base.astype(np.float32).astype(np.float64) + q * step


def _int_step(max_error: float) -> int:
    return 2 * int(math.floor(max_error)) + 1


def _encode_residual(z: np.ndarray, base: np.ndarray, max_error: float, integer: bool) -> bytes:
    """Residual stream; the hash of the base lets the decoder check it reproduces it."""
    valid = np.isfinite(z)
    if integer:
        b = np.rint(base)
        s = _int_step(max_error)
        q = np.where(valid, np.rint((np.where(valid, z, 0) - b) / s), 0).astype(np.int64)
    else:
        step = _res.residual_step(max_error, float(np.nanmax(np.abs(z))) if valid.any() else 1.0)
        b = base.astype(np.float32)
        q = _res.quantize_residual(np.where(valid, z, np.nan).astype(np.float64), b, max_error, step)
        return (_res.digest(b).to_bytes(8, "little") + np.float64(step).astype("<f8").tobytes()
                + _res.encode_residual(q))
    return _res.digest(b).to_bytes(8, "little") + _res.encode_residual(q)


def _header(grid, rd, cfg, geo, integer, nan_cells, streams: dict[str, bytes]) -> dict[str, Any]:
    """The file header; adds the packed coordinate streams to ``streams``."""
    d0, d1 = (str(d) for d in grid.dims)
    coords = {}
    for d in (d0, d1):
        coords[d], s = pack_coord(grid[d].values, regular=True)
        if s is not None:
            streams[f"coord:{d}"] = bytes(np.asarray(s, dtype=np.uint8))
    # the reader's own bookkeeping (``source``: the path it read, ``variable``) is not the data's
    attrs = (data_attrs(grid) if cfg.keep_attrs
             else {k: grid.attrs[k] for k in ("units",) if k in grid.attrs})
    glob = file_attrs(grid) if cfg.keep_attrs else {}
    desc = descending_dims(grid)
    return {
        "format": FORMAT,
        "topoae": __version__,
        "model": rd.model_id[:16],
        "codec": {k: v for k, v in asdict(cfg).items() if k != "context"},
        "grid": {
            "name": grid.name, "dims": [d0, d1], "shape": [geo.height, geo.width],
            "dtype": _input_dtype(grid, integer),
            "integer": integer, "coords": coords,
            "coord_attrs": {d: _jsonable(dict(grid[d].attrs)) for d in (d0, d1)} if cfg.keep_attrs else {},
            "attrs": _jsonable(attrs), "crs": _crs_text(grid), "nan_cells": nan_cells,
            **({"global_attrs": _jsonable(glob)} if glob else {}),
            # dims that run descending in the file read: a decoded NetCDF is written that way
            **({"descending": desc} if desc else {}),
        },
        "streams": list(streams),
    }


def _input_dtype(grid: xr.DataArray, integer: bool) -> str:
    """int16 for integer-valued grids that fit it (GEBCO), float32 otherwise."""
    if not integer:
        return "float32"
    enc = grid.encoding.get("dtype")
    if enc is not None and np.dtype(enc).kind in "iu" and np.dtype(enc).itemsize <= 2:
        return "int16"
    v = np.asarray(grid.values, dtype=np.float64) if grid.size <= 16_000_000 else None
    if v is not None and np.nanmax(np.abs(v)) <= 32767:
        return "int16"
    return "float32"


def to_bytes(header: dict[str, Any], streams: dict[str, bytes]) -> bytes:
    """The ``.tae`` file's bytes."""
    return container.pack({**header, "streams": list(streams)}, list(streams.values()))


def write(path, header: dict[str, Any], streams: dict[str, bytes], *, overwrite: bool = False) -> int:
    """Write the ``.tae`` file atomically; returns its size in bytes."""
    return container.write(path, {**header, "streams": list(streams)}, list(streams.values()),
                           overwrite=overwrite)


def read(path) -> tuple[dict[str, Any], dict[str, bytes]]:
    header, streams = container.read(path)
    if header.get("format") != FORMAT:
        raise StoreError(f"{path} is not a learned-codec file")
    return header, streams


# -- decoding ------------------------------------------------------------------------
def _need(streams: dict[str, bytes], role: str) -> bytes:
    if role not in streams:
        raise StoreError(f"the file lacks its {role!r} stream")
    return streams[role]


def _open(header: dict[str, Any], streams: dict[str, bytes], model: Any, force: bool):
    if header.get("format") != FORMAT:
        raise StoreError("not a learned-codec file")
    rd = as_rd_model(model)
    own = rd.for_file(str(header.get("model", "")))
    if own is None and not force:
        raise ModelMismatchError(
            f"the file was made with model {header['model']}, not {rd.model_id[:16]} "
            "(pass the right --model, or --force)")
    rd = own or rd
    try:
        cfg = replace(RDCodecConfig(**header["codec"]), context=rd.file_context(str(header.get("model"))))
        g = header["grid"]
        if cfg.edge not in EDGES:  # (a StoreError passes the except below)
            raise StoreError(f"the file's synthesis edge {cfg.edge!r} is not one this topoae knows "
                             f"({', '.join(EDGES)}): a newer topoae wrote it")
        if (isinstance(cfg.offset_step, bool) or not isinstance(cfg.offset_step, (int, float))
                or not 0 <= cfg.offset_step < 1e6):
            raise StoreError(f"the file's offset step {cfg.offset_step!r} is not a step (damaged?)")
        if cfg.align not in ALIGNS:
            raise StoreError(f"the file's grid alignment {cfg.align!r} is not one this topoae knows "
                             f"({', '.join(map(str, ALIGNS))}): a newer topoae wrote it")
        geo = tile_layout(int(g["shape"][0]), int(g["shape"][1]), cfg.tile, cfg.margin, cfg.align)
    except (TypeError, KeyError, ValueError):
        raise StoreError("the file's header is incomplete or from another topoae") from None
    file_level(header, rd.levels)
    cfg.check(rd.levels)
    mc = rd.net.config
    nh, nw = offset_field.node_shape((geo.height, geo.width), mc.offset_stride)
    nodes = _res.decode_residual(_need(streams, "offset"), (nh, nw))
    return rd, cfg, g, geo, nodes


def decode(header: dict[str, Any], streams: dict[str, bytes], model: Any, *, force: bool = False,
           dtype: str | None = None, perturb=None, lazy: bool = False) -> xr.DataArray:
    """Rebuild the grid from a container's header and streams.

    ``dtype`` defaults to the input's (int16 for integer-valued GEBCO input);
    ``perturb`` is the sampling hook of :class:`_Tiles`. ``lazy``: a dask-backed grid whose
    tile rows are decoded when computed (writing it with :func:`topoae.codec.files.save_grid`
    holds a few tile rows in memory, not the region). Compute it with dask's synchronous
    scheduler: torch on another thread may round the synthesis differently from the
    encoder (then a ``--max-error`` bound can be off by a fraction of a metre, with a warning).
    """
    rd, cfg, g, geo, nodes = _open(header, streams, model, force)
    out_dtype = _check_dtype(dtype, g, cfg)
    if lazy:
        return _template(_lazy_rows(rd, streams, geo, cfg, nodes, g["integer"], perturb),
                         header, streams, out_dtype)
    out = np.empty((geo.height, geo.width), dtype=np.float32)
    for i, j, tile in _decoded_tiles(rd, streams, geo, cfg, nodes, g["integer"], perturb):
        a0, a1 = geo.cells(i, 0)
        b0, b1 = geo.cells(j, 1)
        out[a0:a1, b0:b1] = tile
    return _template(out, header, streams, out_dtype)


def _check_dtype(dtype: str | None, g: dict[str, Any], cfg: RDCodecConfig) -> str:
    out = dtype or ("int16" if g["integer"] and g["dtype"] == "int16" else "float32")
    if out not in ("float32", "int16"):
        raise ConfigError(f"--dtype must be float32 or int16, got {out!r}")
    if out == "int16" and (cfg.max_error is not None or cfg.coastline) and not g["integer"]:
        raise ConfigError(
            "this file's --max-error bound / exact coastline holds for float32 output only (the "
            "input was not integer-valued); rounding to int16 would break it: decode with "
            "--dtype float32")
    return out


class _Tiles:
    """Decoded tiles on demand, in any order, from several threads: the latents of the tiles
    met last are kept (about three tile rows), so a row-by-row pass decodes each tile's
    symbols once and memory stays bounded by a few tile rows, whatever the region.

    ``perturb(i, j, ŷ)`` (sampling) may replace each tile's dequantised latents.
    """

    def __init__(self, rd, streams, geo, cfg, nodes, integer, perturb=None) -> None:
        import threading
        from collections import OrderedDict

        self.rd, self.streams, self.geo, self.cfg = rd, streams, geo, cfg
        self.nodes, self.integer, self.perturb = nodes, integer, perturb
        self._cache: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._keep = 4 * geo.counts[1] + 4  # rows i-1..i+2: two rows computed at once
        self._lock = threading.Lock()
        self._synth = _Synth(rd, geo, cfg, self.latents)
        nti, ntj = geo.counts
        # sampled members skip the loop filter: its coefficients fit the coded latents, and
        # the members' noise scale τ was calibrated on unfiltered members (with the filter the
        # band held 83 % of held-out cells at level 1 instead of 90 %: `rd_coverage.md`)
        self._filters = (_loop.unpack(streams["filter"], nti * ntj) if "filter" in streams
                         and perturb is None else [None] * (nti * ntj))

    def latents(self, i: int, j: int) -> np.ndarray:
        with self._lock:
            if (i, j) in self._cache:
                self._cache.move_to_end((i, j))
                return self._cache[(i, j)]
        a0, a1 = self.geo.span(i, 0)
        b0, b1 = self.geo.span(j, 1)
        y = _decode_tile(self.rd, _need(self.streams, f"tile:{i},{j}"), ((a1 - a0) // 16, (b1 - b0) // 16),
                         self.cfg.level, self.cfg.context)
        y = self.perturb(i, j, y) if self.perturb is not None else y
        with self._lock:
            self._cache[(i, j)] = y
            while len(self._cache) > self._keep:
                self._cache.popitem(last=False)
        return y

    def tile(self, i: int, j: int) -> np.ndarray:
        """Tile (i, j) in float32 metres, every side stream applied, NaN where the input was."""
        rd, cfg, geo, streams, integer = self.rd, self.cfg, self.geo, self.streams, self.integer
        x = self._synth.filtered(i, j, self._filters[i * geo.counts[1] + j])
        base = _metres(rd, x, self.nodes, geo, cfg, i, j)
        a0, a1 = geo.cells(i, 0)
        b0, b1 = geo.cells(j, 1)
        base = _corrected(rd, cfg, streams, base, integer, (a1 - a0, b1 - b0), i, j)
        if f"coast:{i},{j}" in streams:
            base = corrections.apply_coast(streams[f"coast:{i},{j}"], base, integer)
        tile = base.astype(np.float32)
        if f"mask:{i},{j}" in streams:
            tile[_res.decode_mask(streams[f"mask:{i},{j}"], tile.shape)] = np.nan
        return tile

    def row(self, i: int) -> np.ndarray:
        """Tile row ``i`` across the grid, float32 ``(rows, width)``."""
        return np.concatenate([self.tile(i, j) for j in range(self.geo.counts[1])], axis=1)


def _decoded_tiles(rd, streams, geo, cfg, nodes, integer, perturb=None
                   ) -> Iterator[tuple[int, int, np.ndarray]]:
    """(i, j, float32 metres) tile by tile, row by row (see :class:`_Tiles`)."""
    tiles = _Tiles(rd, streams, geo, cfg, nodes, integer, perturb)
    nti, ntj = geo.counts
    for i in range(nti):
        for j in range(ntj):
            yield i, j, tiles.tile(i, j)


def _lazy_rows(rd, streams, geo, cfg, nodes, integer, perturb=None):
    """The grid as a dask array of tile rows, each decoded when it is computed."""
    import dask
    import dask.array as dka

    tiles = _Tiles(rd, streams, geo, cfg, nodes, integer, perturb)
    rows = []
    for i in range(geo.counts[0]):
        a0, a1 = geo.cells(i, 0)
        rows.append(dka.from_delayed(dask.delayed(tiles.row, pure=True)(i),
                                     shape=(a1 - a0, geo.width), dtype=np.float32))
    return dka.concatenate(rows, axis=0)


def _apply_residual(blob: bytes, base: np.ndarray, max_error: float, integer: bool,
                    shape: tuple[int, int], i: int, j: int) -> np.ndarray:
    head = 8 if integer else 16
    if len(blob) < head + 1:
        raise StoreError(f"residual stream of tile {i},{j} is truncated")
    want = int.from_bytes(blob[:8], "little")
    q = _res.decode_residual(blob[head:], shape)
    if integer:
        b = np.rint(base)
        out = b + q * _int_step(max_error)
    else:
        step = float(np.frombuffer(blob[8:16], dtype="<f8")[0])
        b = base.astype(np.float32)
        out = _res.apply_residual(b, q, step).astype(np.float64)
    if _res.digest(b) != want:
        warnings.warn(f"tile {i},{j}: this machine's reconstruction differs from the encoder's; "
                      "the error bound may be exceeded by a fraction of a metre", stacklevel=2)
    return out


def _template(values: np.ndarray, header: dict[str, Any], streams: dict[str, bytes],
              dtype: str) -> xr.DataArray:
    g = header["grid"]
    d0, d1 = g["dims"]
    coords = {}
    for d in (d0, d1):
        entry = g["coords"][d]
        coords[d] = unpack_coord(entry, np.frombuffer(_need(streams, f"coord:{d}"), dtype=np.uint8)
                                 if coord_has_stream(entry) else None)
    da = xr.DataArray(values, dims=(d0, d1), coords=coords, name=g["name"] or "elevation")
    for d in (d0, d1):
        da[d].attrs = dict(g.get("coord_attrs", {}).get(d, {}))
    attrs = dict(g["attrs"])
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = (f"{stamp}: reconstructed by topoae {__version__} (learned codec, model "
            f"{header['model']}, quality {header['codec']['level']}"
            + (f", max error {header['codec']['max_error']:g} m" if header["codec"]["max_error"] else "")
            + ")")
    da.attrs = attrs
    add_history(da, line, g.get("global_attrs"))
    if g.get("crs"):
        try:
            import rioxarray  # noqa: F401

            da = da.rio.write_crs(g["crs"])  # sets encoding["grid_mapping"] = "spatial_ref"
        except Exception:  # no rioxarray / unknown CRS: keep the text
            da.attrs["crs"] = g["crs"]
    da.encoding["dtype"] = dtype
    da.encoding[DESCENDING] = list(g.get("descending", []))
    return da


def encode_to_ratio(grid: xr.DataArray, model: Any, ratio: float, **kw: Any
                    ) -> tuple[dict[str, Any], dict[str, bytes], bool]:
    """The best quality whose whole file reaches at least ``ratio`` on this region.

    Returns ``(header, streams, reached)``; if no quality reaches it, the smallest file
    tried (level 0's, unless ``max_error`` made another smaller) and ``reached=False``.
    Binary search over the trained levels (ratio falls as level rises), then over the 1/:data:`LEVEL_STEPS` steps between the level found and the next
    (gains interpolated), each candidate sized by its real bytes: 6–7 encodes, and a file
    within a step (~6 % in ratio) of ``ratio`` instead of within a level (~1.7×). With
    ``refine``, the search runs on plain encodes (each refined encode costs ~60 plain ones);
    then the refined file two steps up (refinement shrinks files by ~10 %) and at the found
    quality are tried, the best that reaches ``ratio`` kept (else the plain file; when
    nothing reaches it, the smaller of the plain and refined files at level 0).
    """
    rd = as_rd_model(model)
    if not (math.isfinite(ratio) and ratio > 0):
        raise ConfigError(f"--ratio must be a positive number, got {ratio}")
    steps = kw.pop("refine", 0)
    _check_refine(steps)
    raw = grid.shape[0] * grid.shape[1] * 4
    top = rd.levels - 1
    if steps:
        h, s, reached = encode_to_ratio(grid, rd, ratio, **kw)
        n = len(to_bytes(h, s))
        found = float(h["codec"]["level"])
        up = found + 2 / LEVEL_STEPS
        for lev in ([quality_level(up)] if reached and up <= top else []) + [quality_level(found)]:
            hr, sr = encode(grid, rd, level=lev, refine=steps, **kw)
            nr = len(to_bytes(hr, sr))
            if raw / nr >= ratio or (not reached and nr < n):
                return hr, sr, raw / nr >= ratio
        return h, s, reached
    tried: dict[int, tuple[dict[str, Any], dict[str, bytes], int]] = {}

    def reaches(k: int) -> bool:  # k: quality in steps of 1/LEVEL_STEPS
        if k not in tried:
            h, s = encode(grid, rd, level=quality_level(k / LEVEL_STEPS), **kw)
            tried[k] = (h, s, len(to_bytes(h, s)))
        return raw / tried[k][2] >= ratio

    def search(lo: int, hi: int, stride: int) -> int | None:
        """The highest of lo, lo + stride, ..., hi that reaches ``ratio`` (binary search)."""
        best = None
        a, b = 0, (hi - lo) // stride
        while a <= b:
            mid = (a + b) // 2
            if reaches(lo + mid * stride):
                best, a = lo + mid * stride, mid + 1
            else:
                b = mid - 1
        return best

    best = search(0, top * LEVEL_STEPS, LEVEL_STEPS)
    if best is None:  # the smallest file tried (with --max-error, level 0's need not be it)
        reaches(0)
        h, s, _ = min(tried.values(), key=lambda f: f[2])
        return h, s, False
    if best < top * LEVEL_STEPS:
        best = search(best + 1, best + LEVEL_STEPS - 1, 1) or best
    h, s, _ = tried[best]
    return h, s, True


def default_level(rd: RDModel) -> int:
    """The best-quality level whose ratio on the model's validation tiles reaches 100x (what
    ``--ratio 100`` would pick there; the highest-ratio level if none does, the middle level
    for a model without a validation record)."""
    if rd.level_ratios:
        reach = [k for k, r in enumerate(rd.level_ratios) if r >= 100.0]
        return max(reach) if reach else int(np.argmax(rd.level_ratios))
    return rd.levels // 2
