"""Progress bars for long work: rich, on stderr, shown only on a terminal."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(enabled: bool = True) -> Progress:
    """A rich Progress on stderr; disabled when ``enabled`` is false or stderr is not a terminal
    (then nothing is drawn, so logs and piped output stay clean). Every task needs an ``info``
    field (text shown after the bar): ``bar.add_task("epochs", total=n, info="")``."""
    console = Console(stderr=True)
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        disable=not (enabled and console.is_terminal),
        transient=False,
    )
