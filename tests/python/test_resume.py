"""output= keeps the rows in a file as the CLI does; after a killed run or a Ctrl-C in Python,
resume=True completes it to one row per id, and fetch returns the whole file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.csv
import pyarrow.json
import pyarrow.parquet as pq
import pytest
import ringscrape
from conftest import run_processes, wait_until

IDS = 3000


def _ids_in_file(out: Path) -> list:
    """The id column of the output file, read as pyarrow reads it (not through ringscrape)."""
    if out.suffix == ".parquet":
        table = pq.read_table(out)
    elif out.suffix == ".jsonl":
        table = pyarrow.json.read_json(out)
    else:
        table = pyarrow.csv.read_csv(out)
    return sorted(table.column("id").to_pylist())


@pytest.mark.parametrize("name", ["out.csv", "out.jsonl", "out.parquet"])
def test_resume_after_the_run_is_killed_completes_the_file(
    slow_serve: str, tmp_path: Path, name: str
) -> None:
    out = tmp_path / name
    url = f"{slow_serve}/log?id={{id}}"
    batches = ringscrape.stream(
        url, ids=range(IDS), output=out, shards=1, concurrency=16, part_rows=500
    )
    seen = next(batches).num_rows
    (supervisor, *_workers) = run_processes()
    os.kill(supervisor, signal.SIGKILL)
    with pytest.raises(ringscrape.RunError) as caught:
        for batch in batches:
            seen += batch.num_rows
    assert caught.value.exit_code == -signal.SIGKILL
    assert seen < IDS
    table = ringscrape.fetch(url, ids=range(IDS), output=out, resume=True, concurrency=64)
    assert sorted(table.column("id").to_pylist()) == list(range(IDS))
    assert set(table.column("status").to_pylist()) == {200}
    assert _ids_in_file(out) == list(range(IDS))


SCRIPT = """
import sys, ringscrape
try:
    ringscrape.fetch(sys.argv[1], ids=range(int(sys.argv[2])), output=sys.argv[3],
                     concurrency=16, progress=False)
except KeyboardInterrupt:
    sys.exit(42)
"""


def test_ctrl_c_in_python_stops_the_run_and_resume_completes_it(
    slow_serve: str, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    url = f"{slow_serve}/log?id={{id}}"
    script = subprocess.Popen([sys.executable, "-c", SCRIPT, url, str(IDS), str(out)])
    try:
        wait_until(lambda: out.exists() and out.read_text().count("\n") > 10, 30, "rows in out")
        script.send_signal(signal.SIGINT)
        assert script.wait(30) == 42  # KeyboardInterrupt reached the caller, once stopped
    finally:
        if script.poll() is None:
            script.kill()
    kept = _ids_in_file(out)
    assert 0 < len(kept) < IDS and len(set(kept)) == len(kept)
    table = ringscrape.fetch(url, ids=range(IDS), output=out, resume=True, concurrency=64)
    assert sorted(table.column("id").to_pylist()) == list(range(IDS))


def test_fetch_with_output_returns_the_rows_a_resume_kept(serve: str, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    url = f"{serve}/log?id={{id}}"
    first = ringscrape.fetch(url, ids=range(100), output=out)
    assert first.num_rows == 100
    # Nothing left to fetch: the table is the file, 100 rows, typed as the stream.
    again = ringscrape.fetch(url, ids=range(100), output=out, resume=True)
    assert again.num_rows == 100
    assert again.schema == first.schema
