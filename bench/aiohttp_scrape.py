#!/usr/bin/env python3
"""The approach ringscrape replaces, done well: N processes, each with one bounded aiohttp
session and a fixed pool of worker coroutines pulling ids from its slice of the range (no
coroutine per id), each writing id,status,bytes,latency_ms,attempts,error rows to a CSV part.

Used by bench/bench.py as the Python baseline; the parts are concatenated after the run. With
--memory (bench/python.py) the rows are kept in memory instead: each process hands its list back
to the parent, which holds them all, as a caller of ringscrape.fetch holds its table.
"""
import argparse
import asyncio
import contextlib
import csv
import multiprocessing
import sys
import time

import aiohttp


class _Rows(list):
    """--memory: a writer that keeps its rows."""

    def writerow(self, row):
        self.append(row)


async def scrape(url, start, end, concurrency, out_path):
    """Fetches ids start..end into the CSV out_path, or into the list returned when out_path is
    None."""
    ids = iter(range(start, end))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    with (open(out_path, "w", newline="") if out_path else contextlib.nullcontext()) as f:
        writer = csv.writer(f) if f else _Rows()
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def worker():
                for i in ids:
                    t0 = time.perf_counter()
                    try:
                        async with session.get(url.replace("{id}", str(i))) as resp:
                            body = await resp.read()
                            row = [i, resp.status, len(body), "", 1, ""]
                    except Exception as e:  # the row records the failure
                        row = [i, "", 0, "", 1, type(e).__name__]
                    row[3] = f"{(time.perf_counter() - t0) * 1000:.3f}"
                    writer.writerow(row)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return writer if out_path is None else None


def run_part(args):
    url, start, end, concurrency, out_path = args
    return asyncio.run(scrape(url, start, end, concurrency, out_path))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--ids", required=True, help="START..END")
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=256, help="total, split across procs")
    p.add_argument("--out", help="the CSV to write (unless --memory)")
    p.add_argument("--memory", action="store_true", help="keep the rows in memory, write none")
    a = p.parse_args()
    if not a.memory and not a.out:
        p.error("--out is required without --memory")
    start, end = (int(x) for x in a.ids.split(".."))
    n = end - start
    parts = []
    for k in range(a.procs):
        lo = start + n * k // a.procs
        hi = start + n * (k + 1) // a.procs
        out = None if a.memory else f"{a.out}.part{k}"
        parts.append((a.url, lo, hi, max(1, a.concurrency // a.procs), out))
    with multiprocessing.Pool(a.procs) as pool:
        kept = pool.map(run_part, parts)
    if a.memory:
        rows = [row for part in kept for row in part]
        print(f"rows in memory: {len(rows)}")
        return 0
    with open(a.out, "w") as out:
        out.write("id,status,bytes,latency_ms,attempts,error\n")
        for part in parts:
            with open(part[4]) as f:
                out.write(f.read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
