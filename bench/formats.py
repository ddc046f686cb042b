#!/usr/bin/env python3
"""CPU per row of each row format: one run each of CSV, Parquet and the Arrow IPC stream (to a
file, and to /dev/null) over the same ids against one `ringscrape serve` on loopback, `-s 1 -c
256`. Prints, per format, the whole process tree's CPU per row (user+sys, from wait4) and the
supervisor's own (its writer, pipe readers and frame decoding: what the format changes), read
from /proc every 50 ms while it runs (the last 50 ms are missed), and the output's size. The
tree's CPU is this script's children's, the run reaped (the supervisor reaps its workers).

    python3 bench/formats.py [IDS]          (default 1,000,000; binary: target/release/ringscrape)
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(__file__).resolve().parent.parent / "target" / "release" / "ringscrape"
TICKS = os.sysconf("SC_CLK_TCK")


def own_cpu_s(pid: int) -> float:
    """User+sys seconds of process `pid` itself (its threads, not its children); 0 once gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_serve() -> tuple[subprocess.Popen, str]:
    """`ringscrape serve` on a free loopback port; the process and its base URL."""
    serve = subprocess.Popen([str(BIN), "serve", "--listen", "127.0.0.1:0", "--threads", "1"],
                             stdout=subprocess.PIPE, text=True)
    line = serve.stdout.readline() if serve.stdout else ""
    return serve, line.strip().removeprefix("listening on ")


def one_run(base: str, ids: int, out: list[str]) -> tuple[float, float]:
    """One run writing to `out` (its -o and --format): the supervisor's own CPU s, wall s."""
    args = [str(BIN), "run", "-u", f"{base}/log?id={{id}}", "--ids", f"0..{ids}",
            "-s", "1", "-c", "256", "-q", *out]
    started = time.monotonic()
    run = subprocess.Popen(args)
    own = 0.0
    while run.poll() is None:
        own = max(own, own_cpu_s(run.pid))
        time.sleep(0.05)
    if run.returncode != 0:
        raise SystemExit(f"formats: {' '.join(out)}: exit {run.returncode}")
    return own, time.monotonic() - started


def main() -> None:
    """Runs each format once and prints the table."""
    ids = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    serve, base = start_serve()
    work = Path(tempfile.mkdtemp(prefix="ringscrape-formats-"))
    runs = {
        "csv": ["-o", str(work / "out.csv")],
        "parquet": ["-o", str(work / "out.parquet")],
        "arrow": ["-o", str(work / "out.arrows")],
        "arrow /dev/null": ["-o", "/dev/null", "--format", "arrow", "--overwrite"],
    }
    print(f"{ids:,} ids, -s 1 -c 256, one run each, against ringscrape serve (1 thread)")
    print("| format | CPU µs/row (tree) | supervisor CPU µs/row | wall s | output bytes |")
    print("|---|---:|---:|---:|---:|")
    try:
        for name, out in runs.items():
            before = os.times()
            own, wall = one_run(base, ids, out)
            after = os.times()
            tree = (after.children_user - before.children_user
                    + after.children_system - before.children_system)
            path = Path(out[1])
            size = (sum(p.stat().st_size for p in path.iterdir()) if path.is_dir()
                    else path.stat().st_size if path.is_file() else 0)
            print(f"| {name} | {tree / ids * 1e6:.2f} | {own / ids * 1e6:.2f} | {wall:.1f} | "
                  f"{size:,} |", flush=True)
    finally:
        serve.terminate()
        serve.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
