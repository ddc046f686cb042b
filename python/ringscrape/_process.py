"""One `ringscrape run` child whose standard output is an Arrow IPC stream: started in a session
of its own (a terminal's Ctrl-C reaches Python, which passes it on once, as the CLI's first
Ctrl-C), read batch by batch, and stopped as the CLI stops on Ctrl-C.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
from typing import Iterator, List, Optional

import pyarrow as pa

from ._errors import RunError
from ._stderr import StderrRelay

# How long a stopped child gets to end (its --grace, 2 s by default, and the rows' writing)
# before it is killed.
_STOP_WAIT_S = 60.0
_PR_SET_PDEATHSIG = 1
_PIPE_BUFFER = 1 << 20


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM (the CLI's clean stop) when Python dies, since a
    session of its own no longer shares our terminal's or a scheduler's signals."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux's libc: the child outlives a killed parent
        pass


class Run:
    """A started `ringscrape run` (argv) writing an Arrow IPC stream to its stdout."""

    def __init__(self, argv: List[str], terminal: bool, silent: bool, hold: bool) -> None:
        self._relay = StderrRelay(terminal, silent, hold)
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._relay.child_fd,
                bufsize=_PIPE_BUFFER,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except BaseException:
            self._relay.close_unused()
            raise
        self._relay.start()
        self._reader: Optional[pa.ipc.RecordBatchStreamReader] = None
        self._stopped = False

    @property
    def pid(self) -> int:
        """The supervisor's process id."""
        return self._proc.pid

    def open(self) -> pa.Schema:
        """Waits for the stream's schema; a run the CLI refused (usage, exit 2) raises here,
        before anything was fetched.

        Raises:
            RunError: the child ended without a stream.
        """
        assert self._proc.stdout is not None, "stdout is a pipe (Popen stdout=PIPE)"
        try:
            self._reader = pa.ipc.open_stream(self._proc.stdout)
        except (pa.ArrowInvalid, OSError):
            self.finish()  # raises the CLI's error
            raise RunError("ringscrape ended without writing rows", 1) from None
        return self._reader.schema

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The stream's batches as they arrive (empty ones skipped), until it ends."""
        assert self._reader is not None, "open() comes first"
        while True:
            try:
                batch = self._reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, OSError):
                self.finish()  # a child killed mid-message: its exit raises RunError
                raise
            if batch.num_rows:
                yield batch

    def release_stderr(self) -> None:
        """Writes the child's stderr held back so far (see StderrRelay)."""
        self._relay.release()

    def finish(self) -> None:
        """Waits for the child to end.

        Raises:
            RunError: it failed (a non-zero exit not asked for by `stop`), with its message.
        """
        code = self._proc.wait()
        self._relay.join()
        self._close_stdout()
        if code == 0 or self._stopped:
            return
        if code < 0:
            message = f"ringscrape was killed by signal {-code}"
        else:
            message = self._relay.message() or f"ringscrape exited with {code}"
        raise RunError(message, code)

    def stop(self) -> None:
        """Stops the run as the CLI's Ctrl-C does (no new ids, in-flight requests get its grace
        period, their rows reach the output, which stays resumable): one SIGINT, then the rest
        of the stream read and dropped so that the child ends on its own, as in a shell. A
        second Ctrl-C meanwhile is the CLI's second (its workers killed at once). For a caller
        that stopped reading (a loop left early) and for KeyboardInterrupt alike."""
        if self._proc.poll() is None:
            self._stopped = True
            self._signal(signal.SIGINT)
        watchdog = threading.Timer(_STOP_WAIT_S, self._kill)
        watchdog.start()
        try:
            self._drain()
        except KeyboardInterrupt:
            self._signal(signal.SIGINT)
            self._close_stdout()
        finally:
            watchdog.cancel()
        self._wait_or_kill()

    def _drain(self) -> None:
        """Reads stdout to its end, keeping nothing."""
        if self._proc.stdout is not None and not self._proc.stdout.closed:
            while self._proc.stdout.read(_PIPE_BUFFER):
                pass

    def _kill(self) -> None:
        """Kills a child that did not stop in time (its stdout then ends)."""
        if self._proc.poll() is None:
            self._proc.kill()

    def _wait_or_kill(self) -> None:
        """Waits for the child; kills it if it does not end in time."""
        try:
            self._proc.wait(_STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._relay.join()
        self._close_stdout()

    def _signal(self, sig: signal.Signals) -> None:
        """Sends `sig` to the supervisor, unless it has ended."""
        if self._proc.poll() is None:
            try:
                os.kill(self._proc.pid, sig)
            except ProcessLookupError:
                pass

    def _close_stdout(self) -> None:
        if self._proc.stdout is not None and not self._proc.stdout.closed:
            self._proc.stdout.close()
