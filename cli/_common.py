"""Pieces shared by the CLI commands: the dask scheduler choice, grid options."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

SCHEDULER_HELP = "Dask scheduler: threads, processes, synchronous, or a dask.distributed address (tcp://host:port)."


@contextlib.contextmanager
def scheduler(name: str) -> Iterator[None]:
    """Run the block under the chosen dask scheduler (the library never picks one itself)."""
    import dask

    if name in ("threads", "processes", "synchronous", "sync", "single-threaded"):
        with dask.config.set(scheduler=name):
            yield
        return
    from topoae.errors import ConfigError

    if "://" not in name and ":" not in name:
        raise ConfigError(
            f"--scheduler must be threads, processes, synchronous or an address, not {name!r}"
        )
    from distributed import Client

    try:
        client = Client(name, timeout="10s", set_as_default=False)
    except OSError as exc:
        raise ConfigError(f"cannot reach the dask scheduler at {name}: {exc}") from None
    try:
        with dask.config.set(scheduler=client.get):
            yield
    finally:
        client.close()


class _Silent:
    def update(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def progress(total: int, label: str) -> Iterator:
    """A progress bar on a terminal's stderr; nothing at all in logs and pipes (where a bar's
    label would sit in front of the one ``Error:`` line of a run that fails)."""
    import sys

    if not sys.stderr.isatty():
        yield _Silent()
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar


def bbox_option(f):
    return click.option(
        "--bbox",
        default=None,
        metavar="W,S,E,N",
        help="Subset box in the grid's coordinates (degrees, or metres on projected grids); "
        "W > E crosses the antimeridian, on grids that span it.",
    )(f)


def var_option(f):
    return click.option("--var", default=None, help="Elevation variable (detected when omitted).")(
        f
    )


def units_option(f=None, *, what: str = "the grid"):
    """``--units m|ft``: override the units of the grid read (feet are converted to metres)."""

    def deco(g):
        return click.option(
            "--units",
            type=click.Choice(["m", "ft"]),
            default=None,
            help=f"Units of {what}, overriding the file's (ft: feet, converted to metres).",
        )(g)

    return deco if f is None else deco(f)


def displacement_origin_option(f):
    """``--displacement-origin LON,LAT``: the frame of a projected displacement grid."""
    return click.option(
        "--displacement-origin",
        default=None,
        metavar="LON,LAT",
        help="The projected displacement's x/y are metres of a transverse Mercator centred "
        "here (needed on a geographic bathymetry when the file has no CRS; overrides one). "
        "You must know the file's frame: topoae cannot guess it.",
    )(f)
