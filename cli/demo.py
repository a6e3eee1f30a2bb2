"""``topoae demo``: the whole pipeline on the bundled region, no arguments needed."""

from __future__ import annotations

import click

from topoae.cli._common import units_option


@click.command()
@click.option("--out", default="topoae-demo", show_default=True, type=click.Path(), help="Folder to create.")
@click.option("--model", "model_path", default=None, type=click.Path(dir_okay=False),
              help="Checkpoint [the shipped model].")
@click.option("--region", default=None, type=click.Path(exists=True),
              help="Grid to compress [the bundled GEBCO 15-arc-second Suruga Bay tile].")
@units_option(what="--region")
@click.option("--members", default=16, show_default=True, help="Ensemble members to draw.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output folder.")
def demo(out, model_path, region, units, members, overwrite):
    """Encode, decode, measure, plot, sample and export the bundled region with the shipped model."""
    from topoae.demo import run_demo

    res = run_demo(out, model=model_path, region=region, members=members, overwrite=overwrite,
                   echo=click.echo, units=units)
    click.echo(f"\nwrote {res.out}/ in {res.seconds:.0f} s:")
    for f in res.files:
        click.echo(f"  {f}")
    click.echo("\nthe same on your own GEBCO file:\n"
               "  topoae encode GEBCO.nc --bbox W,S,E,N --ratio 100 --out region.tae\n"
               "  topoae decode region.tae --out recon.nc\n"
               "  topoae encode GEBCO.nc --bbox W,S,E,N --max-error 10 --out bounded.tae\n"
               "  topoae sample region.tae --out ensemble.nc\n"
               "  topoae export exahype recon.nc --out exahype/")
