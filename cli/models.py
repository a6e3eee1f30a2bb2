"""``topoae models``: the registered models, which are installed, which is the default."""

from __future__ import annotations

import click


@click.command()
def models():
    """List the model zoo: name, kind, installed, default, id and a one-line summary."""
    from topoae.zoo import installed

    for row in installed():
        flags = ("default, " if row["default"] else "") + ("installed" if row["installed"] else "not installed")
        click.echo(f"{row['name']:20s} {row['kind'] or '?':12s} {flags:22s} {row['model_id'] or '-':16s} "
                   f"{row['summary']}")
