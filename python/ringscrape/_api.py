"""`fetch` and `stream`: a `ringscrape run` child whose rows come back as Arrow.

Without `output=` the child writes its rows as an Arrow IPC stream to its stdout (`--format
arrow -o -`); with it, the child writes that file as the CLI does and a copy of every row to its
stdout (`--arrow-copy -`), and `fetch` reads the file back at the end (rows kept by an earlier
run that `resume=True` completed included).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Generator, Iterator, List, Optional, Union

import pyarrow as pa

from . import _output
from ._binary import find_binary
from ._inputs import ids_args, keys_args
from ._options import check_switch, flag_args
from ._process import Run
from ._progress import RowCounter, in_notebook
from ._stderr import stderr_is_terminal

PathArg = Union[str, "os.PathLike[str]"]


class _Job:
    """A started run and what it owns: its scratch directory (ids and key files written for
    it) and the notebook's row counter."""

    def __init__(self, argv: List[str], scratch: tempfile.TemporaryDirectory[str], progress: bool,
                 silent: bool) -> None:  # fmt: skip
        self.scratch = scratch
        self.counter: Optional[RowCounter] = None
        terminal = progress and stderr_is_terminal()
        notebook = progress and not terminal and in_notebook()
        self.run = Run(argv, terminal=terminal, silent=silent, hold=notebook)
        try:
            self.schema = self.run.open()
        except BaseException:
            self.close()
            raise
        if notebook:
            self.counter = RowCounter()

    def close(self) -> None:
        """Ends the counter's line, then writes the CLI's words held back meanwhile, and
        removes the scratch directory."""
        if self.counter is not None:
            self.counter.close()
            self.counter = None
        self.run.release_stderr()
        self.scratch.cleanup()


def _argv(
    function: str,
    url: Optional[str],
    output: Optional[PathArg],
    resume: bool,
    progress: bool,
    options: Dict[str, Any],
) -> List[str]:
    """The command line of the run, but for its items."""
    check_switch("resume", resume)
    check_switch("progress", progress)
    argv = [find_binary(), "run"]
    if url is not None:
        argv.append(f"--url={url}")
    if output is None:
        if options.get("format") is not None:
            raise ValueError(f"{function}(): format= applies to output= (without it, Arrow)")
        argv += ["--format=arrow", "--output=-"]
    else:
        if os.fspath(output) == "-":
            raise ValueError(f"{function}(): output='-': the rows come back to Python already")
        argv += [f"--output={os.fspath(output)}", "--arrow-copy=-"]
    if resume:
        argv.append("--resume")
    if not progress:
        argv.append("--no-progress")
    return argv + flag_args(function, options)


def _start(function: str, url: Optional[str], ids: Any, keys: Any, output: Optional[PathArg],
           resume: bool, progress: bool, options: Dict[str, Any]) -> _Job:  # fmt: skip
    """Checks the arguments, writes the items that are no file yet, and starts the run."""
    argv = _argv(function, url, output, resume, progress, options)
    scratch = tempfile.TemporaryDirectory(prefix="ringscrape-")
    try:
        argv += ids_args(ids, Path(scratch.name)) + keys_args(keys, Path(scratch.name))
    except BaseException:
        scratch.cleanup()
        raise
    silent = bool(options.get("quiet"))
    return _Job(argv, scratch, progress, silent)


def _batches(job: _Job) -> Generator[pa.RecordBatch, None, None]:
    """The run's batches; the run is finished when they end, stopped cleanly when the caller
    stops early, and interrupted as by the CLI's Ctrl-C on KeyboardInterrupt."""
    ended = False
    try:
        for batch in job.run.batches():
            if job.counter is not None:
                job.counter.add(batch.num_rows)
            yield batch
        ended = True
        job.run.finish()
    finally:
        if not ended:  # the caller left the loop, Ctrl-C (KeyboardInterrupt), or an error
            job.run.stop()
        job.close()


class _Stream(Iterator[pa.RecordBatch]):
    """`stream`'s iterator: the batches of a started run, which `close` (or dropping it, even
    before the first batch) stops as leaving the loop does."""

    def __init__(self, job: _Job) -> None:
        self._job = job
        self._batches = _batches(job)
        self._started = False

    def __next__(self) -> pa.RecordBatch:
        self._started = True
        return next(self._batches)

    def close(self) -> None:
        """Stops the run (nothing when it has ended)."""
        if self._started:
            self._batches.close()  # its `finally` stops the run
        else:
            self._started = True
            self._job.run.stop()
            self._job.close()

    def __del__(self) -> None:
        self.close()


def stream(
    url: Optional[str] = None,
    *,
    ids: Any = None,
    keys: Any = None,
    output: Optional[PathArg] = None,
    resume: bool = False,
    progress: bool = True,
    **options: Any,
) -> Iterator[pa.RecordBatch]:
    """The rows of a run as pyarrow RecordBatches, as they arrive (one at least every second
    while rows come). Breaking out of the loop stops the run as Ctrl-C does.

    The run starts, and what the CLI refuses as usage raises, before this returns. Arguments
    are those of `fetch`.

    Raises:
        RunError: the CLI refused the run (exit_code 2, at once) or it failed (while iterating).
        TypeError: a keyword that is no run flag.
    """
    return _Stream(_start("stream", url, ids, keys, output, resume, progress, options))


def fetch(
    url: Optional[str] = None,
    *,
    ids: Any = None,
    keys: Any = None,
    output: Optional[PathArg] = None,
    resume: bool = False,
    progress: bool = True,
    **options: Any,
) -> pa.Table:
    """Every row of a run of `url` over `ids` and/or `keys`, as a pyarrow Table.

    Args:
        url: the URL template (`http://host/item?id={id}`); may be left out with `urls=`.
        ids: a `range`, a `"START..END"` string, a path of an ids file, or an iterable of ints
            or strings (written to an ids file: `{id}` is the line).
        keys: a key file's path, or a pyarrow Table, pandas or polars DataFrame (its columns
            are the placeholders), or a list of them.
        output: also keep the rows in this file (CSV, JSON Lines or Parquet by its name, or
            `format=`); the Table returned is then the whole file.
        resume: complete `output` after any stop (`--resume`).
        progress: the CLI's progress bar on a terminal, a row count in a notebook; False: none.
        options: the other run flags in Python spelling (`concurrency=256`, `headers={...}`),
            see docs/python.md.

    Raises:
        RunError: the CLI refused the run (exit_code 2) or it failed.
        TypeError: a keyword that is no run flag (naming the nearest one).
    """
    job = _start("fetch", url, ids, keys, output, resume, progress, options)
    schema = job.schema
    fmt = options.get("format")
    if output is not None:
        for _ in _batches(job):
            pass
        return _output.read(os.fspath(output), fmt, schema)
    return pa.Table.from_batches(list(_batches(job)), schema=schema)
