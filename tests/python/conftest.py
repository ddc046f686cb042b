"""Fixtures of the Python API's tests: `ringscrape serve` (the binary the wheel installed) and
nginx on loopback, and the processes of a run as /proc shows them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest
import ringscrape

# The benchmark's nginx (bench/nginx.conf.in): `/log?id=N` answers NGINX_BODY.
NGINX_CONF_IN = Path(__file__).resolve().parents[2] / "bench" / "nginx.conf.in"
NGINX_BODY = '{{"id":"{id}","source":"bench","ok":true,"value":42}}'


def _serve(*flags: str) -> Iterator[str]:
    """`ringscrape serve` on a free port with `flags`; yields its base URL."""
    proc = subprocess.Popen(
        [ringscrape.find_binary(), "serve", "--listen", "127.0.0.1:0", *flags],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "listening on http://127.0.0.1:PORT", or EOF if it failed
    assert line.startswith("listening on "), f"ringscrape serve said {line!r}"
    try:
        yield line.split()[-1]
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def serve() -> Iterator[str]:
    """The demo target, answering at once."""
    yield from _serve()


@pytest.fixture(scope="session")
def slow_serve() -> Iterator[str]:
    """The demo target answering each id after 20 to 60 ms: runs that last long enough to be
    watched, stopped and killed."""
    yield from _serve("--delay-ms", "20..60")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx on loopback (bench/nginx.conf.in, one worker) answering NGINX_BODY at /log?id=N;
    yields its base URL. Fails (does not skip) when nginx is missing: tests/setup.sh installs
    it."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.access(binary, os.X_OK), "nginx is not installed: run tests/setup.sh"
    directory = tmp_path_factory.mktemp("nginx")
    port = _free_port()
    conf = NGINX_CONF_IN.read_text().replace("@PORT@", str(port)).replace("@DIR@", str(directory))
    (directory / "nginx.conf").write_text(conf.replace("@WORKERS@", "1"))
    proc = subprocess.Popen([binary, "-c", str(directory / "nginx.conf"), "-p", str(directory)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "nginx did not start"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _ppid(pid: int) -> Optional[int]:
    """The parent of `pid`, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(parent: int) -> List[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == parent]


def run_processes() -> List[int]:
    """The `ringscrape run` supervisors this test process started, and their workers."""
    supervisors = []
    for pid in _children(os.getpid()):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) > 1 and argv[1] == b"run":
            supervisors.append(pid)
    return supervisors + [w for s in supervisors for w in _children(s)]


def wait_gone(pids: List[int], timeout_s: float) -> List[int]:
    """Waits until none of `pids` runs; returns those still running at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = [pid for pid in pids if _alive(pid)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def wait_until(predicate, timeout_s: float, what: str) -> None:
    """Waits for `predicate()` to hold; fails naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
