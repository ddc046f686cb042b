#!/usr/bin/env python3
"""ringscrape and its peers on a real path, not loopback: two network namespaces joined by a
link that holds each packet DELAY_MS each way and drops a share of them (bench/delay-link, a
userspace stand-in for `tc netem`, which this kernel lacks). nginx runs in one namespace, each
client in the other, in turn, ROUNDS times; medians are printed.

    sudo python3 bench/realpath.py [NAME=BINARY ...] [--only SCENARIO,...]

Scenarios (each client's answers are counted and timed by nginx's own log, so every client is
measured the same way):
  keepalive       HTTPS (TLS 1.3, HTTP/1.1) over CONCURRENCY kept-alive connections, N_KA requests
  keepalive-loss  the same with 1% loss each way
  ramp            plain HTTP, 8,192 connections opened at once, 1% loss, RAMP_N requests: time to
                  the last answer, and the longest time without any answer
  new-conn        a new TLS 1.3 connection per request (nginx closes after each answer), N
                  requests: sessions resumed (nginx's `$ssl_session_reused`)
  new-conn-loss   the same with 1% loss
  http2           HTTP/2 over TLS, CONCURRENCY streams, N_KA requests: CPU per request and the
                  answers in the first 250 ms after the client was started
  http2-loss      the same with 1% loss each way

Columns: req/s (answers / wall), µs CPU/req (user+sys of the client's process tree per answer),
resumed (TLS sessions resumed), first 250 ms (answers nginx logged by then), 99.9% by (seconds
until all but the last 0.1% of answers), last answer (seconds), silence (the longest stretch
with no answer, from the start to the last answer; "to 99.9%": until 99.9% were answered),
answers (as nginx logged), CPU vs h2load (the median of the rounds' ratios of CPU per request to
h2load's in the same round, on the http2 scenarios). Each client
starts with no TIME_WAIT socket left by the one before (`ss -K`).

Needs root, /dev/net/tun, `ip`, a C compiler and nginx; oha, wrk and h2load when installed.
Says why and exits 0 when it cannot run. Environment: N (5000), N_KA (20000), RAMP_N (16384),
ROUNDS (2), DELAY_MS (25), CONCURRENCY (256).
"""

import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import children_cpu, self_signed_cert

HERE = Path(__file__).resolve().parent
N = int(os.environ.get("N", "5000"))
N_KA = int(os.environ.get("N_KA", "20000"))
RAMP_N = int(os.environ.get("RAMP_N", "16384"))
RAMP_CONNECTIONS = 8192
ROUNDS = int(os.environ.get("ROUNDS", "2"))
DELAY_MS = int(os.environ.get("DELAY_MS", "25"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "256"))
SERVER_NS, CLIENT_NS = f"rsbA{os.getpid()}", f"rsbB{os.getpid()}"
SERVER_ADDR, CLIENT_ADDR = "10.77.0.1", "10.77.0.2"
# nginx's doors: TLS closing after each answer, TLS kept alive (HTTP/1.1 and HTTP/2), plain.
NEW_CONN, KEEPALIVE, PLAIN = 8443, 8444, 8080

NGINX_CONF = """
worker_processes 1;
worker_rlimit_nofile 19000;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 18000; }}
http {{
    log_format timed '$msec $ssl_session_reused';
    access_log {dir}/answers.log timed;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/cb; proxy_temp_path {dir}/p; fastcgi_temp_path {dir}/f;
    uwsgi_temp_path {dir}/u; scgi_temp_path {dir}/s;
    ssl_certificate {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:tls:10m;
    server {{
        listen {addr}:{new_conn} ssl backlog=16384;
        keepalive_timeout 0;
        location /log {{ default_type application/json; return 200 '{body}'; }}
    }}
    server {{
        listen {addr}:{keepalive} ssl http2 backlog=16384;
        location /log {{ default_type application/json; return 200 '{body}'; }}
    }}
    server {{
        listen {addr}:{plain} backlog=16384;
        location /log {{ default_type application/json; return 200 '{body}'; }}
    }}
}}
"""
BODY = '{{"id":"$arg_id","source":"bench","ok":true,"value":42}}'


def cannot(why):
    print(f"realpath: skipped: {why}")
    sys.exit(0)


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class Path2:
    """The two namespaces, the link between them, and nginx in the server's."""

    def __init__(self, work):
        self.work = work
        self.loss = None
        self.wire = None
        sh("ip", "netns", "add", SERVER_NS)
        sh("ip", "netns", "add", CLIENT_NS)
        for ns, dev, addr in [(SERVER_NS, "tunA", SERVER_ADDR), (CLIENT_NS, "tunB", CLIENT_ADDR)]:
            sh("ip", "-n", ns, "tuntap", "add", "dev", dev, "mode", "tun")
            sh("ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "txqueuelen", "20000", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        self.wire_binary = work / "wire"
        sh(os.environ.get("CC", "cc"), "-O2", "-o", str(self.wire_binary),
           str(HERE / "delay-link" / "wire.c"))
        self.set_loss(0)
        self_signed_cert(work, SERVER_ADDR)
        (work / "nginx.conf").write_text(NGINX_CONF.format(
            dir=work, addr=SERVER_ADDR, new_conn=NEW_CONN, keepalive=KEEPALIVE, plain=PLAIN,
            body=BODY))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.nginx = subprocess.Popen(["ip", "netns", "exec", SERVER_NS, nginx,
                                       "-c", str(work / "nginx.conf"), "-p", str(work)])
        time.sleep(1)
        self.log = work / "answers.log"

    def set_loss(self, pct):
        """(Re)starts the link with `pct`% loss each way; the tun devices outlive it."""
        if self.loss == pct:
            return
        self.stop_wire()
        self.wire = subprocess.Popen(
            [str(self.wire_binary), f"/run/netns/{SERVER_NS}", "tunA", f"/run/netns/{CLIENT_NS}",
             "tunB", str(DELAY_MS), str(pct), "100000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.loss = pct
        time.sleep(0.3)

    def stop_wire(self):
        if self.wire is not None:
            self.wire.send_signal(signal.SIGTERM)
            self.wire.wait()
            self.wire = None

    def run(self, cmd, new_conns):
        """Runs `cmd` in the client's namespace: what nginx logged of it, and its cost."""
        before = len(self.lines())
        cpu, start, wall_start = children_cpu(), time.perf_counter(), time.time()
        done = subprocess.run(["ip", "netns", "exec", CLIENT_NS, *cmd], capture_output=True,
                              text=True)
        wall, cpu = time.perf_counter() - start, children_cpu() - cpu
        if done.returncode != 0:
            # Said, and its answers still counted: a client that gives up is a result too.
            print(f"  {cmd[0]} exited {done.returncode}: {done.stderr.strip().splitlines()[0][:300]}")
        time.sleep(0.5)  # nginx logs a request as it finishes it
        # Each client starts from a clean slate: the last one's TIME_WAIT ports (8,192 after a
        # ramp) would otherwise stall the next one's connects for seconds.
        subprocess.run(["ip", "netns", "exec", CLIENT_NS, "ss", "-K", "-tan", "state", "time-wait"],
                       capture_output=True)
        seen = [line.split(" ", 1) for line in self.lines()[before:]]
        stamps = sorted(float(at) for at, _ in seen)
        return Run(wall, cpu, [reused for _, reused in seen], stamps, wall_start, new_conns)

    def lines(self):
        try:
            return self.log.read_text().splitlines()
        except FileNotFoundError:
            return []

    def stop(self):
        self.nginx.send_signal(signal.SIGTERM)
        self.nginx.wait()
        self.stop_wire()
        subprocess.run(["ip", "netns", "del", SERVER_NS], capture_output=True)
        subprocess.run(["ip", "netns", "del", CLIENT_NS], capture_output=True)


class Run:
    """One client's run as nginx saw it."""

    def __init__(self, wall, cpu, reused, stamps, started, new_conns):
        self.answers = len(stamps)
        self.rate = self.answers / wall
        self.cpu_us = cpu / max(self.answers, 1) * 1e6
        # Only where each request has its own connection does each line stand for a handshake.
        tls = [r for r in reused if r in ("r", ".")] if new_conns else []
        self.resumed = sum(1 for r in tls if r == "r") / len(tls) if tls else None
        self.first_250ms = sum(1 for s in stamps if s < started + 0.25)
        self.last = (stamps[-1] - started) if stamps else wall
        # All but the last 0.1%: the tail without the lottery of its worst few (a request that
        # lost two packets in a row waits out TCP's backed-off retransmit timers, 1-3 s).
        self.most = (stamps[int(len(stamps) * 0.999) - 1] - started) if stamps else wall
        gaps = [b - a for a, b in zip([started, *stamps], stamps)]
        self.silence = max(gaps, default=wall)
        bulk = int(len(stamps) * 0.999)
        self.bulk_silence = max(gaps[:bulk], default=wall)
        # Answers per 100 ms from the start, for TIMELINE=1.
        self.timeline = [0] * (int(self.last * 10) + 1)
        for s in stamps:
            self.timeline[max(0, int((s - started) * 10))] += 1


def ringscrape(binary, url, n, concurrency, *more):
    out = Path(tempfile.gettempdir()) / f"ringscrape-realpath-{os.getpid()}.csv"
    return [binary, "run", "-u", url + "?id={id}", "-i", f"0..{n}", "-s", "1",
            "-c", str(concurrency), "-k", "-o", str(out), "--overwrite", "-q", *more]


def scenarios(binaries):
    """name → (loss %, {client: command})"""
    https = f"https://{SERVER_ADDR}:{{}}/log"
    new_conn, keepalive = https.format(NEW_CONN), https.format(KEEPALIVE)
    plain = f"http://{SERVER_ADDR}:{PLAIN}/log"
    have = shutil.which
    c = str(CONCURRENCY)

    def keepalive_tools():
        tools = {name: ringscrape(b, keepalive, N_KA, CONCURRENCY) for name, b in binaries.items()}
        if have("oha"):
            tools["oha"] = ["oha", "-n", str(N_KA), "-c", c, "--insecure", "--no-tui",
                            keepalive + "?id=1"]
        if have("h2load"):
            tools["h2load --h1"] = ["h2load", "--h1", "-n", str(N_KA), "-c", c, keepalive + "?id=1"]
        if have("wrk"):
            # wrk runs for a time, not a count: about as long as the others take.
            seconds = max(2, round(N_KA / (CONCURRENCY / (2 * DELAY_MS / 1000))))
            tools["wrk"] = ["wrk", "-t1", "-c", c, "-d", f"{seconds}s", keepalive + "?id=1"]
        return tools

    def new_conn_tools():
        tools = {name: ringscrape(b, new_conn, N, CONCURRENCY) for name, b in binaries.items()}
        if have("oha"):
            tools["oha"] = ["oha", "-n", str(N), "-c", c, "--insecure", "--disable-keepalive",
                            "--no-tui", new_conn + "?id=1"]
        return tools

    ramp = {name: ringscrape(b, plain, RAMP_N, RAMP_CONNECTIONS) for name, b in binaries.items()}
    if have("oha"):
        ramp["oha"] = ["oha", "-n", str(RAMP_N), "-c", str(RAMP_CONNECTIONS), "--no-tui",
                       plain + "?id=1"]
    http2 = {name: ringscrape(b, keepalive, N_KA, CONCURRENCY, "--http2")
             for name, b in binaries.items()}
    if have("h2load"):
        # Two connections of 128 streams: nginx's http2_max_concurrent_streams.
        per = max(1, CONCURRENCY // 128)
        http2["h2load"] = [os.environ.get("H2LOAD", "h2load"), "-n", str(N_KA), "-c", str(per), "-m", str(CONCURRENCY // per),
                           keepalive + "?id=1"]
    if have("oha"):
        http2["oha"] = ["oha", "-n", str(N_KA), "-c", "2", "-p", str(CONCURRENCY // 2),
                        "--http2", "--insecure", "--no-tui", keepalive + "?id=1"]
    return {
        "keepalive": (0, keepalive_tools()),
        "keepalive-loss": (1, keepalive_tools()),
        "ramp": (1, ramp),
        "new-conn": (0, new_conn_tools()),
        "new-conn-loss": (1, new_conn_tools()),
        "http2": (0, http2),
        "http2-loss": (1, http2),
    }


def vs_h2load(runs, h2load_runs):
    """The median over rounds of this client's CPU per request over h2load's in that round."""
    if not h2load_runs:
        return "-"
    return f"{statistics.median(r.cpu_us / h.cpu_us for r, h in zip(runs, h2load_runs)):.2f}"


def show(name, loss, samples):
    print(f"\n{name}: {DELAY_MS} ms each way, {loss}% loss; medians of {ROUNDS}")
    print(f"{'client':14} {'req/s':>7} {'µs CPU/req':>11} {'resumed':>8} {'first 250 ms':>13} "
          f"{'99.9% by s':>10} {'last answer s':>14} {'silence ms':>11} {'to 99.9%':>9} "
          f"{'answers':>8} {'CPU vs h2load':>13}")
    for client, runs in samples.items():
        med = lambda f: statistics.median(f(r) for r in runs)  # noqa: E731
        resumed = [r.resumed for r in runs if r.resumed is not None]
        shown = f"{statistics.median(resumed):.1%}" if resumed else "-"
        print(f"{client:14} {med(lambda r: r.rate):7.0f} {med(lambda r: r.cpu_us):11.1f} "
              f"{shown:>8} {med(lambda r: r.first_250ms):13.0f} {med(lambda r: r.most):10.2f} "
              f"{med(lambda r: r.last):14.2f} "
              f"{med(lambda r: r.silence) * 1000:11.0f} {med(lambda r: r.bulk_silence) * 1000:9.0f} "
              f"{med(lambda r: r.answers):8.0f} {vs_h2load(runs, samples.get('h2load')):>13}")
        if os.environ.get("TIMELINE"):
            for r in runs:
                print(f"  answers per 100 ms: {' '.join(map(str, r.timeline))}")
    sys.stdout.flush()


def main():
    args = sys.argv[1:]
    only = None
    if "--only" in args:
        at = args.index("--only")
        only = set(args[at + 1].split(","))
        del args[at:at + 2]
    # Several ringscrape builds can be compared in one run: `before=/tmp/old after=target/…`.
    binaries = dict(arg.split("=", 1) for arg in args) or {
        "ringscrape": str(HERE.parent / "target/release/ringscrape")
    }
    if os.geteuid() != 0:
        cannot("needs root (network namespaces)")
    if not Path("/dev/net/tun").exists():
        cannot("no /dev/net/tun")
    for tool in ("ip", "openssl", os.environ.get("CC", "cc")):
        if not shutil.which(tool):
            cannot(f"{tool} is not installed")
    # 8,192 connections at once need as many descriptors in each client.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(tempfile.mkdtemp(prefix="ringscrape-realpath-"))
    os.chmod(work, 0o755)
    path = Path2(work)
    try:
        for name, (loss, tools) in scenarios(binaries).items():
            if only and name not in only:
                continue
            path.set_loss(loss)
            samples = {}
            for _ in range(ROUNDS):
                for client, cmd in tools.items():
                    samples.setdefault(client, []).append(path.run(cmd, name.startswith("new-conn")))
            show(name, loss, samples)
    finally:
        path.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
