#!/usr/bin/env python3
"""What watching a run costs: client CPU per request on nginx's `/log` (one shard, 256 in
flight, every row written) without a dashboard, with `--dashboard` and nobody looking, and with
the page open in headless Chromium the whole run (tests/servers/browser.py); medians of ROUNDS
and each ratio to the run without. Chromium's own CPU is not counted (it is waited for after the
run is measured). Also the size of the `--report` written.

    python3 bench/views.py [BINARY]

N (default 600000) and ROUNDS (3) come from the environment. Needs nginx, chromium and
websocket-client (PyPI).
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import children_cpu, free_port
from jobs import Nginx

N = int(os.environ.get("N", "600000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
BROWSER = Path(__file__).resolve().parent.parent / "tests" / "servers" / "browser.py"


def scrape(binary, nginx, out, mode):
    """One run in `mode` (none, dashboard, viewed): its CPU seconds per request."""
    port = free_port()
    cmd = [binary, "run", "-u", f"{nginx.base}/log?id={{id}}", "-i", f"0..{N}", "-s", "1",
           "-c", "256", "-o", str(out), "--overwrite", "--no-progress", "-q"]
    if mode != "none":
        cmd += ["--dashboard", str(port), "--report", str(out.with_suffix(".html"))]
    before = children_cpu()
    proc = subprocess.Popen(cmd)
    viewer = None
    if mode == "viewed":
        time.sleep(0.3)
        viewer = subprocess.Popen([sys.executable, str(BROWSER), f"http://127.0.0.1:{port}/",
                                   "--watch", "60"], stdout=subprocess.DEVNULL)
    if proc.wait() != 0:
        sys.exit(f"{mode}: ringscrape exited {proc.returncode}")
    spent = children_cpu() - before
    if viewer:
        viewer.kill()
        viewer.wait()
    return spent / N


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/ringscrape"
    nginx = Nginx()
    out = nginx.dir / "rows.csv"
    samples = {mode: [] for mode in ("none", "dashboard", "viewed")}
    try:
        for round_ in range(ROUNDS):
            for mode in samples:
                samples[mode].append(scrape(binary, nginx, out, mode))
            print(f"round {round_ + 1} of {ROUNDS} done", file=sys.stderr)
        report = out.with_suffix(".html").stat().st_size
    finally:
        nginx.stop()
    base = statistics.median(samples["none"])
    print(f"client CPU per request (user+sys, µs), median of {ROUNDS}, {N} requests on /log")
    for mode, values in samples.items():
        median = statistics.median(values)
        print(f"  {mode:10} {median * 1e6:7.2f} µs   {median / base:6.3f}×")
    print(f"report of the last run: {report / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
