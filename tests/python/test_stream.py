"""stream: batches while the run goes on, and a loop left early stops the run cleanly."""

from __future__ import annotations

import time
from pathlib import Path

import ringscrape
from conftest import run_processes, wait_gone

# 2,000 ids at 20..60 ms each, 16 at a time on one worker: about 5 s of rows.
SLOW_IDS = 2000


def test_batches_arrive_while_the_run_goes_on_at_least_every_second(slow_serve: str) -> None:
    arrivals = []
    ids = []
    start = time.monotonic()
    for batch in ringscrape.stream(
        f"{slow_serve}/log?id={{id}}", ids=range(SLOW_IDS), shards=1, concurrency=16
    ):
        arrivals.append(time.monotonic() - start)
        ids += batch.column("id").to_pylist()
    assert sorted(ids) == list(range(SLOW_IDS))
    assert len(arrivals) >= 3, arrivals
    assert arrivals[-1] - arrivals[0] > 2.0, arrivals  # the first came long before the last
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert max(gaps) < 2.5, gaps  # one a second, with room for a loaded machine


def test_breaking_out_of_the_loop_stops_the_run_and_its_workers(slow_serve: str) -> None:
    batches = ringscrape.stream(
        f"{slow_serve}/log?id={{id}}", ids=range(1_000_000), shards=2, concurrency=16
    )
    first = next(batches)
    assert first.num_rows > 0
    running = run_processes()
    assert len(running) == 3, running  # the supervisor and its two workers
    start = time.monotonic()
    for n, _ in enumerate(batches):
        if n == 1:
            break
    batches.close()  # what leaving a for loop over it does when it is dropped
    assert wait_gone(running, 10) == []
    assert time.monotonic() - start < 10
    assert run_processes() == []


def test_a_stream_left_early_leaves_an_output_resume_completes(
    slow_serve: str, tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    url = f"{slow_serve}/log?id={{id}}"
    for _ in ringscrape.stream(url, ids=range(SLOW_IDS), output=out, concurrency=16):
        break
    kept = out.read_text().count("\n") - 1
    assert 0 < kept < SLOW_IDS
    table = ringscrape.fetch(url, ids=range(SLOW_IDS), output=out, resume=True, concurrency=64)
    assert sorted(table.column("id").to_pylist()) == list(range(SLOW_IDS))


def test_a_stream_dropped_before_its_first_batch_stops_the_run(slow_serve: str) -> None:
    batches = ringscrape.stream(f"{slow_serve}/log?id={{id}}", ids=range(1_000_000), shards=1)
    running = run_processes()
    assert running, "the run starts when stream() is called"
    del batches
    assert wait_gone(running, 10) == []
