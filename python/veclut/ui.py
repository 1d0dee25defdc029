"""Console output: one place for messages, spinners and progress bars (rich)."""

from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def info(message: str) -> None:
    console.print(f"[bold]veclut:[/bold] {message}")


def error(message: str) -> None:
    console.print(f"[bold red]veclut: error:[/bold red] {message}", soft_wrap=True)


@contextmanager
def status(message: str):
    with console.status(message):
        yield


def progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=True)
