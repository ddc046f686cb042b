#!/usr/bin/env python3
"""Client CPU per request by door, pinned and interleaved: ringscrape builds against wrk and
h2load, in one run.

    python3 bench/protocols.py [NAME=BINARY ...]

Starts one nginx on loopback (one worker, pinned to the last core) with four doors to the same
`/log` record: plain HTTP/1.1, HTTP/1.1 over TLS 1.3, HTTP/2 over TLS (ALPN) and h2c (prior
knowledge); a fifth door, `epoll`, is the plain one with ringscrape on its epoll driver
(`RINGSCRAPE_DRIVER=epoll`, what a container without io_uring gets). Every client's whole
process tree runs on core 0 (`taskset`). In each round every client makes N requests with 256
in flight on every door in turn (every other round in reverse order), ROUNDS rounds; printed
are the median user+sys CPU of the tree per request and the median of the per-round ratios to the C peer on the same door (`wrk -t1
-c256` on one URL for HTTP/1.1 — its leanest form; h2load for HTTP/2). ringscrape writes every
row to CSV. Several ringscrape binaries can be named (e.g. `before=/tmp/rs-old
after=target/release/ringscrape`) to compare builds in one run. Needs nginx, openssl, wrk and
h2load (Debian: nginx-light, wrk, nghttp2-client). N, ROUNDS and DOORS (e.g. `h2,h2c`) come
from the environment (defaults 200000, 5 and all five). PERF=DIR records a `perf` profile of
each ringscrape run of the last round into DIR (needs perf). WAKEUPS=1 adds a run of each
ringscrape on each door under `perf stat`: io_uring_enter / epoll_wait calls, context switches
and peeks (recvfrom) per request, counts that do not drift with the machine's speed.
INSTRUCTIONS=1 adds a run of every client on every door under valgrind's callgrind (20,000
requests; wrk for 5 s, 20 s over TLS): user-space instructions per request of the whole process tree, the figure
that tells a 10% change apart where CPU time on a shared machine cannot (needs valgrind).
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import children_cpu, free_port, self_signed_cert, start_nginx

N = int(os.environ.get("N", "200000"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
PERF = os.environ.get("PERF")
CLIENT_CORE = "0"
IN_FLIGHT = 256
# h2load spreads its streams over connections; ringscrape puts 100 on a lane, so 256 take 3.
H2_CONNS = 3

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
    ssl_certificate {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;
    ssl_protocols TLSv1.3;
    http2_max_concurrent_streams 128;
    server {{
        listen 127.0.0.1:{plain} backlog=4096;
        listen 127.0.0.1:{tls} ssl backlog=4096;
        listen 127.0.0.1:{h2} ssl http2 backlog=4096;
        listen 127.0.0.1:{h2c} http2 backlog=4096;
        location /log {{
            default_type application/json;
            return 200 '{{"id":"$arg_id","source":"bench","ok":true,"value":42}}';
        }}
    }}
}}
"""


def cpu_of(cmd, env=None):
    """Runs cmd to the end; the user+sys seconds of its process tree, and its stdout."""
    before, start = children_cpu(), time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    cpu_of.wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {done.returncode}: {(done.stdout + done.stderr).strip()[-400:]}")
    return children_cpu() - before, done.stdout + done.stderr


class Nginx:
    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="ringscrape-protocols-"))
        self.ports = {door: free_port() for door in ("plain", "tls", "h2", "h2c")}
        self_signed_cert(self.dir, "127.0.0.1")
        (self.dir / "nginx.conf").write_text(NGINX_CONF.format(dir=self.dir, **self.ports))
        self.proc = start_nginx(self.dir, self.ports["plain"])

    def url(self, door):
        door = "plain" if door == "epoll" else door
        scheme = "http" if door in ("plain", "h2c") else "https"
        return f"{scheme}://127.0.0.1:{self.ports[door]}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


WAKEUP_EVENTS = ["syscalls:sys_enter_io_uring_enter", "syscalls:sys_enter_epoll_wait",
                 "syscalls:sys_enter_recvfrom", "syscalls:sys_enter_sched_yield", "context-switches"]


def ringscrape(binary, nginx, door, profile=None, counts=None):
    out = nginx.dir / "rows.csv"
    cmd = [binary, "run", "-u", f"{nginx.url(door)}/log?id={{id}}", "-i", f"0..{N}", "-s", "1",
           "-c", str(IN_FLIGHT), "-o", str(out), "--overwrite", "--no-progress", "-q", "-k"]
    if door in ("h2", "h2c"):
        cmd.append("--http2")
    env = {**os.environ, "RINGSCRAPE_DRIVER": "epoll"} if door == "epoll" else None
    cmd = ["taskset", "-c", CLIENT_CORE, *cmd]
    if profile:
        # perf's own CPU is in the tree too: a profiled run is not a sample.
        cmd = ["perf", "record", "-q", "-g", "-o", str(profile), "--", *cmd]
    if counts:
        cmd = ["perf", "stat", "-x", ",", "-o", str(counts), *(f"-e{e}" for e in WAKEUP_EVENTS), "--", *cmd]
    cpu, _ = cpu_of(cmd, env=env)
    with open(out, "rb") as f:
        rows = sum(1 for _ in f) - 1
    if rows != N:
        sys.exit(f"{binary} on {door}: {rows} rows, not {N}")
    return cpu / N


def h2load(nginx, door):
    cpu, out = cpu_of(["taskset", "-c", CLIENT_CORE, "h2load", "-n", str(N), "-c", str(H2_CONNS), "-t", "1",
                       "-m", str(IN_FLIGHT // H2_CONNS + 1), f"{nginx.url(door)}/log?id=1"])
    if f"{N} succeeded" not in out:
        sys.exit(f"h2load on {door} did not succeed on every request:\n{out[-600:]}")
    return cpu / N


def wrk(nginx, door, seconds):
    # One URL, no script: wrk at its leanest. wrk stops on a duration, not a count.
    url = nginx.url("plain" if door == "epoll" else door)
    cpu, out = cpu_of(["taskset", "-c", CLIENT_CORE, "wrk", "-t1", f"-c{IN_FLIGHT}", f"-d{seconds}s",
                       f"{url}/log?id=1"])
    requests = next(int(line.split()[0]) for line in out.splitlines() if "requests in" in line)
    return cpu / requests


def main():
    binaries = dict(arg.split("=", 1) for arg in sys.argv[1:]) or {"ringscrape": "target/release/ringscrape"}
    nginx = Nginx()
    doors = {"plain": "wrk", "tls": "wrk", "h2": "h2load", "h2c": "h2load", "epoll": "wrk"}
    if os.environ.get("DOORS"):
        doors = {door: doors[door] for door in os.environ["DOORS"].split(",")}
    samples = {(door, client): [] for door in doors for client in [*binaries, doors[door]]}
    try:
        for round_ in range(ROUNDS):
            for door, peer in doors.items():
                # Every other round runs the clients in reverse order: what ran just before a
                # client weighs on its CPU (one run had the second build behind on epoll in every
                # round, and level when the order alternated).
                clients = [*binaries.items(), (peer, None)]
                for name, binary in clients[::-1] if round_ % 2 else clients:
                    if binary:
                        samples[door, name].append(ringscrape(binary, nginx, door))
                    elif peer == "h2load":
                        samples[door, peer].append(h2load(nginx, door))
                    else:
                        # About as long as the last ringscrape run took.
                        samples[door, peer].append(wrk(nginx, door, max(1, round(cpu_of.wall))))
            figures = "  ".join(f"{door}/{client} {series[-1] * 1e6:.2f}" for (door, client), series in samples.items())
            print(f"round {round_ + 1} of {ROUNDS} (µs/req): {figures}", file=sys.stderr)
        if PERF:
            profile_each(binaries, nginx, doors)
        if os.environ.get("WAKEUPS"):
            count_wakeups(binaries, nginx, doors)
        if os.environ.get("INSTRUCTIONS"):
            count_instructions(binaries, nginx, doors)
    finally:
        nginx.stop()
    if ROUNDS == 0:
        return
    print(f"client CPU per request (user+sys of the tree, µs), {ROUNDS} interleaved rounds, {N} requests, "
          f"{IN_FLIGHT} in flight, client on core {CLIENT_CORE}, nginx on core {max(os.sched_getaffinity(0))}")
    print(f"{'door':6} {'client':12} {'µs/req':>8} {'vs peer':>8}  (median of per-round ratios; range)")
    for door, peer in doors.items():
        for client in [*binaries, peer]:
            ratios = [mine / theirs for mine, theirs in zip(samples[door, client], samples[door, peer])]
            median = statistics.median(samples[door, client])
            print(f"{door:6} {client:12} {median * 1e6:8.2f} {statistics.median(ratios):8.2f}"
                  f"  ({min(ratios):.2f}-{max(ratios):.2f})")


def count_wakeups(binaries, nginx, doors):
    """One more run of each ringscrape on each door under `perf stat`: calls per request."""
    counts = nginx.dir / "counts.txt"
    print(f"per request: {', '.join(e.split(':')[-1].replace('sys_enter_', '') for e in WAKEUP_EVENTS)}")
    for door in doors:
        for name, binary in binaries.items():
            ringscrape(binary, nginx, door, counts=counts)
            figures = {}
            for line in counts.read_text().splitlines():
                fields = line.split(",")
                if len(fields) > 2 and fields[0].strip().isdigit():
                    figures[fields[2]] = int(fields[0]) / N
            print(f"{door:6} {name:12} " + " ".join(f"{figures.get(e, float('nan')):7.3f}" for e in WAKEUP_EVENTS))


INSTRUCTION_REQUESTS = 20000


def instructions_of(cmd, env=None):
    """Runs cmd under callgrind, children too; the instructions of the whole tree, and its output."""
    out = Path(tempfile.mkdtemp(prefix="ringscrape-callgrind-"))
    try:
        _, text = cpu_of(["valgrind", "--tool=callgrind", "--trace-children=yes",
                          f"--callgrind-out-file={out}/callgrind.%p", *cmd], env=env)
        total = 0
        for path in out.glob("callgrind.*"):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("summary:"):
                    total += int(line.split()[1])
        return total, text
    finally:
        shutil.rmtree(out, ignore_errors=True)


def count_instructions(binaries, nginx, doors):
    """Every client on every door once under callgrind: user-space instructions per request."""
    n = INSTRUCTION_REQUESTS
    print(f"user-space instructions per request (callgrind, whole process tree, {n} requests; wrk 5 s, "
          f"20 s over TLS):")
    for door, peer in doors.items():
        figures = []
        for name, binary in binaries.items():
            cmd = [binary, "run", "-u", f"{nginx.url(door)}/log?id={{id}}", "-i", f"0..{n}", "-s", "1",
                   "-c", str(IN_FLIGHT), "-o", str(nginx.dir / "rows.csv"), "--overwrite", "--no-progress",
                   "-q", "-k", *(["--http2"] if door in ("h2", "h2c") else [])]
            env = {**os.environ, "RINGSCRAPE_DRIVER": "epoll"} if door == "epoll" else None
            total, _ = instructions_of(cmd, env=env)
            figures.append((name, total / n))
        if peer == "h2load":
            total, _ = instructions_of(["h2load", "-n", str(n), "-c", str(H2_CONNS), "-t", "1", "-m",
                                        str(IN_FLIGHT // H2_CONNS + 1), f"{nginx.url(door)}/log?id=1"])
            figures.append((peer, total / n))
        else:
            # Under callgrind 256 TLS handshakes take wrk seconds: long enough for answers after.
            seconds = 20 if door == "tls" else 5
            total, out = instructions_of(["wrk", "-t1", f"-c{IN_FLIGHT}", f"-d{seconds}s",
                                          f"{nginx.url(door)}/log?id=1"])
            requests = next(int(line.split()[0]) for line in out.splitlines() if "requests in" in line)
            figures.append((peer, total / requests if requests else float("nan")))
        print(f"{door:6} " + "  ".join(f"{name} {per:,.0f}" for name, per in figures))


def profile_each(binaries, nginx, doors):
    """One more run of each ringscrape on each door under `perf record`, into PERF."""
    out = Path(PERF)
    out.mkdir(parents=True, exist_ok=True)
    for door in doors:
        for name, binary in binaries.items():
            ringscrape(binary, nginx, door, profile=out / f"{name}-{door}.data")
    print(f"perf profiles in {out} (perf report -i {out}/NAME-DOOR.data --no-children)", file=sys.stderr)


if __name__ == "__main__":
    main()
