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
