#!/usr/bin/env python3
"""ringscrape and its peers on a real path, not loopback: two network namespaces joined by a
link that holds each packet DELAY_MS each way and drops LOSS_PCT of them (bench/delay-link, a
userspace stand-in for `tc netem`, which this kernel lacks). nginx (TLS 1.3) runs in one
namespace, each client in the other, in turn, ROUNDS times; medians are printed.

    sudo python3 bench/realpath.py [NAME=BINARY ...]

Scenarios (more to come with issue 27):
  tls-new-conn   a new TLS 1.3 connection per request (nginx closes after each answer):
                 answers/s, client CPU per request, and sessions resumed — counted by nginx
                 (`$ssl_session_reused`), so every client is measured the same way.

Needs root, /dev/net/tun, `ip`, a C compiler and nginx; oha when installed (`cargo install oha`).
Says why and exits 0 when it cannot run. Environment: N (5000), ROUNDS (2), DELAY_MS (25),
LOSS_PCT (0), CONCURRENCY (256).
"""

import os
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
ROUNDS = int(os.environ.get("ROUNDS", "2"))
DELAY_MS = int(os.environ.get("DELAY_MS", "25"))
LOSS_PCT = float(os.environ.get("LOSS_PCT", "0"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "256"))
SERVER_NS, CLIENT_NS = f"rsbA{os.getpid()}", f"rsbB{os.getpid()}"
SERVER_ADDR, CLIENT_ADDR = "10.77.0.1", "10.77.0.2"
PORT = 8443

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    log_format reused '$ssl_session_reused';
    access_log {dir}/reused.log reused;
    keepalive_timeout 0;
    client_body_temp_path {dir}/cb; proxy_temp_path {dir}/p; fastcgi_temp_path {dir}/f;
    uwsgi_temp_path {dir}/u; scgi_temp_path {dir}/s;
    ssl_certificate {dir}/cert.pem;
    ssl_certificate_key {dir}/key.pem;
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:tls:10m;
    server {{
        listen {addr}:{port} ssl backlog=16384;
        location /log {{
            default_type application/json;
            return 200 '{{"id":"$arg_id","source":"bench","ok":true,"value":42}}';
        }}
    }}
}}
"""


def cannot(why):
    print(f"realpath: skipped: {why}")
    sys.exit(0)


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class Path2:
    """The two namespaces, the link between them, and nginx in the server's."""

    def __init__(self, work):
        self.work = work
        sh("ip", "netns", "add", SERVER_NS)
        sh("ip", "netns", "add", CLIENT_NS)
        for ns, dev, addr in [(SERVER_NS, "tunA", SERVER_ADDR), (CLIENT_NS, "tunB", CLIENT_ADDR)]:
            sh("ip", "-n", ns, "tuntap", "add", "dev", dev, "mode", "tun")
            sh("ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "txqueuelen", "20000", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        wire = work / "wire"
        sh(os.environ.get("CC", "cc"), "-O2", "-o", str(wire), str(HERE / "delay-link" / "wire.c"))
        self.wire = subprocess.Popen(
            [str(wire), f"/run/netns/{SERVER_NS}", "tunA", f"/run/netns/{CLIENT_NS}", "tunB",
             str(DELAY_MS), str(LOSS_PCT), "100000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self_signed_cert(work, SERVER_ADDR)
        (work / "nginx.conf").write_text(NGINX_CONF.format(dir=work, addr=SERVER_ADDR, port=PORT))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.nginx = subprocess.Popen(["ip", "netns", "exec", SERVER_NS, nginx,
                                       "-c", str(work / "nginx.conf"), "-p", str(work)])
        time.sleep(1)
        self.log = work / "reused.log"

    def run(self, cmd):
        """Runs `cmd` in the client's namespace; its wall seconds, CPU seconds and the share of
        sessions nginx saw resumed during it."""
        before_lines = self.lines()
        cpu, start = children_cpu(), time.perf_counter()
        done = subprocess.run(["ip", "netns", "exec", CLIENT_NS, *cmd], capture_output=True, text=True)
        wall, cpu = time.perf_counter() - start, children_cpu() - cpu
        if done.returncode != 0:
            sys.exit(f"{cmd[0]} exited {done.returncode}: {done.stderr.strip()[-400:]}")
        time.sleep(0.5)  # nginx logs a request as it finishes it
        seen = self.lines()[len(before_lines):]
        resumed = sum(1 for line in seen if line == "r") / max(len(seen), 1)
        return wall, cpu, resumed, len(seen)

    def lines(self):
        try:
            return self.log.read_text().splitlines()
        except FileNotFoundError:
            return []

    def stop(self):
        for proc in (self.nginx, self.wire):
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        subprocess.run(["ip", "netns", "del", SERVER_NS], capture_output=True)
        subprocess.run(["ip", "netns", "del", CLIENT_NS], capture_output=True)


def clients(binaries, work):
    url = f"https://{SERVER_ADDR}:{PORT}/log"
    out = work / "rows.csv"
    found = {
        name: [binary, "run", "-u", url + "?id={id}", "-i", f"0..{N}", "-s", "1",
               "-c", str(CONCURRENCY), "-k", "-o", str(out), "--overwrite", "-q"]
        for name, binary in binaries.items()
    }
    if shutil.which("oha"):
        found["oha"] = ["oha", "-n", str(N), "-c", str(CONCURRENCY), "--insecure",
                        "--disable-keepalive", "--no-tui", url + "?id=1"]
    return found


def main():
    # Several ringscrape builds can be compared in one run: `before=/tmp/old after=target/…`.
    binaries = dict(arg.split("=", 1) for arg in sys.argv[1:]) or {
        "ringscrape": str(HERE.parent / "target/release/ringscrape")
    }
    if os.geteuid() != 0:
        cannot("needs root (network namespaces)")
    if not Path("/dev/net/tun").exists():
        cannot("no /dev/net/tun")
    for tool in ("ip", "openssl", os.environ.get("CC", "cc")):
        if not shutil.which(tool):
            cannot(f"{tool} is not installed")
    work = Path(tempfile.mkdtemp(prefix="ringscrape-realpath-"))
    os.chmod(work, 0o755)
    path = Path2(work)
    samples = {}
    try:
        tools = clients(binaries, work)
        for _ in range(ROUNDS):
            for name, cmd in tools.items():
                samples.setdefault(name, []).append(path.run(cmd))
    finally:
        path.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"tls-new-conn: {N} requests, {CONCURRENCY} in flight, a new TLS 1.3 connection each, "
          f"{DELAY_MS} ms each way, {LOSS_PCT}% loss; medians of {ROUNDS}")
    print(f"{'client':12} {'req/s':>8} {'µs CPU/req':>11} {'resumed':>8} {'requests seen':>14}")
    for name, runs in samples.items():
        rate = statistics.median(n / wall for wall, _, _, n in runs)
        cpu = statistics.median(cpu / n * 1e6 for _, cpu, _, n in runs)
        resumed = statistics.median(r for _, _, r, _ in runs)
        seen = statistics.median(n for *_, n in runs)
        print(f"{name:12} {rate:8.0f} {cpu:11.1f} {resumed:8.1%} {seen:14.0f}")


if __name__ == "__main__":
    main()
