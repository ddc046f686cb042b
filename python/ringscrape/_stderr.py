"""The child's stderr: passed on to ours as it comes (the CLI's progress bar, its summary), its
last lines kept so that a failure raises the CLI's own `error:` line.

On a terminal the child writes to a pseudo-terminal of ours, so that it draws its progress bar
as it does in a shell (it draws none on a pipe); elsewhere (a notebook, Airflow's log) on a pipe.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import os
import pty
import re
import sys
import termios
import threading
import tty
from typing import IO, Optional

_KEPT_LINES = 50
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def stderr_is_terminal() -> bool:
    """Whether our stderr is a terminal (then the child gets a pseudo-terminal)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without it, or closed
        return False


class StderrRelay:
    """Reads the child's stderr on a thread, copies it to `sys.stderr` (unless `silent`; at
    `release` when `hold`, so that it does not cut into a row count drawn meanwhile) and keeps
    its last lines."""

    def __init__(self, terminal: bool, silent: bool, hold: bool) -> None:
        self._silent = silent
        self._hold = hold
        self._held: list[str] = []
        self._tail: collections.deque[str] = collections.deque(maxlen=_KEPT_LINES)
        self._partial = ""
        if terminal:
            self._read_fd, self.child_fd = pty.openpty()
            tty.setraw(self.child_fd)  # bytes pass as written: our terminal does the rest
            _copy_window_size(self.child_fd)
        else:
            self._read_fd, self.child_fd = os.pipe()
        self._thread = threading.Thread(target=self._relay, name="ringscrape-stderr", daemon=True)

    def start(self) -> None:
        """Starts relaying; call once the child holds `child_fd` (it is closed here)."""
        os.close(self.child_fd)
        self._thread.start()

    def close_unused(self) -> None:
        """Closes both ends when no child was started."""
        os.close(self.child_fd)
        os.close(self._read_fd)

    def _relay(self) -> None:
        """Copies until every holder of the child's end has closed it."""
        out: Optional[IO[str]] = None if self._silent else sys.stderr
        try:
            while True:
                try:
                    chunk = os.read(self._read_fd, 65536)
                except OSError as e:  # a pseudo-terminal says EIO when the child side closes
                    if e.errno in (errno.EIO, errno.EBADF):
                        break
                    raise
                if not chunk:
                    break
                text = chunk.decode("utf-8", errors="replace")
                self._keep(text)
                if out is not None and self._hold:
                    self._held.append(text)
                elif out is not None:
                    out.write(text)
                    out.flush()
        finally:
            os.close(self._read_fd)

    def _keep(self, text: str) -> None:
        """Adds `text` to the kept lines (a line redrawn with CR keeps its last drawing)."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            line = _ANSI.sub("", line).rstrip("\r").rsplit("\r", 1)[-1].strip()
            if line:
                self._tail.append(line)

    def join(self, timeout: float = 5.0) -> None:
        """Waits until the child's stderr is read to its end."""
        self._thread.join(timeout)

    def release(self) -> None:
        """Writes what was held back, and from now on passes it on as it comes."""
        self._hold = False
        held, self._held = "".join(self._held), []
        if held:
            sys.stderr.write(held)
            sys.stderr.flush()

    def message(self) -> Optional[str]:
        """The CLI's last `error:` line, else why it stopped (`ringscrape: stopping: …`), else
        its last `ringscrape:` line, else its last line; None when it said nothing. The reason
        comes before the last `ringscrape:` line, which after a stop with items left is how many
        have rows."""
        lines = list(self._tail)
        if self._partial.strip():
            lines.append(self._partial.strip())
        for prefix in ("error:", "ringscrape: stopping:", "ringscrape:", ""):
            said = [line for line in lines if line.startswith(prefix)]
            if said:
                return said[-1]
        return None


def _copy_window_size(fd: int) -> None:
    """Gives the pseudo-terminal our terminal's size, so the bar is as wide as the window."""
    try:
        size = fcntl.ioctl(sys.stderr.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(fd, termios.TIOCSWINSZ, size)
    except (OSError, ValueError, AttributeError):  # no size to copy: the CLI's default width
        pass
