"""An output file read back as a pyarrow Table, typed as the run's Arrow stream: CSV, JSON Lines,
Parquet (a directory of parts) or an Arrow IPC stream (`.arrows`), chosen by `format=` or the
name's extension as the CLI chooses (`--format`'s help)."""

from __future__ import annotations

from typing import Optional

import pyarrow as pa
import pyarrow.csv
import pyarrow.json
import pyarrow.parquet as pq

_BY_EXTENSION = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".arrows": "arrow",
}


def format_of(path: str, fmt: Optional[str]) -> str:
    """The format of the output `path`: `fmt` when given, else by extension, else CSV."""
    if fmt:
        return str(fmt)
    for extension, name in _BY_EXTENSION.items():
        if path.endswith(extension):
            return name
    return "csv"


def read(path: str, fmt: Optional[str], schema: pa.Schema) -> pa.Table:
    """Every row of the output `path`, in the columns and types of `schema`."""
    name = format_of(path, fmt)
    if name == "parquet":
        return pq.read_table(path, schema=schema)
    if name == "arrow":
        with pa.OSFile(path) as source:
            return pa.ipc.open_stream(source).read_all()
    if name == "jsonl":
        options = pyarrow.json.ParseOptions(explicit_schema=schema)
        return pyarrow.json.read_json(path, parse_options=options)
    return pyarrow.csv.read_csv(
        path,
        parse_options=pyarrow.csv.ParseOptions(newlines_in_values=True),
        convert_options=pyarrow.csv.ConvertOptions(column_types=schema),
    )
