"""The progress line (pat_watchdog/progress.py): only on a terminal, only past 20 instances, redrawn in place
at most every interval, counted from several threads, ended by a newline."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

from pat_watchdog import progress


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as a person's stderr does."""

    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_only_a_terminal_gets_a_progress_line():
    assert isinstance(progress.on_terminal(Terminal()), progress.Progress)
    assert progress.on_terminal(io.StringIO()) is None              # a pipe or a file
    assert progress.on_terminal(Terminal(), quiet=True) is None     # -v: the log lines say it
    assert progress.on_terminal(object()) is None                   # no isatty at all


def test_nothing_is_drawn_for_20_instances_or_fewer():
    out = Terminal()
    tally = progress.Progress(out, interval=0)
    work = tally.tallied(lambda n: n * 2)
    assert [work(n) for n in tally.counted(range(20))] == [n * 2 for n in range(20)]
    tally.close()
    assert out.getvalue() == ""


def test_the_line_counts_found_and_observed_and_ends_with_a_newline():
    out, clock = Terminal(), Clock()
    tally = progress.Progress(out, interval=1.0, clock=clock)
    work = tally.tallied(lambda n: n)
    found = list(tally.counted(range(21)))          # found, none observed yet: the 21st draws the first line
    assert out.getvalue() == "\robserved 0 of 21 found..."
    work(found[0])                                  # within the interval: not redrawn
    assert out.getvalue() == "\robserved 0 of 21 found..."
    clock.now = 1.5
    work(found[1])
    assert out.getvalue().endswith("\robserved 2 of 21 found...")
    for item in found[2:]:
        work(item)
    tally.close()
    assert out.getvalue().endswith("\robserved 21 of 21 found  \n")     # spaces over the longer line before
    assert out.getvalue().count("\n") == 1


def test_a_failed_observation_still_counts():
    out = Terminal()
    tally = progress.Progress(out, interval=0)

    def boom(_):
        raise RuntimeError("x")

    work = tally.tallied(boom)
    for item in tally.counted(range(25)):
        try:
            work(item)
        except RuntimeError:
            pass
    tally.close()
    assert out.getvalue().endswith("observed 25 of 25 found   \n")


def test_counts_from_a_thread_pool_add_up():
    out = Terminal()
    tally = progress.Progress(out, interval=0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(tally.tallied(lambda n: n + 1), tally.counted(range(1000))))
    tally.close()
    assert results == list(range(1, 1001))
    lines = out.getvalue().split("\r")[1:]
    assert lines[-1] == "observed 1000 of 1000 found   \n"
    counts = [tuple(int(w) for w in line.split()[1:4:2]) for line in lines]
    assert all(observed <= found for observed, found in counts)
    assert [found for _, found in counts] == sorted(found for _, found in counts)
