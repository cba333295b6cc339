"""Progress of a long step, for a person at a terminal and for a log alike.

`progress(...)` is a tqdm bar when stderr is a terminal. When it is not (output piped into a
file or a process manager such as honcho), a bar would fill the log with carriage returns and
tqdm's `disable=None` shows nothing at all, so it writes one line when the step ends instead:
"sessions: 3,589 in 62.7 s". `show=False` writes neither.
"""

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from tqdm import tqdm


class LineProgress:
    """tqdm's interface as far as the project uses it (iterate, `update`, `close`, `with`),
    writing one summary line at `close` (or at the end of the iteration)."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        file: TextIO | None = None,
    ) -> None:
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit.strip()
        self.file = file
        self.n = 0
        self._started = time.perf_counter()
        self._closed = False

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("Nothing to iterate: pass an iterable, or call update().")
        try:
            for item in self.iterable:
                yield item
                self.n += 1
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        seconds = time.perf_counter() - self._started
        name = f"{self.desc}: " if self.desc else ""
        of = f" of {self.total:,}" if self.total is not None and self.total != self.n else ""
        file = self.file or sys.stderr
        print(f"{name}{self.n:,}{of} {self.unit} in {seconds:.1f} s", file=file, flush=True)

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    show: bool = True,
    file: TextIO | None = None,
    **tqdm_options: Any,
) -> Any:
    """A tqdm bar on a terminal, one summary line otherwise, nothing with `show=False`."""
    stream = file or sys.stderr
    if show and not _is_terminal(stream):
        return LineProgress(iterable, total=total, desc=desc, unit=unit, file=stream)
    return tqdm(
        iterable,
        total=total,
        desc=desc or None,
        unit=unit,
        file=stream,
        disable=not show,
        **tqdm_options,
    )


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
