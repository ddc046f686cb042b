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
import argparse
import asyncio
import csv
import multiprocessing
import sys
import time

import aiohttp


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
    p = argparse.ArgumentParser()
    p.add_argument("--hosts", required=True, help="a file of host names, one a line")
    p.add_argument("--items", type=int, default=10, help="items per host")
    p.add_argument("--url", required=True, help="template with {host} and {item}")
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=256, help="total, split across procs")
    p.add_argument("--per-host", type=int, default=2, help="in flight per host")
    p.add_argument("--rate", type=float, default=5, help="starts per second per host")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    with open(a.hosts) as f:
        hosts = [line.strip() for line in f if line.strip()]
    parts = [(hosts[k :: a.procs], a, max(1, a.concurrency // a.procs), f"{a.out}.part{k}")
             for k in range(a.procs)]
    with multiprocessing.Pool(a.procs) as pool:
        pool.map(run_part, parts)
    with open(a.out, "w") as out:
        out.write("host,item,status,bytes,latency_ms,error\n")
        for part in parts:
            with open(part[3]) as f:
                out.write(f.read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
