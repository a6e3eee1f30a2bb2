"""Entry point of the ``topoae`` command.

The group is lazy: each subcommand lives in its own module and is imported only
when invoked, so ``topoae --help`` never imports torch, dask or xarray.
Library errors (:class:`topoae.errors.TopoAEError`) become one line on stderr.
Exit status: 0 on success, 1 on every error (bad input, usage errors such as an
unknown option or a missing argument), 130 on Ctrl-C.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import click

from topoae._version import __version__

# name -> (module, attribute, one-line help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("topoae.cli.demo", "demo", "Run the whole pipeline on the bundled region."),
    "tile": ("topoae.cli.tile", "tile", "Cut a grid into normalised patches in a Zarr store."),
    "train": (
        "topoae.cli.train",
        "train",
        "Train an AE / VAE / DFC-VAE / VAE-GAN on a patch store.",
    ),
    "encode": ("topoae.cli.codec", "encode", "Compress a region into one file (.tae)."),
    "decode": ("topoae.cli.codec", "decode", "Decode a file back onto the original grid."),
    "models": ("topoae.cli.models", "models", "List the models this install has."),
    "sample": ("topoae.cli.codec", "sample", "Draw an ensemble of plausible bathymetries."),
    "evaluate": (
        "topoae.cli.evaluate",
        "evaluate",
        "Measure a model against the classic compressors.",
    ),
    "export": (
        "topoae.cli.export",
        "export",
        "Write bathymetry as input for ExaHyPE, GeoClaw, ANUGA.",
    ),
    "simulate": (
        "topoae.cli.simulate",
        "simulate",
        "Run a shallow-water check: original vs reconstruction.",
    ),
}


def _available(name: str) -> bool:
    module = COMMANDS[name][0]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(n for n in COMMANDS if _available(n))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS or not _available(cmd_name):
            return None
        module, attr, _ = COMMANDS[cmd_name]
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(n, COMMANDS[n][2]) for n in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def make_context(self, info_name, args, parent=None, **extra):  # noqa: D401 - click API
        # usage errors of the group itself (``topoae --bogus``) exit 1, like every error
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `topoae`: the help, exit 0
            exc.exit_code = 0  # type: ignore[misc]  # see invoke below
            raise
        except click.UsageError as exc:
            exc.exit_code = 1  # type: ignore[misc]  # see invoke below
            raise

    def invoke(self, ctx: click.Context):  # noqa: D401 - click API
        from topoae.errors import TopoAEError

        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `topoae export`: help, exit 0
            exc.exit_code = 0  # type: ignore[misc]
            raise
        except click.UsageError as exc:  # unknown command, a subcommand's bad option or argument
            # click declares exit_code a ClassVar, yet reads it from the instance at exit
            exc.exit_code = 1  # type: ignore[misc]
            raise
        except TopoAEError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            click.echo(f"Error: {first}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="topoae")
def cli() -> None:
    """topoae: compress topography and bathymetry grids with deep generative models."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point.

    A warning is one ``Warning: ...`` line on stderr, like an error's ``Error: ...`` line
    (not Python's default two lines with the library's file path and source line).
    """
    import warnings

    warnings.formatwarning = lambda message, category, filename, lineno, line=None: (
        f"Warning: {message}\n"
    )
    cli.main(args=argv, prog_name="topoae", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
