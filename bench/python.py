#!/usr/bin/env python3
"""ringscrape from Python against the Python it replaces, in one run against one local nginx:

1. `ringscrape.fetch(url, ids=range(N))` called from a Python process, timed around the call;
   its CPU is that process's and its children's (the supervisor and its workers) over the call;
2. bench/aiohttp_scrape.py --memory: as many processes as cores, each a bounded aiohttp session
   (TCPConnector limit) and a fixed pool of coroutines, the rows handed back to the parent and
   held in memory there; timed and counted as a whole (its process tree);
3. the CLI writing Parquet (`ringscrape run … -o DIR.parquet`), the same shards and concurrency.

Prints rows per second and CPU per row (user+sys) for each, medians of ROUNDS interleaved
rounds, and the ratios the issue asks about: fetch's rows/s over aiohttp's (≥ 10×), fetch's CPU
per row over aiohttp's (≤ 1/10) and over the CLI's writing Parquet (≤ 1.1×).

    python3 bench/python.py [BINARY]

N (default 200000), ROUNDS (3), SHARDS (1: nginx has the other core) and CONCURRENCY (256) come
from the environment. The package is the installed wheel's when `import ringscrape` works in
this interpreter and RINGSCRAPE_BIN is unset; else python/ringscrape of this tree running BINARY
(default target/release/ringscrape). Needs nginx, pyarrow and aiohttp.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import children_cpu, free_port, start_nginx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
N = int(os.environ.get("N", "200000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SHARDS = int(os.environ.get("SHARDS", "1"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "256"))

# Run in a Python process of its own: the call alone is timed, and its CPU is this process's and
# its waited-for children's (the supervisor, which waits for its workers) over the call.
FETCH = """
import json, resource, sys, time
import ringscrape

def cpu():
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

url, n, shards, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
cpu0, t0 = cpu(), time.perf_counter()
table = ringscrape.fetch(url, ids=range(n), shards=shards, concurrency=concurrency,
                         progress=False, quiet=True)
wall, used = time.perf_counter() - t0, cpu() - cpu0
ok = table.column("status").to_pylist().count(200)
print(json.dumps({"wall": wall, "cpu": used, "rows": table.num_rows, "ok": ok,
                  "binary": ringscrape.find_binary()}))
"""


def package_env(binary):
    """The environment of the fetch process: the installed package, else this tree's."""
    env = dict(os.environ)
    probe = subprocess.run([sys.executable, "-c", "import ringscrape"], capture_output=True)
    if probe.returncode == 0 and "RINGSCRAPE_BIN" not in env:
        return env
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "python"), env.get("PYTHONPATH")]))
    env.setdefault("RINGSCRAPE_BIN", str(binary))
    return env


def run_fetch(url, env):
    out = subprocess.run([sys.executable, "-c", FETCH, url, str(N), str(SHARDS), str(CONCURRENCY)],
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"fetch failed: {out.stderr.strip()[-800:]}")
    result = json.loads(out.stdout)
    assert result["rows"] == N and result["ok"] == N, result
    return result


def timed(cmd):
    """Wall and CPU (user+sys of the whole waited-for tree) of one command, and its stdout."""
    cpu0, t0 = children_cpu(), time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if out.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} exited {out.returncode}: {out.stderr.strip()[-800:]}")
    return wall, cpu, out.stdout


def run_aiohttp(url):
    wall, cpu, out = timed([sys.executable, str(HERE / "aiohttp_scrape.py"), "--url", url,
                            "--ids", f"0..{N}", "--procs", str(os.cpu_count() or 2),
                            "--concurrency", str(CONCURRENCY), "--memory"])
    rows = int(out.split()[-1])
    assert rows == N, out
    return {"wall": wall, "cpu": cpu, "rows": rows}


def run_cli_parquet(url, binary, scratch):
    out = scratch / "rows.parquet"
    summary = scratch / "summary.json"
    shutil.rmtree(out, ignore_errors=True)
    wall, cpu, _ = timed([str(binary), "run", "-u", url, "-i", f"0..{N}", "-s", str(SHARDS),
                          "-c", str(CONCURRENCY), "-o", str(out), "--overwrite", "--no-progress",
                          "--quiet", "--summary-json", str(summary)])
    rows = json.loads(summary.read_text())["rows"]
    assert rows == N, rows
    return {"wall": wall, "cpu": cpu, "rows": rows}


def medians(results):
    rate = statistics.median(r["rows"] / r["wall"] for r in results)
    cpu_us = statistics.median(r["cpu"] / r["rows"] * 1e6 for r in results)
    return rate, cpu_us


def main():
    binary = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "target/release/ringscrape").resolve()
    if not binary.exists():
        sys.exit(f"no {binary}: build first (make build)")
    scratch = Path(tempfile.mkdtemp(prefix="ringscrape-bench-python-"))
    nginx_dir = scratch / "nginx"
    nginx_dir.mkdir()
    port = free_port()
    conf = (HERE / "nginx.conf.in").read_text()
    conf = conf.replace("@PORT@", str(port)).replace("@DIR@", str(nginx_dir)).replace("@WORKERS@", "1")
    (nginx_dir / "nginx.conf").write_text(conf)
    nginx = start_nginx(nginx_dir, port)
    url = f"http://127.0.0.1:{port}/log?id={{id}}"
    env = package_env(binary)
    results = {"fetch": [], "aiohttp": [], "cli": []}
    try:
        for r in range(ROUNDS):
            results["fetch"].append(run_fetch(url, env))
            results["aiohttp"].append(run_aiohttp(url))
            results["cli"].append(run_cli_parquet(url, binary, scratch))
            print(f"round {r + 1}/{ROUNDS} done", file=sys.stderr)
    finally:
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(scratch, ignore_errors=True)
    report(results)


def report(results):
    names = {
        "fetch": f"ringscrape.fetch from Python (-s {SHARDS} -c {CONCURRENCY}, a pyarrow Table)",
        "aiohttp": f"aiohttp, {os.cpu_count()} processes, {CONCURRENCY} in flight, rows in memory",
        "cli": f"ringscrape run -s {SHARDS} -c {CONCURRENCY} writing Parquet",
    }
    figures = {name: medians(rs) for name, rs in results.items()}
    print(f"N = {N} ids, {ROUNDS} rounds (median), one nginx (1 worker, last core), "
          f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}, binary {results['fetch'][0]['binary']}")
    print()
    print("| run | rows/s | CPU µs/row |")
    print("|---|---:|---:|")
    for name, (rate, cpu_us) in figures.items():
        print(f"| {names[name]} | {rate:,.0f} | {cpu_us:.2f} |")
    (f_rate, f_cpu), (a_rate, a_cpu), (_, c_cpu) = figures["fetch"], figures["aiohttp"], figures["cli"]
    print()
    print(f"fetch / aiohttp: rows/s {f_rate / a_rate:.1f}x (target >= 10x), "
          f"CPU per row {f_cpu / a_cpu:.3f} (target <= 0.1)")
    print(f"fetch / CLI writing Parquet: CPU per row {f_cpu / c_cpu:.2f}x (target <= 1.1x)")


if __name__ == "__main__":
    main()
