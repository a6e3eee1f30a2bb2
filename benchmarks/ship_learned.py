"""Ship a trained hyperprior checkpoint as the zoo's default learned-codec model.

    python benchmarks/ship_learned.py --ckpt runs/rd/best.pt [--results benchmarks/results/rd_learned.json]

1. Loads the checkpoint and freezes its integer probability tables
   (:func:`topoae.codec.tables.freeze`), so every machine codes with the same numbers.
2. Measures each quality level's real ``.tae`` ratio on the validation tiles (whole
   512×512 tiles): the default level is the one nearest 100×.
3. Calibrates the ensemble noise scale τ per level on the validation tiles to 90 %
   coverage of the 5–95 % band of ``ensemble.MEMBERS`` members (:mod:`topoae.codec.ensemble`).
4. Writes ``topoae/weights/topoae-hyperprior-gebco15.pt`` (weights, config, tables,
   ratios, τ; no optimiser state) and its card with the training record and, when
   ``--results`` is given, the measured rate–distortion summary.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "topoae" / "weights"
NAME = "topoae-hyperprior-gebco15"


def tile_grids(cfg, split: str, n: int | None = None) -> list[xr.DataArray]:
    """The whole tiles of ``split`` of the run's data as grids in metres (NaN where empty);
    with ``n``, a fixed random choice of ``n`` of them."""
    from topoae.training.rd import FILL, load_tiles

    tiles = load_tiles(REPO / cfg.data, REPO / cfg.split, split)
    pick = (range(len(tiles)) if n is None else
            np.random.default_rng(0).choice(len(tiles), size=min(n, len(tiles)), replace=False))
    out = []
    for k in pick:
        z = np.where(tiles[k] == FILL, np.nan, tiles[k].astype(np.float32))
        out.append(xr.DataArray(z, dims=("lat", "lon"), name="elevation",
                                coords={"lat": np.arange(z.shape[0]) / 240.0,
                                        "lon": np.arange(z.shape[1]) / 240.0}))
    return out


def load_network(path: Path):
    """``(saved record, model id, training config, network in eval mode)`` of a checkpoint."""
    from topoae.checkpoint import load_checkpoint
    from topoae.training.rd import RDTrainConfig

    lm = load_checkpoint(path)
    return dict(lm.extra), lm.model_id, RDTrainConfig.from_dict(lm.train_config), lm.model


def shipped_model(extra: dict, model_id: str, net):
    """The coding model of shipped weights (:func:`load_network`'s parts): network and the
    tables stored with it."""
    from topoae.codec import learned
    from topoae.codec.tables import Tables

    stored = Tables.from_arrays({k: np.asarray(v) for k, v in extra["tables"].items()})
    return learned.RDModel(net=net, tables=stored, model_id=model_id)


def level_ratios(rd, grids) -> list[float]:
    from topoae.codec import learned

    out = []
    for lev in range(rd.levels):
        r = [g.size * 4 / len(learned.to_bytes(*learned.encode(g, rd, level=lev))) for g in grids]
        out.append(float(np.exp(np.mean(np.log(r)))))
    return out


def calibrate_tau(rd, grids, members: int | None = None, target: float = 0.90, iters: int = 7
                  ) -> tuple[list[float], list[float]]:
    """τ per level (bisection on log τ, the τ whose coverage came nearest ``target``) and the
    coverage it reached, with as many members as ``topoae sample`` draws by default
    (the band's width depends on it), on two 256×256 crops (opposite corners) of each grid."""
    from topoae.codec import ensemble, learned

    members = ensemble.MEMBERS if members is None else members
    crops = [c for g in grids for c in (g.isel(lat=slice(0, 256), lon=slice(0, 256)),
                                          g.isel(lat=slice(-256, None), lon=slice(-256, None)))]
    truth = [np.asarray(c.values, np.float64) for c in crops]
    taus, covs = [], []
    for lev in range(rd.levels):
        coded = [learned.encode(c, rd, level=lev) for c in crops]

        def cov(tau: float, coded=coded) -> float:
            vals = []
            for (h, s), x in zip(coded, truth, strict=True):
                ens = np.stack([ensemble.member(h, s, rd, seed=0, index=i, tau=tau).values
                                for i in range(members)]).astype(np.float64)
                vals.append(ensemble.coverage(x, ens))
            return float(np.mean(vals))

        lo, hi = math.log(0.25), math.log(64.0)
        tried = []
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            c = cov(math.exp(mid))
            tried.append((abs(c - target), math.exp(mid), c))
            if c >= target:
                hi = mid
            else:
                lo = mid
        _, tau, c = min(tried)
        taus.append(tau)
        covs.append(c)
        print(f"level {lev}: tau {tau:.2f} coverage {c:.1%} ({members} members)", flush=True)
    return taus, covs


def recalibrate(weights: Path) -> None:
    """New weights: the shipped network and tables with τ calibrated again (a new model id
    that still decodes the files of the weights it replaces: ``same_coding_as``)."""
    from topoae.checkpoint import save_checkpoint

    torch.set_num_threads(2)
    extra, old_id, cfg, net = load_network(weights)
    taus, covs = calibrate_tau(shipped_model(extra, old_id, net), tile_grids(cfg, "val"))
    extra["sample_tau"], extra["sample_coverage_val"] = taus, covs
    extra["same_coding_as"] = [*extra.get("same_coding_as", []), old_id]
    save_checkpoint(weights, net, cfg, normalise={"mode": "offset-field"}, extra=extra)
    data = weights.read_bytes()
    card_file = weights.parent / f"{weights.stem}.card.json"
    card = json.loads(card_file.read_text())
    card.update(model_id=hashlib.sha256(data).hexdigest(), bytes=len(data), date=dt.date.today().isoformat(),
                sample_tau=taus, sample_coverage_val=covs, same_coding_as=extra["same_coding_as"])
    card["demo_region"] = demo_region(weights)
    card_file.write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {weights} ({len(data):,} bytes, id {card['model_id'][:16]}) and its card")


def demo_region(weights: Path) -> dict:
    """The bundled demo region at the default level, as `topoae demo` codes it."""
    from topoae.checkpoint import load_checkpoint
    from topoae.codec import learned
    from topoae.io import open_grid
    from topoae.regions import DEMO_REGION

    shipped = learned.as_rd_model(load_checkpoint(weights))
    grid = open_grid(DEMO_REGION).load()
    h, s = learned.encode(grid, shipped)
    rec = learned.decode(h, s, shipped).values.astype(np.float64)
    x = np.asarray(grid.values, np.float64)
    return {"file": DEMO_REGION.name, "level": h["codec"]["level"],
            "bytes": len(learned.to_bytes(h, s)),
            "rmse_m": float(np.sqrt(np.mean((rec - x) ** 2))),
            "max_abs_m": float(np.max(np.abs(rec - x)))}


def fit_tables(rd, cfg, n: int):
    """``rd``'s tables fitted to its network's symbols on ``n`` training tiles (the tables it
    has are the prior, :mod:`topoae.codec.table_fit`)."""
    from topoae.codec import table_fit

    y_hist, z_hist = table_fit.collect(rd, tile_grids(cfg, "train", n))
    return table_fit.fit(rd.tables, y_hist, z_hist)


def refit_tables(weights: Path, n: int) -> None:
    """New weights: the shipped network with tables fitted on ``n`` training tiles."""
    from topoae.checkpoint import save_checkpoint
    from topoae.codec import learned, table_fit

    torch.set_num_threads(2)
    extra, old_id, cfg, net = load_network(weights)
    if "earlier_synthesis" in extra:  # its releases decode with these tables
        raise SystemExit("Error: these weights keep an earlier synthesis whose files need their tables")
    rd = shipped_model(extra, old_id, net)
    fitted = fit_tables(rd, cfg, n)
    rd = learned.RDModel(net=net, tables=fitted, model_id=old_id)
    ratios = level_ratios(rd, tile_grids(cfg, "val"))
    print("level ratios on validation tiles:", [round(r, 1) for r in ratios], flush=True)
    extra["tables"] = {k: torch.from_numpy(v) for k, v in fitted.to_arrays().items()}
    extra["level_ratios"] = ratios
    extra["tables_fitted"] = {"training_tiles": n, "prior_symbols": table_fit.PRIOR_SYMBOLS,
                              "network_of": old_id}
    save_checkpoint(weights, net, cfg, normalise={"mode": "offset-field"}, extra=extra)
    data = weights.read_bytes()
    card_file = weights.parent / f"{weights.stem}.card.json"
    card = json.loads(card_file.read_text())
    card.update(model_id=hashlib.sha256(data).hexdigest(), bytes=len(data), date=dt.date.today().isoformat(),
                level_ratios_val=ratios)
    card["tables"] = (f"fitted to the symbols of {n} training tiles at every level "
                      f"(topoae.codec.table_fit, prior weight {table_fit.PRIOR_SYMBOLS:g} symbols); "
                      f"network unchanged from model {old_id[:16]}")
    card["demo_region"] = demo_region(weights)
    card_file.write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {weights} ({len(data):,} bytes, id {card['model_id'][:16]}) and its card")


def add_context(weights: Path, ckpt: Path) -> None:
    """New weights: the shipped network and tables plus the latent context trained on it
    (``python -m topoae.training.context``). The transforms must be the shipped ones bit for
    bit; the files of the shipped weights (and of the releases they decode) still decode, one
    pass without context (``extra["without_context"]``)."""
    from dataclasses import replace

    from topoae.checkpoint import load_checkpoint, save_checkpoint

    torch.set_num_threads(2)
    extra, old_id, cfg, old_net = load_network(weights)
    if "earlier_synthesis" in extra:  # its releases decode with this network's context
        raise SystemExit("Error: these weights keep an earlier synthesis whose files need their context")
    lm = load_checkpoint(ckpt)
    net = lm.model
    if replace(net.config, context="", context_channels=old_net.config.context_channels) != old_net.config:
        raise SystemExit(f"Error: {ckpt} is not the shipped network with a context")
    own = old_net.state_dict()
    for k, v in net.state_dict().items():
        if not k.startswith("context.") and not torch.equal(v, own[k]):
            raise SystemExit(f"Error: {ckpt} changed {k}: its context was not trained on the shipped network")
    earlier = [*extra.get("same_coding_as", []), old_id]
    network_of = (extra.get("tables_fitted") or {}).get("network_of")
    extra["same_coding_as"] = earlier
    extra["without_context"] = [*extra.get("without_context", []), *earlier, *([network_of] if network_of else [])]
    rd = shipped_model(extra, old_id, net)
    ratios = level_ratios(rd, tile_grids(cfg, "val"))
    print("level ratios on validation tiles:", [round(r, 1) for r in ratios], flush=True)
    extra["level_ratios"] = ratios
    extra["sample_tau"], extra["sample_coverage_val"] = calibrate_tau(rd, tile_grids(cfg, "val"))
    extra["context_training"] = {"checkpoint": lm.model_id, **{k: lm.extra.get(k) for k in ("step", "val_ratios")}}
    cfg = replace(cfg, model=net.config)
    save_checkpoint(weights, net, cfg, normalise={"mode": "offset-field"}, extra=extra)
    data = weights.read_bytes()
    card_file = weights.parent / f"{weights.stem}.card.json"
    card = json.loads(card_file.read_text())
    card.update(model_id=hashlib.sha256(data).hexdigest(), bytes=len(data), date=dt.date.today().isoformat(),
                config=cfg.to_dict(), level_ratios_val=ratios, sample_tau=extra["sample_tau"],
                sample_coverage_val=extra["sample_coverage_val"], same_coding_as=extra["same_coding_as"],
                without_context=extra["without_context"])
    card["summary"] = (f"mean-scale hyperprior with gain units and a {net.config.context} latent "
                       f"context, 15-arcsec GEBCO, {net.config.levels} quality levels")
    card["context"] = {"schedule": net.config.context, "channels": net.config.context_channels,
                       "trained": extra["context_training"],
                       "recipe": "python -m topoae.training.context --init <the shipped weights> "
                                 "(transforms frozen; trained on the latents of the training tiles)"}
    card["demo_region"] = demo_region(weights)
    card_file.write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {weights} ({len(data):,} bytes, id {card['model_id'][:16]}) and its card")


def compact_tables(extra: dict) -> dict:
    """``extra`` with every stored table (its own ``tables`` and those of the releases in its
    ``earlier_synthesis`` chain) as int32, as :meth:`topoae.codec.tables.Tables.to_arrays`
    now writes them: the same counts (at most 2**16), half the bytes of the int64 of older
    releases; :meth:`~topoae.codec.tables.Tables.from_arrays` reads either."""
    out = dict(extra)
    if out.get("tables") is not None:
        got = {k: torch.as_tensor(v) for k, v in out["tables"].items()}
        if any(int(v.abs().max()) >= 2 ** 31 for v in got.values() if v.numel()):
            raise SystemExit("Error: a stored table does not fit int32")
        out["tables"] = {k: v.to(torch.int32) for k, v in got.items()}
    if out.get("earlier_synthesis"):
        rec = compact_tables(out["earlier_synthesis"])
        rec["extra"] = compact_tables(rec.get("extra", {}))
        out["earlier_synthesis"] = rec
    return out


def replace_synthesis(weights: Path, ckpt: Path, out: Path, refit: int = 0) -> None:
    """New weights at ``out``: the shipped network (``weights``) with the synthesis of a
    ``python -m topoae.training.synth`` checkpoint (and its analysis and hyper-analysis when it
    trained them, ``--analysis``: the encoder's side, which no decoder runs; with ``--hyper``
    also its hyper-synthesis and gains), the densities and context the shipped one's bit for
    bit. What a file decodes to does change, so the new release keeps the replaced synthesis
    (and hyper-synthesis and gains where they changed: ``extra["earlier_synthesis"]``) to decode
    the files of the release it replaces and of every release that one decoded. With ``refit`` the tables
    are fitted again to the symbols of the new analysis on that many training tiles (the
    replaced release's tables go into its record). Level ratios and τ are measured again (the
    outlier corrections follow the synthesis)."""
    from topoae.checkpoint import load_checkpoint, save_checkpoint
    from topoae.codec import learned, table_fit
    from topoae.models.hyperprior import ENCODER_SIDE, RELEASE_PARTS

    torch.set_num_threads(2)
    extra, old_id, cfg, old_net = load_network(weights)
    lm = load_checkpoint(ckpt)
    net = lm.model
    if net.config != old_net.config:
        raise SystemExit(f"Error: {ckpt} is not the shipped network")
    own = old_net.state_dict()
    changed = sorted({k.split(".")[0] for k, v in net.state_dict().items() if not torch.equal(v, own[k])})
    if set(changed) - set(ENCODER_SIDE) - set(RELEASE_PARTS):
        raise SystemExit(f"Error: {ckpt} changed {', '.join(changed)}: only the encoder's side ("
                         + ", ".join(ENCODER_SIDE) + ") and the decoder-side parts a release keeps ("
                         + ", ".join(RELEASE_PARTS) + ") may differ")
    kept = ["g_s"] + [k for k in RELEASE_PARTS if k != "g_s" and k in changed]
    extra = compact_tables(extra)
    record = {k: extra[k] for k in ("same_coding_as", "without_context", "tables_fitted",
                                    "earlier_synthesis", "sample_tau") if k in extra}
    extra = {k: v for k, v in extra.items() if k not in ("same_coding_as", "without_context",
                                                          "earlier_synthesis")}
    if "tables_fitted" in extra:  # the tables' history stays; their first release is the old one's
        extra["tables_fitted"] = {k: v for k, v in extra["tables_fitted"].items() if k != "network_of"}
    extra["earlier_synthesis"] = {"model_id": old_id,
                                  "synthesis": {k: v.clone() for k, v in own.items()
                                                if k.split(".")[0] in kept},
                                  "extra": record}
    synth = lm.train_config.get("synthesis", {})
    extra["synthesis_training"] = {"checkpoint": lm.model_id, "step": lm.extra.get("step"), "config": synth,
                                   "changed": changed}
    rd = shipped_model(extra, old_id, net)
    encoder_changed = bool(set(changed) & set(ENCODER_SIDE))
    if encoder_changed and not refit:
        print("warning: the analysis changed and the tables are not fitted to its symbols "
              "(--refit-tables N): the files will be larger than they need be", flush=True)
    if refit:
        if not encoder_changed:
            print("note: the analysis is unchanged; the tables are fitted again all the same", flush=True)
        fitted = fit_tables(rd, cfg, refit)
        extra["earlier_synthesis"]["tables"] = extra["tables"]
        extra["tables"] = {k: torch.from_numpy(v) for k, v in fitted.to_arrays().items()}
        extra["tables_fitted"] = {"training_tiles": refit, "prior_symbols": table_fit.PRIOR_SYMBOLS}
        rd = learned.RDModel(net=net, tables=fitted, model_id=old_id)
    val = tile_grids(cfg, "val")
    extra["level_ratios"] = level_ratios(rd, val)
    print("level ratios on validation tiles:", [round(r, 1) for r in extra["level_ratios"]], flush=True)
    extra["sample_tau"], extra["sample_coverage_val"] = calibrate_tau(rd, val)
    save_checkpoint(out, net, cfg, normalise={"mode": "offset-field"}, extra=extra)
    data = out.read_bytes()
    src_card = weights.parent / f"{weights.stem}.card.json"
    card = json.loads(src_card.read_text())
    card.update(model_id=hashlib.sha256(data).hexdigest(), bytes=len(data), date=dt.date.today().isoformat(),
                level_ratios_val=extra["level_ratios"], sample_tau=extra["sample_tau"],
                sample_coverage_val=extra["sample_coverage_val"])
    for k in ("same_coding_as", "without_context"):
        card.pop(k, None)
    card["earlier_synthesis"] = old_id
    if not refit and encoder_changed:
        card["tables"] = f"model {old_id[:16]}'s, not fitted again to this release's analysis"
    elif refit:
        card["tables"] = (f"fitted to the symbols of {refit} training tiles at every level "
                          f"(topoae.codec.table_fit, prior weight {table_fit.PRIOR_SYMBOLS:g} symbols) with "
                          f"this release's analysis; model {old_id[:16]}'s files decode with its own tables")
    card["synthesis"] = {
        "trained": extra["synthesis_training"],
        "recipe": "python -m topoae.training.synth --init <the shipped weights> [--analysis [--hyper]]: "
                  "the synthesis (with --analysis also the analysis and hyper-analysis, on rate + λ · "
                  "distortion; with --hyper also the hyper-synthesis and gains) fine-tuned with the "
                  "densities and context frozen, on latents rounded "
                  "as the coder rounds them, on blocks coded as a region's tiles (each side a region's "
                  "edge with probability edge_prob, mirrored as the decoder mirrors it)"}
    card["demo_region"] = demo_region(out)
    (out.parent / f"{out.stem}.card.json").write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {out} ({len(data):,} bytes, id {card['model_id'][:16]}) and its card")


def main() -> None:
    from topoae.checkpoint import save_checkpoint
    from topoae.codec import learned, tables

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", type=Path, default=REPO / "runs" / "rd" / "best.pt")
    ap.add_argument("--results", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=WEIGHTS / f"{NAME}.pt")
    ap.add_argument("--recipe", default=None,
                    help="how the checkpoint was trained, in words (warm starts and their runs), "
                         "for the card")
    ap.add_argument("--refit-tables", type=int, default=0, metavar="N",
                    help="refit the probability tables of the already shipped weights (--out) on N "
                         "(with --synthesis: of the new weights, keeping the old tables for the old files) "
                         "training tiles (topoae.codec.table_fit), re-measure the level ratios, and "
                         "write new weights (a new model id) and card")
    ap.add_argument("--recalibrate", action="store_true",
                    help="calibrate the ensemble τ of the already shipped weights (--out) again and "
                         "write new weights (a new model id that still decodes the files of the old)")
    ap.add_argument("--card-only", action="store_true",
                    help="only re-measure the card of the already shipped weights (demo region, "
                         "and --results when given)")
    ap.add_argument("--add-context", type=Path, default=None, metavar="CKPT",
                    help="add the latent context of a topoae.training.context checkpoint to the already "
                         "shipped weights (--out), re-measure the level ratios and τ, write new weights")
    ap.add_argument("--synthesis", type=Path, default=None, metavar="CKPT",
                    help="replace the synthesis of the already shipped weights (--out) with that of a "
                         "topoae.training.synth checkpoint (written to --to, default --out), re-measure "
                         "the level ratios and τ, write new weights that still decode the old files")
    ap.add_argument("--to", type=Path, default=None, help="where --synthesis writes (default --out)")
    a = ap.parse_args()
    if a.synthesis:
        replace_synthesis(a.out, a.synthesis, a.to or a.out, a.refit_tables)
        return
    if a.add_context:
        add_context(a.out, a.add_context)
        return
    if a.refit_tables:
        refit_tables(a.out, a.refit_tables)
        return
    if a.recalibrate:
        recalibrate(a.out)
        return
    if a.card_only:
        card_file = a.out.parent / f"{a.out.stem}.card.json"
        card = json.loads(card_file.read_text())
        if a.results:
            res = json.loads(a.results.read_text())
            card["rate_distortion"] = {n: {"at": r["at"], "bd_rate_vs_sperr": r["bd_rate_vs_sperr"],
                                           "bounded": r["bounded"]} for n, r in res["regions"].items()}
            card["throughput"] = res.get("throughput")
        card["demo_region"] = demo_region(a.out)
        card_file.write_text(json.dumps(card, indent=1) + "\n")
        print(f"updated {card_file}")
        return
    torch.set_num_threads(2)
    record, src_id, cfg, net = load_network(a.ckpt)
    frozen = tables.freeze(net.z_density)
    rd = learned.RDModel(net=net, tables=frozen, model_id=src_id)
    grids = tile_grids(cfg, "val")
    ratios = level_ratios(rd, grids)
    print("level ratios on validation tiles:", [round(r, 1) for r in ratios], flush=True)
    taus, covs = calibrate_tau(rd, grids)
    extra = {
        "tables": {k: torch.from_numpy(v) for k, v in frozen.to_arrays().items()},
        "level_ratios": ratios,
        "sample_tau": taus,
        "sample_coverage_val": covs,
        "trained": {k: record.get(k) for k in ("step",) if k in record},
        "source_checkpoint": src_id,
    }
    save_checkpoint(a.out, net, cfg, normalise={"mode": "offset-field"}, extra=extra)
    data = a.out.read_bytes()
    metrics_csv = a.ckpt.parent / "metrics.csv"
    curve = list(csv.DictReader(metrics_csv.open())) if metrics_csv.exists() else []
    card = {
        "name": "hyperprior-gebco15",
        "kind": "hyperprior",
        "model_id": hashlib.sha256(data).hexdigest(),
        "file": a.out.name,
        "bytes": len(data),
        "date": dt.date.today().isoformat(),
        "summary": "mean-scale hyperprior with gain units, 15-arcsec GEBCO, "
                   f"{cfg.model.levels} quality levels",
        "config": cfg.to_dict(),
        "training": {"steps": record.get("step"), "last_logged": curve[-1] if curve else None,
                     "data": "GEBCO 15-arcsec tiles of ../shared/data/gebco_15s/tiles, whole tiles per "
                             "split (benchmarks/rd_split.json); 135-150E 30-45N excluded upstream",
                     "machine": "2-core CPU, 2 threads, no GPU",
                     **({"recipe": a.recipe} if a.recipe else {})},
        "level_ratios_val": ratios,
        "sample_tau": taus,
        "sample_coverage_val": covs,
    }
    card["demo_region"] = demo_region(a.out)
    if a.results and a.results.exists():
        res = json.loads(a.results.read_text())
        card["rate_distortion"] = {n: {"at": r["at"], "bd_rate_vs_sperr": r["bd_rate_vs_sperr"]}
                                   for n, r in res["regions"].items()}
    (a.out.parent / f"{a.out.stem}.card.json").write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {a.out} ({len(data):,} bytes, id {card['model_id'][:16]}) and its card")


if __name__ == "__main__":
    from topoae.errors import TopoAEError

    try:
        main()
    except TopoAEError as exc:  # a missing or mismatched checkpoint: one line, not a traceback
        raise SystemExit(f"Error: {exc}") from None
