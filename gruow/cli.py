"""The ``gruow`` command: one sub-command per job, each a thin layer over a library function."""
from __future__ import annotations

import logging
import sys

import typer
from rich.logging import RichHandler

from data import GruowError

from ._common import err_console

app = typer.Typer(
    name="gruow",
    help="GRU-ow: forecast ETH/USDC minute candles with a GRU, backtest and paper-trade the forecasts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details to stderr."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log only warnings and errors."),
) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, rich_tracebacks=False)],
        force=True,
    )


def _register() -> None:
    # each area owns one module that adds its commands to `app`
    import importlib

    for mod in ("_cli_data", "_cli_download", "_cli_forecast", "_cli_backtest", "_cli_paper", "_cli_demo"):
        try:
            importlib.import_module(f"gruow.{mod}").register(app)
        except ModuleNotFoundError as exc:  # area not built yet
            if exc.name != f"gruow.{mod}":
                raise


_register()


def main() -> None:
    """Console-script entry point: user mistakes become one ``error:`` line and exit code 2."""
    try:
        app()  # standalone: click prints usage errors itself and exits 2
    except GruowError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
