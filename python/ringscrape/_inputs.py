"""What the items of a run are, as the CLI takes them: `ids` as `--ids START..END` or an ids
file, `keys` as key files. Values that are no file yet (an iterable of ids, a DataFrame) are
written to a temporary directory the run owns, and passed by path.
"""

from __future__ import annotations

import operator
import os
from pathlib import Path
from typing import Any, Iterable, Union

import pyarrow as pa
import pyarrow.parquet as pq

#: What `ids=` takes: a range, a "START..END" string, a path of an ids file, or the ids.
Ids = Union[range, str, "os.PathLike[str]", Iterable[Union[int, str]]]


def ids_args(ids: Any, scratch: Path) -> list[str]:
    """The arguments for `ids`: `--ids=A..B` for a range of step 1 or a string (the CLI checks
    it: a bad range is its usage error), `--ids-file` for a path or for any other iterable,
    written one id a line under `scratch`."""
    if ids is None:
        return []
    if isinstance(ids, str):
        return [f"--ids={ids}"]
    if isinstance(ids, range) and ids.step == 1 and 0 <= ids.start <= ids.stop:
        return [f"--ids={ids.start}..{ids.stop}"]
    if isinstance(ids, os.PathLike):
        return [f"--ids-file={os.fspath(ids)}"]
    if isinstance(ids, (bytes, dict)) or not isinstance(ids, Iterable):
        # A dict would give its keys as ids: a mix-up with `keys=`, not a list of ids.
        raise TypeError(f"ids={ids!r}: expected a range, 'START..END', a path or ids")
    if isinstance(ids, (pa.Array, pa.ChunkedArray)):
        ids = ids.to_pylist()
    path = scratch / "ids.txt"
    written = 0
    with open(path, "w", encoding="utf-8") as out:
        for item in ids:
            out.write(_id_line(item))
            written += 1
    if written == 0:
        # The CLI would name the temporary file, which the caller never saw.
        raise ValueError("ids: no ids given (an empty iterable)")
    return [f"--ids-file={path}"]


def _id_line(item: Any) -> str:
    """One id as a line of the ids file."""
    if isinstance(item, bool):
        raise TypeError(f"ids: {item!r} is neither an int nor a str")
    if not isinstance(item, str):
        # NumPy's and other integer types say they are integers through __index__.
        try:
            item = operator.index(item)
        except TypeError:
            raise TypeError(f"ids: {item!r} is neither an int nor a str") from None
    text = str(item)
    if "\n" in text or "\r" in text:
        raise ValueError(f"ids: {text!r} holds a line break (an ids file has one id a line)")
    return text + "\n"


def keys_args(keys: Any, scratch: Path) -> list[str]:
    """The arguments for `keys`: one `--keys` per key file, a table written as Parquet under
    `scratch` (its columns are the placeholders, typed as the CLI reads Parquet keys). A list
    gives several key files (every combination is an item, as with repeated `--keys`)."""
    if keys is None:
        return []
    several = isinstance(keys, (list, tuple))
    items = list(keys) if several else [keys]
    return [f"--keys={_key_file(item, scratch, n)}" for n, item in enumerate(items)]


def _key_file(keys: Any, scratch: Path, n: int) -> str:
    """The path of one key file: `keys` itself when it is a path, else `keys` written."""
    if isinstance(keys, (str, os.PathLike)):
        return os.fspath(keys)
    path = scratch / f"keys-{n}.parquet"
    pq.write_table(as_arrow(keys), path)
    return str(path)


def as_arrow(table: Any) -> pa.Table:
    """A pyarrow Table of `table`: a pyarrow Table or RecordBatch, a pandas DataFrame (its index
    left out) or a polars DataFrame. pandas and polars are not imported unless given."""
    if isinstance(table, pa.Table):
        return table
    if isinstance(table, pa.RecordBatch):
        return pa.Table.from_batches([table])
    module = type(table).__module__.split(".")[0]
    if module == "polars":
        return table.to_arrow()
    if module == "pandas" and hasattr(table, "columns"):
        return pa.Table.from_pandas(table, preserve_index=False)
    raise TypeError(
        f"keys: expected a path, a pyarrow Table, a pandas or a polars DataFrame, not "
        f"{type(table).__name__}"
    )
