"""The ``gruow`` command: one sub-command per job, each a thin layer over a library function."""
from __future__ import annotations

import logging
import os
import signal
import sys

import typer
from rich.logging import RichHandler

from data import GruowError

from . import __version__
from ._common import emit_json, err_console

app = typer.Typer(
    name="gruow",
    help="GRU-ow: forecast ETH/USDC minute candles with a GRU, backtest and paper-trade the forecasts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class _StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is at the time of each record
    (tests and embedding code swap it; a handler bound at start-up would write to a stale stream)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # logging.StreamHandler assigns it in __init__
        pass


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gruow {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug details to stderr."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log only warnings and errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    if err_console.is_terminal:
        handler: logging.Handler = RichHandler(console=err_console, show_path=False, rich_tracebacks=False)
        fmt = "%(message)s"
    else:
        # plain lines when piped or captured: rich would wrap long paths at 80 columns
        handler = _StderrHandler()
        fmt = "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(level=level, format=fmt, handlers=[handler], force=True)
    if not verbose:  # torch logs cache statistics at INFO when the process exits
        logging.getLogger("torch").setLevel(logging.WARNING)


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


def _sigterm(signum, frame):
    # SIGTERM takes the same path as Ctrl-C, so every cleanup handler (temp files, run folders,
    # checkpoints) runs before the process exits
    raise KeyboardInterrupt


def _fail(message: str, code: int) -> None:
    err_console.print("[bold red]error:[/] ", end="", highlight=False)
    err_console.print(message, markup=False, highlight=False, soft_wrap=True)
    if "--json" in sys.argv[1:]:
        # a script asked for JSON: give it a document to parse on stdout too
        emit_json({"error": message, "exit_code": code})
    sys.exit(code)


def main() -> None:
    """Console-script entry point: user mistakes become one ``error:`` line and exit code 2;
    Ctrl-C and SIGTERM exit 130 after cleanup, with a note on stderr."""
    signal.signal(signal.SIGTERM, _sigterm)
    try:
        app()  # standalone: click prints usage errors itself and exits 2
    except GruowError as exc:
        _fail(str(exc), 2)
    except (KeyboardInterrupt, SystemExit) as exc:
        # typer itself turns Ctrl-C (and SIGTERM, see _sigterm) into a silent exit 130
        if isinstance(exc, KeyboardInterrupt) or exc.code == 130:
            err_console.print("interrupted", markup=False, highlight=False)
            sys.exit(130)
        raise
    except OSError as exc:
        # a path the user gave that cannot be used (a file where a folder must be, no permission,
        # disk full): one line naming it; an OSError without a file name is a bug and propagates
        if not exc.filename:
            raise
        if isinstance(exc, NotADirectoryError) or (isinstance(exc, FileExistsError) and os.path.isfile(exc.filename)):
            reason = "a file stands where a folder must be (give a path inside a folder)"
        else:
            reason = exc.strerror or str(exc)
        _fail(f"{exc.filename}: {reason}", 2)


if __name__ == "__main__":
    main()
