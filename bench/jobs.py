#!/usr/bin/env python3
"""Jobs of other shapes than an id range, against one local nginx, in one run:

1. keys: client CPU per request on `/log` with `--ids 0..N`, `--keys keys.csv` and
   `--keys keys.parquet` (N records, one column, written by pyarrow), one shard, 256 in flight;
   medians of ROUNDS, and each ratio to `--ids`.
2. memory: the largest resident size of the whole process tree with N and 10×N keys (CSV and
   Parquet): a key file is read a record at a time, so it should not grow.
3. pages: CHAINS chains of PAGES pages each (`/list?key=K&page=P`, nginx's `map` gives the next
   page's URL as `next` in the JSON body, empty on the last), fetched by `ringscrape --next /next`
   and by a Python aiohttp loop (a fixed pool of coroutines, each following one chain at a time),
   256 in flight each: pages per second and client CPU per page, medians of ROUNDS.

    python3 bench/jobs.py [BINARY]

N (default 200000), ROUNDS (3), CHAINS (2000) and PAGES (10) come from the environment. Needs
nginx, and pyarrow and aiohttp (PyPI).
"""

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import Peak, tree_rss_kb
from common import children_cpu, free_port, start_nginx

N = int(os.environ.get("N", "200000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
CHAINS = int(os.environ.get("CHAINS", "2000"))
PAGES = int(os.environ.get("PAGES", "10"))
IN_FLIGHT = 256

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/cb; proxy_temp_path {dir}/p; fastcgi_temp_path {dir}/f;
    uwsgi_temp_path {dir}/u; scgi_temp_path {dir}/s;
    map $arg_page $next_url {{
{pages}
        default "";
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location /log {{
            default_type application/json;
            return 200 '{{"id":"$arg_id","source":"bench","ok":true,"value":42}}';
        }}
        location /list {{
            default_type application/json;
            return 200 '{{"items":["$arg_key-$arg_page-0","$arg_key-$arg_page-1"],"next":"$next_url"}}';
        }}
    }}
}}
"""


class Nginx:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ringscrape-jobs-"))
        self.port = free_port()
        pages = "\n".join(
            f'        {p} "/list?key=$arg_key&page={p + 1}";' for p in range(PAGES - 1))
        (self.dir / "nginx.conf").write_text(
            NGINX_CONF.format(dir=self.dir, port=self.port, pages=pages))
        self.proc = start_nginx(self.dir, self.port)
        self.base = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def run(cmd):
    """Runs cmd to the end: (user+sys CPU s of its tree, wall s, peak tree RSS MB)."""
    before, start = children_cpu(), time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with Peak(lambda: tree_rss_kb(proc.pid)) as peak:
        _, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}: {err.strip()[-400:]}")
    return children_cpu() - before, wall, peak.value / 1024


def rows_of(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f) - 1


def key_files(directory, n):
    """keys-N.csv and keys-N.parquet: a column `k` of n numbers."""
    csv_path, parquet_path = directory / f"keys-{n}.csv", directory / f"keys-{n}.parquet"
    if not csv_path.exists():
        with open(csv_path, "w") as f:
            f.write("k\n")
            f.writelines(f"{i}\n" for i in range(n))
        import pyarrow as pa
        import pyarrow.parquet as pq
        pq.write_table(pa.table({"k": pa.array(range(n), pa.int64())}), parquet_path)
    return csv_path, parquet_path


def scrape(binary, nginx, job, n, out):
    """ringscrape over one of the job shapes of n items: (CPU s, wall s, peak RSS MB)."""
    url, source = {
        "ids": (f"{nginx.base}/log?id={{id}}", ["-i", f"0..{n}"]),
        "csv": (f"{nginx.base}/log?id={{k}}", ["--keys", str(job[0])]),
        "parquet": (f"{nginx.base}/log?id={{k}}", ["--keys", str(job[1])]),
    }[job[2]]
    cmd = [binary, "run", "-u", url, *source, "-s", "1", "-c", str(IN_FLIGHT), "-o", str(out),
           "--overwrite", "--no-progress", "-q"]
    measured = run(cmd)
    if rows_of(out) != n:
        sys.exit(f"{job[2]}: {rows_of(out)} rows, not {n}")
    return measured


async def follow_chains(base, chains, concurrency):
    """The aiohttp loop: a pool of coroutines, each taking the next key and following its
    chain page by page (the `next` of each JSON page) to the end."""
    import aiohttp
    keys = iter(range(chains))
    pages = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker():
            nonlocal pages
            for key in keys:
                url = f"{base}/list?key={key}&page=0"
                while url:
                    async with session.get(url) as resp:
                        doc = await resp.json()
                    pages += 1
                    url = f"{base}{doc['next']}" if doc.get("next") else None
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return pages


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/ringscrape"
    nginx = Nginx()
    work = nginx.dir / "work"
    work.mkdir()
    out = work / "rows.csv"
    try:
        small = key_files(work, N)
        large = key_files(work, 10 * N)
        cpu = {shape: [] for shape in ("ids", "csv", "parquet")}
        for _ in range(ROUNDS):
            for shape in cpu:
                spent, _, _ = scrape(binary, nginx, (*small, shape), N, out)
                cpu[shape].append(spent / N)
        rss = {}
        for shape in ("csv", "parquet"):
            for n, files in ((N, small), (10 * N, large)):
                rss[shape, n] = scrape(binary, nginx, (*files, shape), n, out)[2]
        pages = {"ringscrape": [], "aiohttp": []}
        pages_cpu = {"ringscrape": [], "aiohttp": []}
        total = CHAINS * PAGES
        for _ in range(ROUNDS):
            cmd = [binary, "run", "-u", f"{nginx.base}/list?key={{id}}&page=0", "-i", f"0..{CHAINS}",
                   "--next", "/next", "-s", "1", "-c", str(IN_FLIGHT), "-o", str(out), "--overwrite",
                   "--no-progress", "-q"]
            spent, wall, _ = run(cmd)
            if rows_of(out) != total:
                sys.exit(f"--next: {rows_of(out)} rows, not {total}")
            pages["ringscrape"].append(total / wall)
            pages_cpu["ringscrape"].append(spent / total)
            loop = [sys.executable, "-c",
                    "import asyncio, sys; sys.path.insert(0, sys.argv[1]); import jobs; "
                    "print(asyncio.run(jobs.follow_chains(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))",
                    str(Path(__file__).resolve().parent), nginx.base, str(CHAINS), str(IN_FLIGHT)]
            spent, wall, _ = run(loop)
            pages["aiohttp"].append(total / wall)
            pages_cpu["aiohttp"].append(spent / total)
    finally:
        nginx.stop()
    ids = statistics.median(cpu["ids"])
    print(f"keys: client CPU per request (user+sys, µs), median of {ROUNDS}, {N} requests, {IN_FLIGHT} in flight")
    for shape, samples in cpu.items():
        median = statistics.median(samples)
        print(f"  {shape:8} {median * 1e6:7.2f} µs   {median / ids:5.2f}× --ids")
    print("memory: largest resident size of the process tree (MB)")
    for shape in ("csv", "parquet"):
        print(f"  {shape:8} {N} keys {rss[shape, N]:7.1f}   {10 * N} keys {rss[shape, 10 * N]:7.1f}")
    print(f"pages: {CHAINS} chains of {PAGES} pages, {IN_FLIGHT} in flight, median of {ROUNDS}")
    for client in pages:
        print(f"  {client:10} {statistics.median(pages[client]):9.0f} pages/s"
              f"   {statistics.median(pages_cpu[client]) * 1e6:7.1f} µs CPU per page")
    ratio = statistics.median(pages["ringscrape"]) / statistics.median(pages["aiohttp"])
    print(f"  ringscrape / aiohttp: {ratio:.1f}× the pages per second")


if __name__ == "__main__":
    main()
