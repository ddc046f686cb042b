#!/usr/bin/env python3
"""The approach ringscrape replaces, done well: N processes, each with one bounded aiohttp
session and a fixed pool of worker coroutines pulling ids from its slice of the range (no
coroutine per id), each writing id,status,bytes,latency_ms,attempts,error rows to a CSV part.

Used by bench/bench.py as the Python baseline; the parts are concatenated after the run.
"""
import argparse
import asyncio
import csv
import multiprocessing
import sys
import time

import aiohttp


async def scrape(url, start, end, concurrency, out_path):
    ids = iter(range(start, end))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    with open(out_path, "w", newline="") as f:
        writer = csv.writer(f)
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


def run_part(args):
    url, start, end, concurrency, out_path = args
    asyncio.run(scrape(url, start, end, concurrency, out_path))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--ids", required=True, help="START..END")
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=256, help="total, split across procs")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    start, end = (int(x) for x in a.ids.split(".."))
    n = end - start
    parts = []
    for k in range(a.procs):
        lo = start + n * k // a.procs
        hi = start + n * (k + 1) // a.procs
        parts.append((a.url, lo, hi, max(1, a.concurrency // a.procs), f"{a.out}.part{k}"))
    with multiprocessing.Pool(a.procs) as pool:
        pool.map(run_part, parts)
    with open(a.out, "w") as out:
        out.write("id,status,bytes,latency_ms,attempts,error\n")
        for part in parts:
            with open(part[4]) as f:
                out.write(f.read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
