"""User-facing errors: one clear line naming the file (and line), never a traceback."""

from __future__ import annotations

from pathlib import Path

import click


class ReproError(click.ClickException):
    """A mistake in the user's input or environment, reported as one line.

    The CLI prints ``error: <message>`` and exits with code 2; ``repro -v`` adds the traceback.
    """

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class BadInputError(ReproError):
    """A malformed line or record in an input file."""


class NonFiniteWeightsError(ReproError):
    """The model gave a text NaN or infinite weights: refused, since quantizing would drop them as
    silent zeros. ``index``: the text's position in the encoder call; ``what``: how it is named."""

    def __init__(self, index: int, what: str | None = None, path: str | Path | None = None) -> None:
        super().__init__(f"the model produced NaN or infinite weights for {what or f'text {index + 1}'} (broken "
                         "model weights, or an overflow in float16)", path)
        self.index = index


def short(text: str, limit: int = 80) -> str:
    """Cut a (possibly huge) offending line so an error message stays one readable line."""
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def success(line: str) -> None:
    """Print a command's success line, once its outputs are complete; Ctrl-C is ignored from here on.

    So an interrupted command either exits 130 without the success line, or exits 0 with it:
    never both (docs/reliability.md).
    """
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    click.echo(line)
