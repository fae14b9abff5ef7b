"""Progress on a terminal: `observed 120 of 340 found...` on stderr, rewritten in place while `status` or `run`
observes more than 20 instances (docs/reference.md, "Commands and exit codes").

Only on a terminal (never on a pipe or a file, so logs and scripts see nothing), and never on stdout,
which `--json` keeps one JSON document. Instances are found by the run's main thread as discovery pages
arrive, and observed by the worker pool's threads: the counts are kept under a lock, and the line is
redrawn at most every `interval` seconds, so 5,000 instances cost a few hundred writes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO, TypeVar

T = TypeVar("T")
R = TypeVar("R")
SHOWN_ABOVE = 20        # instances found before the line appears: a small run ends before anyone waits


class Progress:
    """Counts found and observed instances and draws the line; `close` ends it with a newline."""

    def __init__(self, stream: TextIO, *, interval: float = 0.1, clock: Callable[[], float] = time.monotonic):
        self._stream, self._interval, self._clock = stream, interval, clock
        self._lock = threading.Lock()
        self._found = self._observed = 0
        self._drawn_at: float | None = None
        self._width = 0

    def counted(self, items: Iterable[T]) -> Iterator[T]:
        """The items, each counted as found as it is handed on."""
        for item in items:
            with self._lock:
                self._found += 1
                self._draw()
            yield item

    def tallied(self, work: Callable[[T], R]) -> Callable[[T], R]:
        """`work`, each call counted as observed when it returns (or raises)."""
        def one(item: T) -> R:
            try:
                return work(item)
            finally:
                with self._lock:
                    self._observed += 1
                    self._draw()
        return one

    def close(self) -> None:
        """The last counts, and the newline that gives the terminal back (nothing when nothing was drawn)."""
        with self._lock:
            if self._drawn_at is not None:
                self._draw(final=True)
                self._stream.write("\n")
                self._stream.flush()

    def _draw(self, final: bool = False) -> None:
        if self._found <= SHOWN_ABOVE and self._drawn_at is None:
            return
        now = self._clock()
        if not final and self._drawn_at is not None and now - self._drawn_at < self._interval:
            return
        self._drawn_at = now
        text = f"observed {self._observed} of {self._found} found" + ("" if final else "...")
        # \r and spaces over the longer line before, no terminal escape codes (consoles that lack them too)
        self._stream.write("\r" + text.ljust(self._width))
        self._stream.flush()
        self._width = len(text)


def on_terminal(stream: TextIO, *, quiet: bool = False) -> Progress | None:
    """A Progress when `stream` is a terminal (and not `quiet`, e.g. `-v` logs there); else None."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):    # no isatty, or a closed stream
        tty = False
    return Progress(stream) if tty and not quiet else None
