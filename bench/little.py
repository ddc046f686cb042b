#!/usr/bin/env python3
"""Many in flight on loopback, steady state: 16,384 connections over 2 shards against `ringscrape
serve --delay-ms 0..900` (mean 0.45 s) in a network namespace of its own (ports 1024-65535), for
200,000 and for 1,200,000 ids. The extra million ids cost (wall difference) / 1e6 seconds each:
that rate over Little's law (16,384 / 0.45 s) is the steady state, free of ramp-up and drain.
Also prints each run's peak RSS of the process tree, listen-queue overflows and SYN retransmits (nstat).

    sudo python3 bench/little.py [NAME=BINARY ...]     (default: target/release/ringscrape)

Needs root (the namespace). ROUNDS (2) from the environment.
"""

import os
import statistics
import subprocess
import sys
from pathlib import Path

import bench

ROUNDS = int(os.environ.get("ROUNDS", "2"))
CONNECTIONS, MEAN_S = 16384, 0.45


def main():
    binaries = dict(arg.split("=", 1) for arg in sys.argv[1:]) or {"ringscrape": str(bench.BIN)}
    netns = bench.private_netns()
    if netns is None:
        print("little: skipped: needs root (a network namespace)")
        return
    prefix = ("ip", "netns", "exec", netns)
    bench.OUT.mkdir(exist_ok=True)
    walls = {}
    try:
        for _ in range(ROUNDS):
            for name, binary in binaries.items():
                bench.BIN = Path(binary)
                for n in (200_000, 1_200_000):
                    serve = bench.Serve(prefix)
                    try:
                        subprocess.run([*prefix, "nstat", "-n"], capture_output=True)
                        run = bench.run_ringscrape(serve.base, n, 2, (), per_worker=CONNECTIONS // 2,
                                                   prefix=prefix)
                        counts = bench.nstat_counters(prefix)
                    finally:
                        serve.stop()
                    walls.setdefault((name, n), []).append(run["wall"])
                    print(f"{name} {n} ids: {run['wall']:.2f} s, peak tree RSS {run['rss']:.1f} MB, listen overflows "
                          f"{counts.get('TcpExtListenOverflows', 0)}, SYN retransmits "
                          f"{counts.get('TcpExtTCPSynRetrans', 0)}", flush=True)
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)
    little = CONNECTIONS / MEAN_S
    for name in binaries:
        per_id = (statistics.median(walls[(name, 1_200_000)])
                  - statistics.median(walls[(name, 200_000)])) / 1e6
        print(f"{name}: steady state {1 / per_id:,.0f} req/s = {1 / per_id / little:.3f} of "
              f"Little's law ({little:,.0f} req/s)")


if __name__ == "__main__":
    main()
