#!/usr/bin/env python3
"""Many hosts, politely (issue 38): ringscrape, scrapy and aiohttp on one job of many hosts,
each host capped, against one nginx, in one run.

1. hosts: HOSTS hosts x ITEMS items (2,000 x 10), at most PER_HOST requests of a host in flight
   (2) and RATE starts per second per host (5), TOTAL requests in flight in all (256), 2 processes
   (one per core) for every tool: ringscrape (`--host-concurrency --host-rate`), scrapy
   (bench/scrapy_hosts.py: `CONCURRENT_REQUESTS_PER_DOMAIN`, `DOWNLOAD_DELAY`) and aiohttp
   (bench/aiohttp_hosts.py: `limit_per_host`, a pacer per host, a semaphore). For each: wall
   time, requests/s, client CPU per request (user+sys of the tool's whole process tree), peak
   RSS of the tree, rows and 200s, and from nginx's own log (`$host $msec $request_time`) the
   caps the tool kept: the most requests of one host in flight at once and the most started in
   any 1-second window. The bound the caps allow: ITEMS at RATE per host take (ITEMS-1)/RATE s
   (1.8 s) when the slots of a paced host serve other hosts meanwhile; a client that keeps a
   paced host's requests in its slots fetches TOTAL/PER_HOST hosts at a time at best.
2. many: ringscrape alone, MANY_HOSTS hosts x 2 items (100,000 x 2) against one host x the same
   number of requests: peak RSS of the tree and CPU per request, and their ratios.

Hosts are names under a wildcard zone (`address=/hosts.test/127.0.0.1`) answered by dnsmasq in
a network namespace of the bench's own, where nginx and every client run, so each tool resolves
its names as it would on the Internet (needs root, dnsmasq and iproute2). `--loopback` uses
loopback addresses 127.x.y.z instead (no root, no DNS).

    sudo python3 bench/hosts.py [--quick] [--loopback] [--only hosts|many] [--tools ringscrape,scrapy,aiohttp] [BINARY]

Until ringscrape has `--host-concurrency`/`--host-rate`, it runs with `--rate HOSTS*RATE` and
`--concurrency` only, and its rows say "without host caps". ROUNDS (1) from the environment:
medians of that many rounds, the tools interleaved. Needs nginx, scrapy and aiohttp (PyPI).
"""

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench import measure
from common import free_port, start_nginx

HERE = Path(__file__).resolve().parent
ZONE = "hosts.test"
INSIDE = "RINGSCRAPE_BENCH_HOSTS_NETNS"
ROUNDS = int(os.environ.get("ROUNDS", "1"))

NGINX_CONF = """
worker_processes 1;
worker_rlimit_nofile 20000;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 16000; }}
http {{
    log_format hosts '$host $msec $request_time';
    access_log {dir}/access.log hosts;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/cb; proxy_temp_path {dir}/p; fastcgi_temp_path {dir}/f;
    uwsgi_temp_path {dir}/u; scgi_temp_path {dir}/s;
    server {{
        listen {listen} backlog=4096;
        location /item {{
            default_type application/json;
            return 200 '{{"host":"$host","item":"$arg_i","ok":true}}';
        }}
    }}
}}
"""


class Nginx:
    """nginx answering /item for any host, logging `$host $msec $request_time` per request;
    `take_log` hands over what it logged since the last call."""

    def __init__(self, loopback):
        self.dir = Path(tempfile.mkdtemp(prefix="ringscrape-hosts-"))
        # nginx's workers (user nobody under root) reopen the log here on SIGUSR1.
        self.dir.chmod(0o755)
        self.port = free_port() if loopback else 80
        listen = f"0.0.0.0:{self.port}" if loopback else "127.0.0.1:80"
        (self.dir / "nginx.conf").write_text(NGINX_CONF.format(dir=self.dir, listen=listen))
        self.proc = start_nginx(self.dir, self.port)
        self.logs = 0

    def take_log(self):
        """The log so far, moved aside (nginx reopens a fresh one on SIGUSR1)."""
        self.logs += 1
        taken = self.dir / f"access-{self.logs}.log"
        (self.dir / "access.log").rename(taken)
        self.proc.send_signal(10)  # SIGUSR1: reopen the log files
        for _ in range(100):
            if (self.dir / "access.log").exists():
                break
            time.sleep(0.02)
        return taken

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def host_names(n, loopback, port):
    """n host names: h0.hosts.test… or loopback addresses 127.a.b.c:PORT (up to 250**3)."""
    if not loopback:
        return [f"h{i}.{ZONE}" for i in range(n)]
    return [f"127.{i // 62500 + 1}.{i // 250 % 250 + 1}.{i % 250 + 1}:{port}" for i in range(n)]


def hosts_column(names):
    """ringscrape's key file of `names`: a column `host`, without a loopback address's port."""
    return "host\n" + "\n".join(n.split(":")[0] for n in names) + "\n"


def caps_of_log(path):
    """From nginx's log: (requests, most in flight of one host at once, most started by one
    host in any 1-second window). A request started at $msec - $request_time (both to the
    millisecond); one that ends in the millisecond another starts is not counted with it."""
    by_host = defaultdict(list)
    requests = 0
    with open(path) as f:
        for line in f:
            host, end, took = line.split()
            end_ms = round(float(end) * 1000)
            by_host[host].append((end_ms - round(float(took) * 1000), end_ms))
            requests += 1
    most_in_flight = most_per_second = 0
    for spans in by_host.values():
        events = sorted([(s, 1) for s, _ in spans] + [(max(e, s + 1), -1) for s, e in spans])
        in_flight = 0
        for _, step in events:  # ends sort before starts of the same millisecond
            in_flight += step
            most_in_flight = max(most_in_flight, in_flight)
        starts = sorted(s for s, _ in spans)
        first = 0
        for last, start in enumerate(starts):
            while start - starts[first] >= 1000:
                first += 1
            most_per_second = max(most_per_second, last - first + 1)
    return requests, most_in_flight, most_per_second


def rows_and_ok(path):
    """Rows of a tool's CSV, and those answered 200."""
    rows = ok = 0
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rows += 1
            ok += row.get("status") == "200"
    return rows, ok


def has_host_caps(binary):
    help_text = subprocess.run([binary, "run", "--help"], capture_output=True, text=True).stdout
    return "--host-concurrency" in help_text and "--host-rate" in help_text


def ringscrape_cmd(a, hosts_csv, items, out, capped, fallback_rate=None):
    """ringscrape over every host x item; `capped`: with the per-host caps, or, in a build
    without them, with `--rate fallback_rate` when given."""
    shards = 2
    # A loopback host's port goes in the URL: a {host} value is a host name, not host:port.
    url = f"http://{{host}}:{a.port}/item?i={{id}}" if a.loopback else "http://{host}/item?i={id}"
    cmd = [a.binary, "run", "-u", url, "--keys", str(hosts_csv),
           "-i", f"0..{items}", "-s", str(shards), "-c", str(a.total // shards), "-o", str(out),
           "--overwrite", "--no-progress", "-q"]
    if capped and a.host_caps:
        cmd += ["--host-concurrency", str(a.per_host), "--host-rate", str(a.rate)]
    elif capped and fallback_rate:
        cmd += ["--rate", f"{fallback_rate:g}"]
    return cmd


def peer_cmd(a, script, hosts_txt, out):
    return [sys.executable, str(HERE / script), "--hosts", str(hosts_txt), "--items", str(a.items),
            "--url", "http://{host}/item?i={item}", "--procs", "2", "--concurrency", str(a.total),
            "--per-host", str(a.per_host), "--rate", str(a.rate), "--out", str(out)]


def run_tool(nginx, cmd, out, keep_log=None):
    """One run of a tool: its figures, and the caps nginx saw it keep (its log copied to
    `keep_log` when given)."""
    wall, _, _, rss, cpu = measure(cmd)
    rows, ok = rows_and_ok(out)
    log = nginx.take_log()
    if keep_log:
        shutil.copy(log, keep_log)
    logged, in_flight, per_second = caps_of_log(log)
    return {"wall": wall, "cpu": cpu, "rss": rss, "rows": rows, "ok": ok, "logged": logged,
            "in_flight": in_flight, "per_second": per_second}


def job_hosts(a, nginx, work):
    names = host_names(a.hosts, a.loopback, nginx.port)
    hosts_txt, hosts_csv = work / "hosts.txt", work / "hosts.csv"
    hosts_txt.write_text("\n".join(names) + "\n")
    hosts_csv.write_text(hosts_column(names))
    out = work / "rows.csv"
    label = "ringscrape" if a.host_caps else "ringscrape (without host caps)"
    commands = {
        label: ringscrape_cmd(a, hosts_csv, a.items, out, True, a.rate * a.hosts),
        "scrapy": peer_cmd(a, "scrapy_hosts.py", hosts_txt, out),
        "aiohttp": peer_cmd(a, "aiohttp_hosts.py", hosts_txt, out),
    }
    wanted = [k for k in commands if k.split()[0] in a.tools]
    runs = {k: [] for k in wanted}
    for _ in range(ROUNDS):
        for tool in wanted:
            print(f"hosts: {tool} …", file=sys.stderr, flush=True)
            keep = a.keep_logs and Path(a.keep_logs) / f"{tool.split()[0]}-{len(runs[tool])}.log"
            runs[tool].append(run_tool(nginx, commands[tool], out, keep))
    print_hosts(a, runs)


def print_hosts(a, runs):
    n = a.hosts * a.items
    per_host_s = (a.items - 1) / a.rate
    waves = -(-a.hosts // max(1, a.total // a.per_host))
    print(f"\n{a.hosts} hosts x {a.items} items = {n} requests; caps: {a.per_host} in flight and "
          f"{a.rate:g}/s per host, {a.total} in flight in all, 2 processes; medians of {ROUNDS}")
    print(f"bound the caps allow: {per_host_s:.2f} s per host, so {per_host_s:.2f} s for the run "
          f"when paced hosts hold no slot; {waves * per_host_s:.1f} s when they do "
          f"({a.total // a.per_host} hosts at a time)")
    print("| tool | wall s | × bound | req/s | CPU µs/req | peak RSS MB | rows | 200s "
          "| max in flight per host | max starts per host in 1 s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for tool, samples in runs.items():
        med = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        print(f"| {tool} | {med['wall']:.2f} | {med['wall'] / per_host_s:.1f}× "
              f"| {n / med['wall']:,.0f} | {med['cpu'] / n * 1e6:.1f} | {med['rss']:.1f} "
              f"| {med['rows']:.0f} | {med['ok']:.0f} | {med['in_flight']:.0f} "
              f"| {med['per_second']:.0f} |")
    print("(nginx logs to the millisecond: a request that ends in the millisecond another of its "
          "host starts is not counted in flight with it)")


def job_many(a, nginx, work):
    """ringscrape: MANY hosts x 2 items against one host x as many requests (the host in the
    URL, as a one-host job is written; uncapped: one host at 5/s would take hours)."""
    names = host_names(a.many, a.loopback, nginx.port)
    many_csv = work / "many.csv"
    many_csv.write_text(hosts_column(names))
    out = work / "rows.csv"
    one = [a.binary, "run", "-u", f"http://{names[0]}/item?i={{id}}", "-i", f"0..{2 * a.many}",
           "-s", "2", "-c", str(a.total // 2), "-o", str(out), "--overwrite", "--no-progress", "-q"]
    commands = {"many": ringscrape_cmd(a, many_csv, 2, out, capped=True), "one": one}
    runs = {"many": [], "one": []}
    for _ in range(ROUNDS):
        for job, cmd in commands.items():
            print(f"many: ringscrape, {job} …", file=sys.stderr, flush=True)
            runs[job].append(run_tool(nginx, cmd, out))
    n = 2 * a.many
    med = {job: {k: statistics.median(s[k] for s in r) for k in r[0]} for job, r in runs.items()}
    caps = "with host caps" if a.host_caps else "without host caps"
    print(f"\nringscrape, {n} requests, 2 shards x {a.total // 2} in flight; medians of {ROUNDS}")
    print("| job | wall s | req/s | CPU µs/req | peak RSS MB | rows | 200s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for job, label in (("many", f"{a.many} hosts x 2 items ({caps})"), ("one", f"1 host x {n}")):
        m = med[job]
        print(f"| {label} | {m['wall']:.2f} | {n / m['wall']:,.0f} | {m['cpu'] / n * 1e6:.2f} "
              f"| {m['rss']:.1f} | {m['rows']:.0f} | {m['ok']:.0f} |")
    print(f"many / one: CPU per request {med['many']['cpu'] / med['one']['cpu']:.2f}×, "
          f"peak RSS {med['many']['rss'] / med['one']['rss']:.2f}×")


def inside(a):
    """The bench proper, in the namespace (or on loopback)."""
    a.host_caps = has_host_caps(a.binary)
    if not a.host_caps:
        print(f"{a.binary} has no --host-concurrency/--host-rate yet: it runs with --rate "
              f"{a.rate * a.hosts:g} and --concurrency only (without host caps)", file=sys.stderr)
    nginx = Nginx(a.loopback)
    a.port = nginx.port
    work = nginx.dir / "work"
    work.mkdir()
    try:
        if a.only in (None, "hosts"):
            job_hosts(a, nginx, work)
        if a.only in (None, "many") and "ringscrape" in a.tools:
            job_many(a, nginx, work)
    finally:
        nginx.stop()


class Namespace:
    """A network namespace of the bench's own: loopback up, dnsmasq answering every name under
    hosts.test with 127.0.0.1 (the namespace's resolv.conf names it), torn down on exit."""

    def __init__(self):
        self.name = f"rs-bench-hosts-{os.getpid()}"
        self.etc = Path("/etc/netns") / self.name
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)
        self.etc.mkdir(parents=True, exist_ok=True)
        (self.etc / "resolv.conf").write_text("nameserver 127.0.0.53\n")
        dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        self.dnsmasq = subprocess.Popen(
            ["ip", "netns", "exec", self.name, dnsmasq, "--no-daemon", "--no-resolv", "--no-hosts",
             "--listen-address=127.0.0.53", "--bind-interfaces", f"--address=/{ZONE}/127.0.0.1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            probe = ["ip", "netns", "exec", self.name, "getent", "hosts", f"ready.{ZONE}"]
            if subprocess.run(probe, capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        self.close()
        sys.exit(f"dnsmasq did not answer in {self.name}")

    def close(self):
        self.dnsmasq.terminate()
        self.dnsmasq.wait()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        shutil.rmtree(self.etc, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("binary", nargs="?", default="target/release/ringscrape")
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    p.add_argument("--loopback", action="store_true",
                   help="hosts are loopback addresses 127.x.y.z: no namespace, no DNS, no root")
    p.add_argument("--only", choices=["hosts", "many"], help="one of the two jobs")
    p.add_argument("--tools", default="ringscrape,scrapy,aiohttp", help="of the hosts job")
    p.add_argument("--hosts", type=int, help="hosts of the first job (2000; --quick 200)")
    p.add_argument("--many", type=int, help="hosts of the second job (100000; --quick 5000)")
    p.add_argument("--items", type=int, default=10, help="items per host of the first job")
    p.add_argument("--per-host", type=int, default=2, help="requests in flight per host")
    p.add_argument("--rate", type=float, default=5, help="starts per second per host")
    p.add_argument("--total", type=int, default=256, help="requests in flight in all")
    p.add_argument("--keep-logs", metavar="DIR", help="copy nginx's log of each tool's run here")
    a = p.parse_args()
    a.hosts = a.hosts or (200 if a.quick else 2000)
    a.many = a.many or (5000 if a.quick else 100000)
    a.tools = a.tools.split(",")
    a.binary = str(Path(a.binary).resolve())
    if a.loopback or os.environ.get(INSIDE):
        inside(a)
        return 0
    if os.geteuid() != 0:
        sys.exit("hosts.py: the namespace with dnsmasq needs root; run with sudo, or --loopback")
    netns = Namespace()
    try:
        env = dict(os.environ, **{INSIDE: netns.name})
        return subprocess.run(["ip", "netns", "exec", netns.name, sys.executable, __file__,
                               *sys.argv[1:]], env=env).returncode
    finally:
        netns.close()


if __name__ == "__main__":
    sys.exit(main())
