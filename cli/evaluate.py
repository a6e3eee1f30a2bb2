"""``topoae evaluate``: measure a model against the classic compressors.

Two forms, told apart by SOURCE:

- a region (any grid ``open_grid`` reads): topoae's codec and the baselines at
  matched compression ratios, written to ``--out`` (results.json, report.md, figures);
- a patch store (Zarr, ``attrs["topoae"]["kind"] == "patches"``): the model's
  reconstruction metrics on one split (thesis Table 5.1 and metres).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from topoae.cli._common import bbox_option, units_option, var_option

DEFAULT_COMPARE = "sz3,sperr,zfp,jpeg2000,jpegxl,lerc,pca,dct,downsample"


def _is_patch_store(path: Path) -> bool:
    if not path.is_dir() or not ((path / "zarr.json").exists() or (path / ".zgroup").exists()):
        return False
    import zarr

    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:  # noqa: BLE001 - any unreadable store is simply not a patch store
        return False
    meta = attrs.get("topoae")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            return False
    return isinstance(meta, dict) and meta.get("kind") == "patches"


def _ratios(text: str) -> tuple[float, ...]:
    from topoae.errors import ConfigError

    try:
        vals = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ConfigError(f"--ratios must be numbers separated by commas, got {text!r}") from None
    if not vals:
        raise ConfigError("--ratios is empty")
    return vals


@click.command()
@click.argument("source", type=click.Path(exists=True))
@click.option(
    "--model",
    "ckpt",
    type=click.Path(exists=True, dir_okay=False),
    help="topoae checkpoint [the shipped model].",
)
@click.option("--no-model", is_flag=True, help="Run the baselines only (region form).")
@click.option(
    "--compare",
    default=DEFAULT_COMPARE,
    show_default=True,
    help="Baselines, comma-separated (missing libraries are skipped with a warning).",
)
@click.option(
    "--ratios",
    default="92,369",
    show_default=True,
    help="Target compression ratios (float32 bytes / compressed bytes); one within 1 % of "
    "topoae's own ratio is replaced by it.",
)
@click.option(
    "--max-error",
    type=float,
    default=None,
    metavar="METRES",
    help="Also compare the bytes needed to keep every cell within this bound.",
)
@click.option(
    "--out",
    type=click.Path(),
    default=None,
    help="Report folder (region form; default REPORT). Patch-store form: results.json folder.",
)
@bbox_option
@var_option
@units_option(what="the region (region form)")
@click.option(
    "--pca-fit",
    type=click.Path(exists=True),
    default=None,
    help="Grid to fit the PCA baseline's basis on (Tohoku box excluded); default synthetic terrain.",
)
@click.option(
    "--quantize",
    type=click.Choice(["8bit", "none"]),
    default="8bit",
    show_default=True,
    help="topoae latent storage.",
)
@click.option(
    "--stride", type=int, default=None, help="topoae codec stride (default: the codec's)."
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="Where the model runs: auto (cuda when available, else cpu), cpu, cuda "
    "(region form also cuda:N).",
)
@click.option("--no-figures", is_flag=True, help="Skip the PNG figures.")
@click.option(
    "--split",
    type=click.Choice(["train", "val", "test", "all"]),
    default="test",
    show_default=True,
    help="Patch-store form: which split.",
)
@click.option(
    "--out-png",
    type=click.Path(),
    default=None,
    help="Patch-store form: figure of originals, reconstructions and errors.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
def evaluate(
    source,
    ckpt,
    no_model,
    compare,
    ratios,
    max_error,
    out,
    bbox,
    var,
    units,
    pca_fit,
    quantize,
    stride,
    device,
    no_figures,
    split,
    out_png,
    overwrite,
):
    """Measure topoae on SOURCE (a region, or a patch store) against the classic compressors."""
    from topoae.errors import ConfigError

    src = Path(source)
    if ckpt is None and not no_model:
        from topoae.zoo import DEFAULT, PATCH_DEFAULT, REGISTRY, WEIGHTS

        # a region: the default learned codec; a patch store: the default patch model
        name = PATCH_DEFAULT if _is_patch_store(src) else DEFAULT
        if (WEIGHTS / REGISTRY[name]).is_file():
            ckpt = str(WEIGHTS / REGISTRY[name])
    if _is_patch_store(src):
        if ckpt is None:
            raise ConfigError("a patch store is evaluated with a model: pass --model CKPT")
        _store_form(src, ckpt, split, out_png, out, device, overwrite)
        return
    from topoae.evaluation import EvaluateConfig
    from topoae.io import open_grid, parse_bbox
    from topoae.report import run_evaluation

    cfg = EvaluateConfig(
        ratios=_ratios(ratios),
        compare=tuple(c for c in compare.split(",") if c.strip()),
        max_error=max_error,
        figures=not no_figures,
        pca_fit=pca_fit,
        quantize=quantize,
        stride=stride,
        device=device,
    )
    out = Path(out or "REPORT")
    from topoae._atomic import check_output

    check_output(out, overwrite=overwrite)
    model = None
    if ckpt is not None:
        from topoae.checkpoint import load_checkpoint

        model = load_checkpoint(ckpt, map_location="cpu")
    grid = open_grid(src, var=var, bbox=parse_bbox(bbox) if bbox else None, units=units).load()
    click.echo(
        f"{src.name}: {grid.shape[0]}x{grid.shape[1]} cells; ratios {', '.join(map(str, cfg.ratios))}",
        err=True,
    )
    res = run_evaluation(
        grid,
        out,
        model=model,
        config=cfg,
        overwrite=overwrite,
        progress=lambda line: click.echo(line, err=True),
    )
    click.echo(f"wrote {out}/report.md, results.json and {len(res.get('figures', []))} figures")


def _store_form(
    store: Path, ckpt: str, split: str, out_png, out, device: str, overwrite: bool
) -> None:
    from topoae._atomic import atomic_path, check_output
    from topoae.training import evaluate_store

    if out is not None:
        check_output(out, overwrite=overwrite)
    res = evaluate_store(
        ckpt,
        store,
        split=None if split == "all" else split,
        out_png=out_png,
        device=device,
        overwrite=overwrite,
    )
    for k in ("total_l2", "max_patch_l2", "rmse_m", "mae_m", "max_abs_m", "psnr_db", "ssim"):
        if k in res:
            click.echo(
                f"{k:>14s}  {res[k]:.6g}" if isinstance(res[k], float) else f"{k:>14s}  {res[k]}"
            )
    if out is not None:
        with atomic_path(out, overwrite=overwrite) as tmp:
            tmp.mkdir(parents=True)
            (tmp / "results.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
        click.echo(f"wrote {out}/results.json")
