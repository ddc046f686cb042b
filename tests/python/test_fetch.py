"""fetch: every row of a run as a pyarrow Table, from each kind of ids and keys, against
`ringscrape serve` and nginx; the installed CLI."""

from __future__ import annotations

import json
import subprocess
import sysconfig
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import ringscrape
from conftest import NGINX_BODY


def test_fetch_over_a_range_of_100000_is_one_row_per_id_all_200(serve: str) -> None:
    table = ringscrape.fetch(f"{serve}/log?id={{id}}", ids=range(100_000), progress=False)
    assert table.num_rows == 100_000
    assert sorted(table.column("id").to_pylist()) == list(range(100_000))
    assert set(table.column("status").to_pylist()) == {200}


def test_ids_from_a_string_a_stepped_range_and_an_iterable(serve: str) -> None:
    url = f"{serve}/log?id={{id}}"
    assert sorted(ringscrape.fetch(url, ids="5..12").column("id").to_pylist()) == list(range(5, 12))
    stepped = ringscrape.fetch(url, ids=range(0, 30, 10), extract={"got": "/id"})
    assert sorted(stepped.column("got").to_pylist()) == ["0", "10", "20"]
    from_list = ringscrape.fetch(url, ids=(n * n for n in [3, 4, 5]), extract={"got": "/id"})
    assert sorted(from_list.column("got").to_pylist()) == ["16", "25", "9"]


def test_extract_and_save_body_become_columns(serve: str) -> None:
    table = ringscrape.fetch(
        f"{serve}/log?id={{id}}", ids=range(50), extract={"got": "/id"}, save_body=True
    )
    rows = table.sort_by("id").to_pylist()
    assert [row["got"] for row in rows] == [str(n) for n in range(50)]
    assert all(json.loads(row["body"])["id"] == row["id"] for row in rows)


def test_headers_reach_the_server(serve: str) -> None:
    table = ringscrape.fetch(
        f"{serve}/echo?id={{id}}", ids=range(3), headers={"X-Team": "ids {id}"}, save_body=True
    )
    for row in table.to_pylist():
        sent = dict(json.loads(row["body"])["headers"])
        assert sent.get("x-team") == f"ids {row['id']}"


def _keys_rows(serve: str, keys: object) -> list:
    table = ringscrape.fetch(f"{serve}/log?id={{n}}&name={{name}}", keys=keys, extract={"got": "/id"})
    return sorted((row["name"], row["got"]) for row in table.to_pylist())


KEYS = {"name": ["a", "b", "c"], "n": [7, 8, 9]}
EXPECTED = [("a", "7"), ("b", "8"), ("c", "9")]


def test_keys_from_a_pyarrow_table(serve: str) -> None:
    assert _keys_rows(serve, pa.table(KEYS)) == EXPECTED


def test_keys_from_a_pandas_dataframe(serve: str) -> None:
    # A non-default index is not a column.
    assert _keys_rows(serve, pd.DataFrame(KEYS, index=[10, 20, 30])) == EXPECTED


def test_keys_from_a_polars_dataframe(serve: str) -> None:
    assert _keys_rows(serve, pl.DataFrame(KEYS)) == EXPECTED


def test_keys_from_a_path(serve: str, tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("name,n\na,7\nb,8\nc,9\n")
    assert _keys_rows(serve, path) == EXPECTED


def test_the_table_goes_to_pandas_and_polars(serve: str) -> None:
    table = ringscrape.fetch(f"{serve}/log?id={{id}}", ids=range(1000))
    assert len(table.to_pandas()) == 1000
    assert pl.from_arrow(table).height == 1000


def test_fetch_against_nginx_is_one_row_per_id_with_its_bytes(nginx: str) -> None:
    table = ringscrape.fetch(f"{nginx}/log?id={{id}}", ids=range(20_000), concurrency=64)
    rows = table.to_pylist()
    assert sorted(row["id"] for row in rows) == list(range(20_000))
    for row in rows:
        assert row["status"] == 200
        assert row["bytes"] == len(NGINX_BODY.format(id=row["id"]))


def test_the_cli_is_on_the_venvs_path() -> None:
    scripts = Path(sysconfig.get_path("scripts"))
    assert ringscrape.find_binary() == str(scripts / "ringscrape")
    out = subprocess.run(["ringscrape", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["ringscrape", ringscrape.__version__]
