"""What the CLI refuses raises RunError with its line and exit code before anything runs; an
unknown keyword is a TypeError naming the nearest one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ringscrape


def test_a_bad_range_raises_exit_code_2_with_the_clis_line(serve: str) -> None:
    with pytest.raises(ringscrape.RunError) as caught:
        ringscrape.fetch(f"{serve}/log?id={{id}}", ids="10..5")
    assert caught.value.exit_code == 2
    assert str(caught.value) == "error: --ids 10..5: end is before start"


def test_stream_raises_usage_errors_before_it_returns(serve: str) -> None:
    # No iteration: the call itself raises.
    with pytest.raises(ringscrape.RunError) as caught:
        ringscrape.stream(f"{serve}/log", ids=range(10))
    assert caught.value.exit_code == 2
    assert "{id}" in str(caught.value)


def test_usage_errors_fetch_nothing_and_write_nothing(slow_serve: str, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    start = time.monotonic()
    with pytest.raises(ringscrape.RunError) as caught:
        ringscrape.fetch(f"{slow_serve}/log?id={{id}}", ids=range(10_000), output=out, rate=-1)
    assert caught.value.exit_code == 2
    assert "--rate" in str(caught.value)
    assert not out.exists()
    assert time.monotonic() - start < 5  # 10,000 ids at 20..60 ms were not fetched


def test_an_unknown_keyword_is_a_type_error_naming_the_nearest(serve: str) -> None:
    with pytest.raises(TypeError, match="'concurency'; did you mean 'concurrency'"):
        ringscrape.fetch(f"{serve}/log?id={{id}}", ids=range(10), concurency=8)
    with pytest.raises(TypeError, match="'header'; did you mean 'headers'"):
        ringscrape.stream(f"{serve}/log?id={{id}}", ids=range(10), header={"A": "b"})


def test_a_value_of_the_wrong_kind_is_a_type_error(serve: str) -> None:
    with pytest.raises(TypeError, match="save_body"):
        ringscrape.fetch(f"{serve}/log?id={{id}}", ids=range(10), save_body="yes")
    with pytest.raises(TypeError, match="shards"):
        ringscrape.fetch(f"{serve}/log?id={{id}}", ids=range(10), shards=True)
    # Found by a newcomer's try: each of these ran, or failed without naming the keyword.
    url = f"{serve}/log?id={{id}}"
    with pytest.raises(TypeError, match="progress='no'"):
        ringscrape.fetch(url, ids=range(3), progress="no")
    with pytest.raises(TypeError, match="resume='yes'"):
        ringscrape.fetch(url, ids=range(3), resume="yes")
    with pytest.raises(TypeError, match="headers=5: expected a list"):
        ringscrape.fetch(url, ids=range(3), headers=5)
    with pytest.raises(TypeError, match="ids=\\{'a': 1\\}"):
        ringscrape.fetch(url, ids={"a": 1})
    with pytest.raises(TypeError, match="keys: expected a path"):
        pd = pytest.importorskip("pandas")
        ringscrape.fetch(url, keys=pd.Series([1, 2], name="n"))


def test_no_ids_in_an_iterable_is_said_without_a_temporary_path(serve: str) -> None:
    with pytest.raises(ValueError, match="ids: no ids given"):
        ringscrape.fetch(f"{serve}/log?id={{id}}", ids=range(5, 0))


def test_integer_like_ids_of_numpy_and_pyarrow_are_ids(serve: str) -> None:
    np = pytest.importorskip("numpy")
    import pyarrow as pa

    url = f"{serve}/log?id={{id}}"
    got = ringscrape.fetch(url, ids=np.arange(5), extract={"got": "/id"}).column("got")
    assert sorted(got.to_pylist()) == ["0", "1", "2", "3", "4"]
    got = ringscrape.fetch(url, ids=pa.array([7, 8, 9]), extract={"got": "/id"}).column("got")
    assert sorted(got.to_pylist()) == ["7", "8", "9"]


def test_a_failed_run_raises_its_exit_code() -> None:
    # Nothing listens on port 1: every request fails to connect, and --abort-after stops the
    # run (exit 3) after 20 in a row, long before its last id: the CLI's last line then says how
    # many items have rows, and the error is why it stopped, said before.
    with pytest.raises(ringscrape.RunError) as caught:
        ringscrape.fetch(
            "http://127.0.0.1:1/log?id={id}", ids=range(100_000), abort_after=20, retries=0
        )
    assert caught.value.exit_code == 3
    assert str(caught.value).startswith("ringscrape: stopping: the last 20 items in a row failed")
