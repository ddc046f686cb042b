#!/usr/bin/env python3
"""The many-host job done well in Python, for bench/hosts.py: as many processes as cores, each
taking every PROCS-th host (so a host's caps hold in one process), each with one aiohttp session
whose `TCPConnector(limit_per_host=…)` caps the requests in flight per host, a per-host pacer
(starts at least 1/RATE s apart: never more than RATE in any second), and a semaphore for the
process's share of the total concurrency. A task per host fetches its items, `limit_per_host`
of them at a time; the pacer is waited on before the semaphore, so a paced host holds no slot.
Rows (host,item,status,bytes,latency_ms,error) go to a CSV part per process, concatenated after
the run.

    python3 bench/aiohttp_hosts.py --hosts hosts.txt --items 10 --url 'http://{host}/item?i={item}' \
        --procs 2 --concurrency 256 --per-host 2 --rate 5 --out rows.csv
"""
import asyncio
import csv
import multiprocessing
import sys
import time

import aiohttp

from common import HOST_ROW_FIELDS, host_job_args, join_parts


class Pacer:
    """One host's starts, at least `interval` seconds apart."""

    def __init__(self, interval):
        self.interval, self.next_start = interval, 0.0

    async def wait(self):
        now = time.monotonic()
        start = max(now, self.next_start)
        self.next_start = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


async def fetch_host(session, slots, host, a, writer):
    pacer = Pacer(1.0 / a.rate if a.rate else 0.0)
    items = iter(range(a.items))

    async def lane():
        for item in items:
            await pacer.wait()
            async with slots:
                t0 = time.perf_counter()
                url = a.url.replace("{host}", host).replace("{item}", str(item))
                try:
                    async with session.get(url) as resp:
                        body = await resp.read()
                        row = [host, item, resp.status, len(body), "", ""]
                except Exception as e:  # the row records the failure
                    row = [host, item, "", 0, "", type(e).__name__]
                row[4] = f"{(time.perf_counter() - t0) * 1000:.3f}"
                writer.writerow(row)

    await asyncio.gather(*(lane() for _ in range(a.per_host)))


async def scrape(hosts, a, concurrency, out_path):
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=a.per_host)
    timeout = aiohttp.ClientTimeout(total=30)
    slots = asyncio.Semaphore(concurrency)
    with open(out_path, "w", newline="") as f:
        writer = csv.writer(f)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await asyncio.gather(*(fetch_host(session, slots, h, a, writer) for h in hosts))


def run_part(args):
    hosts, a, concurrency, out_path = args
    asyncio.run(scrape(hosts, a, concurrency, out_path))


def main():
    a = host_job_args(__doc__.split("\n\n")[0]).parse_args()
    with open(a.hosts) as f:
        hosts = [line.strip() for line in f if line.strip()]
    parts = [(hosts[k :: a.procs], a, max(1, a.concurrency // a.procs), f"{a.out}.part{k}")
             for k in range(a.procs)]
    with multiprocessing.Pool(a.procs) as pool:
        pool.map(run_part, parts)
    join_parts(a.out, HOST_ROW_FIELDS, [part[3] for part in parts])
    return 0


if __name__ == "__main__":
    sys.exit(main())
