#!/usr/bin/env python3
"""`make bench`: ringscrape and its peers against one local nginx, in one run.

Every tool fetches the same tiny JSON record at /log?id=N from the same nginx (one worker,
pinned to the last core) with the same total concurrency, for N requests (wrk cannot stop at a
count, so it runs for a duration sized from a short calibration run to about N requests).
Each tool runs ROUNDS times, interleaved; the table shows the median req/s, the client CPU per
request (user+sys of the tool's whole process tree: the figure that carries from one machine to
another), rows written, the peak RSS of the tree, and each ratio to ringscrape. ringscrape also
runs with --save-body (every body kept in the CSV) and on its epoll driver (RINGSCRAPE_DRIVER=epoll:
what a container without io_uring gets) beside the plain run. Then ringscrape alone at
BIG_N ids checks that its memory does not grow with the range.

Beside them, "wrk -t1 (one URL)" fetches one fixed URL with one thread: the server's ceiling
and the leanest client there is, the reference for CPU per request.

Then a concurrency sweep (SWEEP, per worker, one worker/thread each, ROUNDS rounds, median): CPU
per request and req/s of ringscrape -s 1 and wrk -t1 (ids script) as connections grow.

Then many in flight (DELAY_C total connections, 0 to skip): ringscrape -s 2 against `ringscrape
serve --delay-ms 0..900` (mean 0.45 s) for DELAY_N ids: req/s as a share of Little's law
(connections / 0.45 s), p99, peak RSS of the tree, and the kernel's listen-queue overflows and
SYN retransmits (nstat). Once on this machine as it is, once with --local-addr 127.0.0.8/29
(eight source addresses, the default port range each), and once in a network namespace of its
own with net.ipv4.ip_local_port_range widened to 1024-65535 (root only): past half the default
range, the kernel's search for a free local port makes connects slow (see README). Goals: with
--local-addr, at least 0.95 of Little's law, p99 at most 1.2 s, tree RSS at most 160 MB.

Then MANY_C connections open at once to one server port (40000, 0 skips): ringscrape -s 5
-c MANY_C/5 --local-addr 127.0.0.8/29 against nginx with 4 workers (keep-alive: each slot holds
its connection for the run) for 10 x MANY_C ids; the most connections seen established at once
(ss, every 100 ms) and whether every row is a 200. Five workers, because a process may hold no
more descriptors than the hard limit (20,000 here, which root cannot raise on this machine: no
CAP_SYS_RESOURCE); a worker needs two per slot.

Then through proxies (PROXY_N ids, 0 skips; when tinyproxy and microsocks are installed):
ringscrape -s 1 -c 64 against nginx /log directly, through tinyproxy (forward proxy) and through
microsocks (SOCKS5), ROUNDS rounds interleaved (median): req/s, ringscrape's CPU per request,
and the proxy's own CPU per request.

Then what is kept of the answers (ANSWERS_N ids each, ROUNDS rounds, median; ANSWERS=0 skips):
/gz (about 1 KB of JSON) through nginx `gzip on`, decoded (the default) against --raw-body
(nginx then sends it plain) and against gzip received but not decoded; /log with three
--extract pointers against plain; and FORMATS_N ids with --save-body written as CSV, JSON Lines
and Parquet (req/s, CPU per request, file size).

Environment: N (500000), BIG_N (5000000), CONCURRENCY (256), ROUNDS (3), SHARDS ("1 2": one
ringscrape row per value), TOOLS (all), SWEEP ("64 256 1024 4096"), SWEEP_N (300000),
DELAY_C (16384), DELAY_N (600000), MANY_C (40000), PROXY_N (200000). Results also go to
bench/out/latest.md.
"""
import json
import os
import resource
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import children_cpu, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = ROOT / "target" / "release" / "ringscrape"
OUT = HERE / "out"

N = int(os.environ.get("N", "500000"))
BIG_N = int(os.environ.get("BIG_N", "5000000"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "256"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SHARDS = [int(s) for s in os.environ.get("SHARDS", "1 2").split()]
TOOLS = os.environ.get("TOOLS", "ringscrape wrk oha hey ffuf aiohttp").split()
SWEEP = [int(c) for c in os.environ.get("SWEEP", "64 256 1024 4096").split()]
SWEEP_N = int(os.environ.get("SWEEP_N", "300000"))
DELAY_C = int(os.environ.get("DELAY_C", "16384"))
DELAY_N = int(os.environ.get("DELAY_N", "600000"))
DELAY_MEAN_S = 0.45
MANY_C = int(os.environ.get("MANY_C", "40000"))
PROXY_N = int(os.environ.get("PROXY_N", "200000"))
LOCAL_ADDRS = "127.0.0.8/29"
ANSWERS = os.environ.get("ANSWERS", "1") != "0"
ANSWERS_N = int(os.environ.get("ANSWERS_N", "300000"))
FORMATS_N = int(os.environ.get("FORMATS_N", "1000000"))


def tree_rss_kb(root_pid):
    """Sum of VmRSS over a process and all its descendants."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat[stat.rfind(")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in tree:
                tree.add(child)
                frontier.append(child)
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class Peak:
    """The largest value `read()` gives, sampled every 100 ms while the `with` block runs."""

    def __init__(self, read):
        self.read, self.value = read, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample)

    def sample(self):
        while not self.done.is_set():
            self.value = max(self.value, self.read())
            self.done.wait(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def measure(cmd, **kw):
    """Runs cmd; returns (wall seconds, stdout text, stderr text, peak tree RSS in MB, CPU s)."""
    cpu_before = children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    with Peak(lambda: tree_rss_kb(proc.pid)) as peak:
        out, err = proc.communicate()
        wall = time.perf_counter() - start
    cpu = children_cpu() - cpu_before
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}: {err.strip()[-500:]}")
    return wall, out, err, peak.value / 1024, cpu


def csv_rows(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f) - 1


class Nginx:
    def __init__(self, workers=1):
        self.dir = Path(tempfile.mkdtemp(prefix="ringscrape-bench-nginx-"))
        self.port = free_port()
        conf = (HERE / "nginx.conf.in").read_text()
        conf = conf.replace("@PORT@", str(self.port)).replace("@DIR@", str(self.dir))
        conf = conf.replace("@WORKERS@", str(workers))
        (self.dir / "nginx.conf").write_text(conf)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.proc = subprocess.Popen([nginx, "-c", str(self.dir / "nginx.conf"), "-p", str(self.dir)])
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        # nginx gets the last core; single-shard ringscrape pins itself to the first.
        last_core = max(os.sched_getaffinity(0))
        for pid in [self.proc.pid] + [c for c in self.children()]:
            os.sched_setaffinity(pid, {last_core})
        self.base = f"http://127.0.0.1:{self.port}"

    def children(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def run_ringscrape(base, n, shards, extra=(), per_worker=None, prefix=(), path="/log", out=None, env=None):
    out = out or OUT / f"ringscrape-s{shards}.csv"
    summary = OUT / "summary.json"
    per_worker = per_worker or CONCURRENCY // shards
    cmd = [*prefix, str(BIN), "run", "-u", f"{base}{path}?id={{id}}", "-i", f"0..{n}", "-s", str(shards),
           "-c", str(per_worker), "-o", str(out), "--overwrite", "--no-progress",
           "--summary-json", str(summary), *extra]
    wall, _, err, rss, cpu = measure(cmd, env=env and {**os.environ, **env})
    summary = json.loads(summary.read_text())
    rows = summary["rows"]
    size = sum(p.stat().st_size for p in out.iterdir()) if out.is_dir() else out.stat().st_size
    return {"wall": wall, "requests": rows, "rows": rows, "rss": rss, "cpu": cpu,
            "summary": summary, "size": size}


def wrk(threads, connections, seconds, url, ids):
    """One wrk run; with `ids`, the id-per-request Lua script, else the one URL given."""
    env = dict(os.environ, WRK_N=str(10**12), WRK_THREADS=str(threads))
    script = ["-s", str(HERE / "wrk-ids.lua")] if ids else []
    wall, out, _, rss, cpu = measure(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
                                      *script, url], env=env)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    return {"wall": wall, "requests": requests, "rows": None, "rss": rss, "cpu": cpu}


def seconds_for(n, kind, run, rates={}):
    """wrk stops on a duration, not a count: the seconds for about n requests, from one 2 s
    calibration run per kind of wrk run."""
    if kind not in rates:
        calibration = run(2)
        rates[kind] = calibration["requests"] / calibration["wall"]
    return max(1, round(n / rates[kind]))


def run_wrk(base, n):
    go = lambda seconds: wrk(2, CONCURRENCY, seconds, base, ids=True)
    return go(seconds_for(n, "ids", go))


def run_wrk_one_url(base, n):
    """wrk -t1 on one fixed URL: the server's ceiling."""
    go = lambda seconds: wrk(1, CONCURRENCY, seconds, f"{base}/log?id=1", ids=False)
    return go(seconds_for(n, "one URL", go))


def run_oha(base, n):
    url = base + r"/log\?id=[0-9]{1,7}"
    wall, out, _, rss, cpu = measure(["oha", "-n", str(n), "-c", str(CONCURRENCY), "--no-tui",
                                 "--output-format", "json", "--rand-regex-url", url])
    codes = json.loads(out).get("statusCodeDistribution", {})
    return {"wall": wall, "requests": sum(codes.values()), "rows": None, "rss": rss, "cpu": cpu}


def run_hey(base, n):
    wall, out, _, rss, cpu = measure(["hey", "-n", str(n), "-c", str(CONCURRENCY), f"{base}/log?id=1"])
    ok = re.search(r"\[200\]\s+(\d+) responses", out)
    return {"wall": wall, "requests": int(ok.group(1)) if ok else 0, "rows": None, "rss": rss, "cpu": cpu}


def run_ffuf(base, n):
    words = OUT / f"ids-{n}.txt"
    if not words.exists():
        words.write_text("".join(f"{i}\n" for i in range(n)))
    wall, out, _, rss, cpu = measure(["ffuf", "-u", f"{base}/log?id=FUZZ", "-w", str(words),
                                 "-t", str(CONCURRENCY), "-s", "-mc", "all"])
    lines = out.count("\n")
    return {"wall": wall, "requests": lines, "rows": None, "rss": rss, "cpu": cpu}


def run_aiohttp(base, n):
    out = OUT / "aiohttp.csv"
    wall, _, _, rss, cpu = measure([sys.executable, str(HERE / "aiohttp_scrape.py"), "--url", f"{base}/log?id={{id}}",
                               "--ids", f"0..{n}", "--procs", str(os.cpu_count() or 2),
                               "--concurrency", str(CONCURRENCY), "--out", str(out)])
    rows = csv_rows(out)
    return {"wall": wall, "requests": rows, "rows": rows, "rss": rss, "cpu": cpu}


def main():
    OUT.mkdir(exist_ok=True)
    if not BIN.exists():
        sys.exit("build first: make build")
    runners = []
    for tool in TOOLS:
        if tool == "ringscrape":
            for s in SHARDS:
                runners.append((f"ringscrape -s {s} -c {CONCURRENCY // s}", lambda b, n, s=s: run_ringscrape(b, n, s)))
            s = SHARDS[0]
            runners.append((f"ringscrape -s {s} -c {CONCURRENCY // s} --save-body",
                            lambda b, n, s=s: run_ringscrape(b, n, s, ["--save-body"])))
            # What a container whose seccomp profile refuses io_uring gets (docs/guide.md).
            runners.append((f"ringscrape -s {s} -c {CONCURRENCY // s}, epoll driver",
                            lambda b, n, s=s: run_ringscrape(b, n, s, env={"RINGSCRAPE_DRIVER": "epoll"})))
        elif tool == "aiohttp" or shutil.which(tool):
            label = {"wrk": "wrk (Lua, id per request)", "oha": "oha (random id URLs)",
                     "hey": "hey (one fixed URL)", "ffuf": "ffuf (id wordlist)",
                     "aiohttp": "Python aiohttp (procs x bounded session)"}[tool]
            runners.append((label, globals()[f"run_{tool}"]))
            if tool == "wrk":
                runners.append(("wrk -t1 (one URL: the server's ceiling)", run_wrk_one_url))
        else:
            print(f"bench: {tool} not installed, skipped", file=sys.stderr)
    nginx = Nginx()
    results = {label: [] for label, _ in runners}
    try:
        for r in range(ROUNDS):
            for label, runner in runners:
                res = runner(nginx.base, N)
                res["rate"] = res["requests"] / res["wall"]
                results[label].append(res)
                res["cpu_us"] = res["cpu"] / max(res["requests"], 1) * 1e6
                print(f"round {r + 1}/{ROUNDS}  {label:45s} {res['rate']:>10.0f} req/s  "
                      f"{res['cpu_us']:.2f} µs CPU/req  "
                      f"{res['requests']} requests in {res['wall']:.2f} s  rss {res['rss']:.1f} MB", file=sys.stderr)
        big = small = None
        if "ringscrape" in TOOLS:
            s = SHARDS[0]
            small = max(run_ringscrape(nginx.base, N, s)["rss"] for _ in range(2))
            big = max(run_ringscrape(nginx.base, BIG_N, s)["rss"] for _ in range(1))
        sweep = run_sweep(nginx.base) if SWEEP and "ringscrape" in TOOLS and shutil.which("wrk") else []
        answers = run_answers(nginx.base) if ANSWERS else []
        proxied = run_proxied(nginx.base) if PROXY_N and shutil.which("tinyproxy") and shutil.which("microsocks") else []
    finally:
        nginx.stop()
    delay = run_delay() if DELAY_C else []
    many = run_many() if MANY_C else []

    ref_label = next((l for l, _ in runners if l.startswith("ringscrape")), None)
    ref = statistics.median(x["rate"] for x in results[ref_label]) if ref_label else None
    lines = [
        f"N = {N} requests per tool, total concurrency {CONCURRENCY}, {ROUNDS} rounds (median), "
        f"nginx 1 worker on the last core, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}",
        "",
        "| tool | req/s (median) | ratio to ringscrape | client CPU µs/request (median) | rows written | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, _ in runners:
        runs = results[label]
        rate = statistics.median(x["rate"] for x in runs)
        rows = runs[-1]["rows"]
        rss = statistics.median(x["rss"] for x in runs)
        ratio = f"{rate / ref:.2f}x" if ref else "-"
        cpu_us = statistics.median(x["cpu_us"] for x in runs)
        lines.append(f"| {label} | {rate:,.0f} | {ratio} | {cpu_us:.2f} | "
                     f"{rows if rows is not None else '- (none)'} | {rss:.1f} |")
    if big is not None:
        lines += ["", f"ringscrape peak RSS (whole process tree): {small:.1f} MB at N={N:,}, "
                      f"{big:.1f} MB at N={BIG_N:,} ({(big / small - 1) * 100:+.1f}%)"]
    if sweep:
        lines += ["", f"Concurrency sweep: one worker / one thread, {SWEEP_N} requests per point, "
                      f"{ROUNDS} rounds (median)", "",
                  "| connections | ringscrape req/s | ringscrape µs CPU/req | wrk -t1 (ids) req/s | wrk µs CPU/req | CPU ratio |",
                  "|---:|---:|---:|---:|---:|---:|"]
        lines += sweep
    if delay:
        lines += ["", f"Many in flight: ringscrape -s 2, {DELAY_C} connections, serve --delay-ms 0..900 "
                      f"(mean {DELAY_MEAN_S} s), {DELAY_N} ids; Little's law = {DELAY_C / DELAY_MEAN_S:,.0f} req/s", "",
                  "| where | req/s | share of Little's law | p50 ms | p99 ms | peak tree RSS (MB) | listen overflows | SYN retransmits |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        lines += delay
    if many:
        lines += ["", f"Connections open at once to one server port: ringscrape -s 5 -c {MANY_C // 5} "
                      f"--local-addr {LOCAL_ADDRS}, nginx 4 workers, {10 * MANY_C} ids", "",
                  "| connections asked | most established at once | rows | 200s | wall s | peak tree RSS (MB) |",
                  "|---:|---:|---:|---:|---:|---:|"]
        lines += many
    if proxied:
        lines += ["", f"Through proxies: ringscrape -s 1 -c 64, nginx /log, {PROXY_N} ids, {ROUNDS} rounds (median)", "",
                  "| route | req/s | ringscrape CPU µs/request | proxy CPU µs/request |",
                  "|---|---:|---:|---:|"]
        lines += proxied
    if answers:
        lines += ["", f"What is kept of the answers: ringscrape -s 1 -c {CONCURRENCY}, {ROUNDS} rounds (median); "
                      f"decoding and extraction {ANSWERS_N} ids, formats {FORMATS_N} ids", "",
                  "| run | req/s | client CPU µs/request | ratio of CPU to its baseline | bytes decoded / on the wire | file (MB) |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += answers
    text = "\n".join(lines)
    print(text)
    (OUT / "latest.md").write_text(text + "\n")


def run_answers(base):
    """Decoding, extraction and row formats: each against its baseline, interleaved."""

    c = CONCURRENCY
    gz, log = "/gz", "/log"
    pointers = ["--extract", "rid=/id", "--extract", "source=/source", "--extract", "value=/value"]
    cases = [
        ("/gz, gzip decoded (default)", gz, ANSWERS_N, [], "csv", "/gz plain (--raw-body)"),
        ("/gz plain (--raw-body)", gz, ANSWERS_N, ["--raw-body"], "csv", None),
        ("/gz, gzip received, not decoded", gz, ANSWERS_N,
         ["--raw-body", "-H", "Accept-Encoding: gzip"], "csv", "/gz plain (--raw-body)"),
        ("/log plain", log, ANSWERS_N, [], "csv", None),
        ("/log, --extract with three pointers", log, ANSWERS_N, pointers, "csv", "/log plain"),
        ("--save-body as CSV", log, FORMATS_N, ["--save-body"], "csv", None),
        ("--save-body as JSON Lines", log, FORMATS_N, ["--save-body"], "jsonl", "--save-body as CSV"),
        ("--save-body as Parquet", log, FORMATS_N, ["--save-body"], "parquet", "--save-body as CSV"),
    ]
    results = {label: [] for label, *_ in cases}
    for r in range(ROUNDS):
        for label, path, n, extra, fmt, _ in cases:
            res = run_ringscrape(base, n, 1, extra, per_worker=c, path=path, out=OUT / f"answers.{fmt}")
            res["cpu_us"] = res["cpu"] / res["requests"] * 1e6
            res["rate"] = res["requests"] / res["wall"]
            results[label].append(res)
            print(f"answers round {r + 1}: {label:40s} {res['rate']:.0f} req/s {res['cpu_us']:.2f} µs",
                  file=sys.stderr)
    rows = []
    med = lambda label, key: statistics.median(x[key] for x in results[label])
    for label, _, _, _, _, baseline in cases:
        last = results[label][-1]
        ratio = f"{med(label, 'cpu_us') / med(baseline, 'cpu_us'):.2f}x" if baseline else "1.00x"
        rows.append(f"| {label} | {med(label, 'rate'):,.0f} | {med(label, 'cpu_us'):.2f} | {ratio} | "
                    f"{last['summary']['bytes']:,} / {last['summary']['bytes_wire']:,} | "
                    f"{last['size'] / 1e6:.1f} |")
    return rows


def run_sweep(base):
    rows = []
    for c in SWEEP:
        rs, peer = [], []
        for r in range(ROUNDS):
            res = run_ringscrape(base, SWEEP_N, 1, per_worker=c)
            rs.append((res["requests"] / res["wall"], res["cpu"] / res["requests"] * 1e6))
            seconds = max(1, round(SWEEP_N / rs[-1][0]))
            w = wrk(1, c, seconds, base, ids=True)
            peer.append((w["requests"] / w["wall"], w["cpu"] / max(w["requests"], 1) * 1e6))
            print(f"sweep c={c} round {r + 1}: ringscrape {rs[-1][0]:.0f} req/s {rs[-1][1]:.2f} µs; "
                  f"wrk {peer[-1][0]:.0f} req/s {peer[-1][1]:.2f} µs", file=sys.stderr)
        med = lambda xs, i: statistics.median(x[i] for x in xs)
        rows.append(f"| {c} | {med(rs, 0):,.0f} | {med(rs, 1):.2f} | {med(peer, 0):,.0f} | {med(peer, 1):.2f} | "
                    f"{med(rs, 1) / med(peer, 1):.2f}x |")
    return rows


def nstat_counters(prefix=()):
    """The kernel's TCP counters that moved since the last call (the first, `nstat -n`, resets)."""
    out = subprocess.run([*prefix, "nstat"], capture_output=True, text=True).stdout
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


class Serve:
    """`ringscrape serve --delay-ms 0..900` (or `delay`), optionally inside a network namespace."""

    def __init__(self, prefix=(), delay="0..900"):
        port = free_port()
        self.port = port
        self.proc = subprocess.Popen([*prefix, str(BIN), "serve", "--listen", f"127.0.0.1:{port}",
                                      "--delay-ms", delay], stdout=subprocess.PIPE, text=True,
                                     preexec_fn=raise_nofile)
        self.base = self.proc.stdout.readline().split()[-1]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def raise_nofile():
    """The soft open-files limit to the hard one; as root, both as far as fs.nr_open allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if os.geteuid() == 0:
        most = min(int(Path("/proc/sys/fs/nr_open").read_text()), 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (most, most))
            return
        except (ValueError, OSError):
            pass  # no CAP_SYS_RESOURCE: the hard limit stays
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def established(port):
    """TCP connections established to 127.0.0.1:port, as the server sees them."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    return out.count("\n")


def run_many():
    """MANY_C connections open at once to one port, from eight source addresses."""
    nginx = Nginx(workers=4)
    try:
        with Peak(lambda: established(nginx.port)) as peak:
            res = run_ringscrape(nginx.base, 10 * MANY_C, 5, ["--local-addr", LOCAL_ADDRS, "--timeout", "60"],
                                 per_worker=MANY_C // 5)
    finally:
        nginx.stop()
    summary = res["summary"]
    ok = summary["status"].get("200", 0)
    print(f"many: {peak.value} established at once, {summary['rows']} rows, {ok} 200s, "
          f"{res['wall']:.1f} s, rss {res['rss']:.1f} MB", file=sys.stderr)
    return [f"| {MANY_C:,} | {peak.value:,} | {summary['rows']:,} | {ok:,} | {res['wall']:.1f} | {res['rss']:.1f} |"]


def process_cpu(pid):
    """user+sys seconds of a running process (and its waited-for children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_proxied(base):
    """Direct, through tinyproxy and through microsocks, interleaved."""
    tmp = Path(tempfile.mkdtemp(prefix="ringscrape-bench-proxy-"))
    tiny_port, socks_port = free_port(), free_port()
    (tmp / "tinyproxy.conf").write_text(
        f"Port {tiny_port}\nListen 127.0.0.1\nTimeout 60\nMaxClients 1000\nAllow 127.0.0.1\n"
        "DisableViaHeader Yes\nLogLevel Critical\n")
    procs = {
        "tinyproxy": subprocess.Popen(["tinyproxy", "-d", "-c", str(tmp / "tinyproxy.conf")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "microsocks": subprocess.Popen(["microsocks", "-i", "127.0.0.1", "-p", str(socks_port)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    }
    time.sleep(0.5)
    routes = [("direct", [], None),
              ("tinyproxy (HTTP forward proxy)", ["--proxy", f"http://127.0.0.1:{tiny_port}"], "tinyproxy"),
              ("microsocks (SOCKS5)", ["--proxy", f"socks5://127.0.0.1:{socks_port}"], "microsocks")]
    runs = {label: [] for label, _, _ in routes}
    try:
        for _ in range(ROUNDS):
            for label, extra, proxy in routes:
                before = process_cpu(procs[proxy].pid) if proxy else 0.0
                res = run_ringscrape(base, PROXY_N, 1, extra, per_worker=64)
                res["proxy_cpu"] = (process_cpu(procs[proxy].pid) - before) if proxy else 0.0
                runs[label].append(res)
                print(f"proxied {label}: {res['requests'] / res['wall']:.0f} req/s, "
                      f"{res['cpu'] / res['requests'] * 1e6:.2f} µs CPU/req", file=sys.stderr)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    for label, _, proxy in routes:
        r = runs[label]
        rate = statistics.median(x["requests"] / x["wall"] for x in r)
        cpu = statistics.median(x["cpu"] / x["requests"] * 1e6 for x in r)
        proxy_cpu = statistics.median(x["proxy_cpu"] / x["requests"] * 1e6 for x in r) if proxy else None
        rows.append(f"| {label} | {rate:,.0f} | {cpu:.2f} | {'-' if proxy_cpu is None else f'{proxy_cpu:.2f}'} |")
    return rows


def private_netns():
    """A network namespace with loopback up and the local port range widened; None if not root."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        return None
    name = "ringscrape-bench"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    for cmd in (["ip", "netns", "add", name], ["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"],
                ["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535"]):
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            return None
    return name


def run_delay():
    rows = []
    netns = private_netns()
    places = [("this machine", ())] + ([("own netns, ports 1024-65535", ("ip", "netns", "exec", netns))] if netns else [])
    places.insert(1, (f"this machine, --local-addr {LOCAL_ADDRS}", ()))
    for where, prefix in places:
        serve = Serve(prefix)
        extra = ["--local-addr", LOCAL_ADDRS] if "--local-addr" in where else []
        try:
            subprocess.run([*prefix, "nstat", "-n"], capture_output=True)
            res = run_ringscrape(serve.base, DELAY_N, 2, extra, per_worker=DELAY_C // 2, prefix=prefix)
            counts = nstat_counters(prefix)
        finally:
            serve.stop()
        summary = res["summary"]
        rate = summary["req_per_s"]
        little = DELAY_C / DELAY_MEAN_S
        lat = summary["latency_ms"]
        print(f"delay ({where}): {rate:.0f} req/s = {rate / little:.3f} of Little, p99 {lat['p99']:.0f} ms, "
              f"rss {res['rss']:.1f} MB, {counts}", file=sys.stderr)
        rows.append(f"| {where} | {rate:,.0f} | {rate / little:.3f} | {lat['p50']:.0f} | {lat['p99']:.0f} | "
                    f"{res['rss']:.1f} | {counts.get('TcpExtListenOverflows', 0)} | "
                    f"{counts.get('TcpExtTCPSynRetrans', 0)} |")
    if netns:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
    return rows


if __name__ == "__main__":
    main()
