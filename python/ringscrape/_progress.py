"""Progress where the CLI draws none. On a terminal the CLI draws its own bar (its stderr is a
pseudo-terminal, see _stderr.py); in a Jupyter notebook, whose output is no terminal, a line of
rows and rows per second is redrawn in place as batches arrive; elsewhere (a log) nothing but the
CLI's closing summary.
"""

from __future__ import annotations

import sys
import time

_REDRAW_S = 0.5


def in_notebook() -> bool:
    """Whether this is a Jupyter (IPython kernel) process."""
    return "ipykernel" in sys.modules


class RowCounter:
    """`rows N (R/s)` on stderr, redrawn with a carriage return at most every half second."""

    def __init__(self) -> None:
        self._rows = 0
        self._start = time.monotonic()
        self._drawn = self._start  # the first drawing after half a second: a rate worth reading

    def add(self, rows: int) -> None:
        """Counts `rows` more, redrawing when the last drawing is old enough."""
        self._rows += rows
        now = time.monotonic()
        if now - self._drawn >= _REDRAW_S:
            self._drawn = now
            self._draw(now)

    def close(self) -> None:
        """Draws the final count and ends the line."""
        self._draw(time.monotonic())
        sys.stderr.write("\n")
        sys.stderr.flush()

    def _draw(self, now: float) -> None:
        rate = self._rows / max(now - self._start, 1e-9)
        sys.stderr.write(f"\rringscrape: {self._rows:,} rows ({rate:,.0f}/s)")
        sys.stderr.flush()
