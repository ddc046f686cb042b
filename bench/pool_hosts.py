"""Many hosts against one: client CPU per request, requests per second and connections opened
per request, for a run over a key file of loopback hosts (127.0.x.y, nginx listening on every
loopback address) and a one-host run of the same number of requests.

    python3 bench/pool_hosts.py --binary target/release/ringscrape --hosts 2000 --items 10

Each run: `ringscrape run -u 'http://{host}:PORT/x?i={i}' --keys keys.csv --shards 2` (the
one-host run: `-u 'http://127.0.0.1:PORT/x?i={id}' -i 0..N`); CPU is user+sys of the whole
process tree (the run's waited-for children), connections the distinct `$connection` values in
nginx's log.
"""

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import children_cpu, free_port, start_nginx  # noqa: E402

NGINX_CONF = """worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log crit;
worker_rlimit_nofile 65536;
events {{ worker_connections 60000; }}
http {{
  log_format conns '$remote_addr $connection $connection_requests $status';
  access_log {d}/access.log conns;
  keepalive_requests 100000;
  client_body_temp_path {d}/cb; proxy_temp_path {d}/px; fastcgi_temp_path {d}/fc;
  uwsgi_temp_path {d}/uw; scgi_temp_path {d}/sc;
  server {{
    listen 0.0.0.0:{port} reuseport backlog=65535;
    location / {{ return 200 "ok\\n"; }}
  }}
}}
"""


def host(k):
    """The k-th loopback host: 127.0.1.1, 127.0.1.2, … (250 per third octet)."""
    return f"127.{k // 250 // 250}.{k // 250 % 250 + 1}.{k % 250 + 1}"


def write_keys(path, hosts, items, order):
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["host", "i"])
        if order == "host":
            rows = ((host(h), i) for h in range(hosts) for i in range(items))
        elif order == "item":
            rows = ((host(h), i) for i in range(items) for h in range(hosts))
        else:
            # Hosts `window` at a time, their items interleaved: with W slots a worker, about
            # W / window of each host's items in flight at once, as a per-host cap sends them.
            window = int(order.split(":")[1])
            rows = ((host(h), i) for g in range(0, hosts, window) for i in range(items)
                    for h in range(g, min(g + window, hosts)))
        out.writerows(rows)


def connections(log, offset):
    """Distinct connections and requests in nginx's log past `offset` (and how many were 200)."""
    seen, requests, ok = set(), 0, 0
    with open(log) as f:
        f.seek(offset)
        for line in f:
            fields = line.split()
            seen.add(fields[1])
            requests += 1
            ok += fields[3] == "200"
    return len(seen), requests, ok


def run_once(args, work, port, many):
    log = work / "access.log"
    offset = log.stat().st_size if log.exists() else 0
    n = args.hosts * args.items
    if many:
        target = ["-u", f"http://{{host}}:{port}/x?i={{i}}", "--keys", str(work / "keys.csv")]
    else:
        target = ["-u", f"http://127.0.0.1:{port}/x?i={{id}}", "-i", f"0..{n}"]
    cmd = [args.binary, "run", *target, "--shards", str(args.shards), "-o", str(work / "out.csv"),
           "--overwrite", "--no-progress", "-q", *args.extra]
    before = children_cpu()
    started = time.monotonic()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL)
    wall = time.monotonic() - started
    cpu = children_cpu() - before
    conns, logged, ok = connections(log, offset)
    return {"exit": done.returncode, "requests": n, "wall_s": wall, "req_per_s": n / wall,
            "cpu_us_per_req": cpu / n * 1e6, "connections": conns,
            "conns_per_req": conns / n, "logged": logged, "logged_200": ok}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", required=True)
    p.add_argument("--hosts", type=int, default=2000)
    p.add_argument("--items", type=int, default=10)
    p.add_argument("--shards", type=int, default=2)
    p.add_argument("--order", default="host",
                   help="host: each host's items next to each other; item: every host's item 0, "
                        "then 1…; window:N: N hosts at a time, their items interleaved")
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--one-host", action="store_true", help="also the one-host run of as many requests")
    p.add_argument("extra", nargs="*", help="more flags for ringscrape (after --)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        port = free_port()
        (work / "nginx.conf").write_text(NGINX_CONF.format(d=d, port=port))
        write_keys(work / "keys.csv", args.hosts, args.items, args.order)
        nginx = start_nginx(work, port)
        try:
            kinds = [True, False] if args.one_host else [True]
            for _ in range(args.rounds):
                for many in kinds:
                    r = run_once(args, work, port, many)
                    name = f"{args.hosts} hosts x {args.items} ({args.order} order)" if many \
                        else f"one host x {r['requests']}"
                    print(f"{name}: exit {r['exit']}, {r['req_per_s']:,.0f} req/s, "
                          f"{r['cpu_us_per_req']:.2f} us CPU/req, {r['connections']:,} connections "
                          f"({r['conns_per_req']:.3f}/req), {r['logged_200']:,}/{r['logged']:,} logged 200, "
                          f"wall {r['wall_s']:.2f} s", flush=True)
        finally:
            nginx.terminate()
            nginx.wait()


if __name__ == "__main__":
    main()
