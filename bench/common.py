"""Helpers the benchmark scripts share: a free loopback port, the CPU time of waited-for
children, and a self-signed certificate for a TLS target."""

import os
import resource
import shutil
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children_cpu():
    """user+sys seconds of every waited-for descendant so far (workers roll up to their parent)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def self_signed_cert(directory, address):
    """An EC P-256 certificate for IP `address`, as `directory`/cert.pem and key.pem."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "2", "-subj", f"/CN={address}", "-addext", f"subjectAltName=IP:{address}",
         "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
        check=True, capture_output=True)


def start_nginx(directory, port):
    """nginx on `directory`/nginx.conf, once it accepts on `port`, pinned to the last core
    (a single-shard ringscrape pins itself to the first)."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-c", str(directory / "nginx.conf"), "-p", str(directory)])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    last_core = max(os.sched_getaffinity(0))
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
    for pid in [proc.pid, *map(int, children.stdout.split())]:
        os.sched_setaffinity(pid, {last_core})
    return proc


# The rows the peers of bench/hosts.py write, one CSV part per process.
HOST_ROW_FIELDS = ["host", "item", "status", "bytes", "latency_ms", "error"]


def host_job_args(description):
    """The flags bench/hosts.py gives its peers (scrapy_hosts.py, aiohttp_hosts.py)."""
    import argparse
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--hosts", required=True, help="a file of host names, one a line")
    p.add_argument("--items", type=int, default=10, help="items per host")
    p.add_argument("--url", required=True, help="template with {host} and {item}")
    p.add_argument("--procs", type=int, default=2, help="processes; each takes every PROCS-th host")
    p.add_argument("--concurrency", type=int, default=256, help="total, split across procs")
    p.add_argument("--per-host", type=int, default=2, help="in flight per host")
    p.add_argument("--rate", type=float, default=5, help="starts per second per host")
    p.add_argument("--out", required=True)
    return p


def join_parts(out_path, header, part_paths):
    """The CSV parts the processes wrote, under one header line, as `out_path`."""
    with open(out_path, "w") as out:
        out.write(",".join(header) + "\n")
        for path in part_paths:
            with open(path) as f:
                out.write(f.read())
