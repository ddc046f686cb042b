"""The one exception a run raises: the CLI's own message and exit code."""

from __future__ import annotations


class RunError(Exception):
    """A run that the `ringscrape` binary refused or that failed.

    `str(error)` is the CLI's one line (`error: --ids 10..5: end is before start`), and
    `exit_code` its exit status: 2 for usage (refused before anything ran), 1 for a failed run,
    3 for a run stopped early (`--abort-after`, a failed credential command; resumable), 4 when
    more rows failed than `max_failed` allows.
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def __reduce__(self) -> tuple[type, tuple[str, int]]:
        # Pickled whole (Ray, multiprocessing), exit code included.
        return (type(self), (str(self), self.exit_code))
