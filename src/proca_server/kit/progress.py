"""Progress of a long command on stderr: a rich progress bar on a terminal, plain lines
(at most one every `PLAIN_EVERY` seconds, and one at the end) otherwise, so a log file or a
pipe gets a readable record rather than control characters.

Nothing goes to stdout, which may be the command's data (a CSV piped elsewhere). Work of
known size zero draws nothing and prints nothing."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

PLAIN_EVERY = 10.0


class Progress:
    """`with Progress("exporting", total) as bar: bar.advance(n)`; total may be None.

    `bar.advance` is the `on_progress` callback services take."""

    def __init__(
        self, label: str, total: int | None = None, *, stream: TextIO | None = None
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self._stream = stream or sys.stderr
        self._rich: RichProgress | None = None
        self._task: TaskID | None = None
        self._last_line = 0.0
        self._printed: int | None = None

    @property
    def interactive(self) -> bool:
        return self._stream.isatty()

    def __enter__(self) -> Progress:
        if self.interactive and self.total != 0:
            from rich.console import Console
            from rich.progress import Progress as RichProgress

            bar = RichProgress(
                console=Console(file=self._stream),
                transient=True,
                # stdout stays the command's own; other stderr writes print above the bar
                redirect_stdout=False,
                redirect_stderr=self._stream is sys.stderr,
            )
            self._task = bar.add_task(self.label, total=self.total)
            bar.start()
            self._rich = bar
        else:
            self._last_line = time.monotonic()
        return self

    def advance(self, count: int = 1) -> None:
        self.done += count
        if self._rich is not None:
            assert self._task is not None
            self._rich.update(self._task, advance=count)
        elif time.monotonic() - self._last_line >= PLAIN_EVERY:
            self._line()

    def _line(self) -> None:
        of = f" of {self.total:,}" if self.total is not None else ""
        print(f"{self.label}: {self.done:,}{of}", file=self._stream, flush=True)
        self._last_line = time.monotonic()
        self._printed = self.done

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._rich is not None:
            self._rich.stop()
        elif exc_type is None and self.done and self._printed != self.done:
            self._line()
