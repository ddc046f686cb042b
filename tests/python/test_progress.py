"""Progress: the CLI's own bar when Python's stderr is a terminal (the child draws on a
pseudo-terminal of ours), a row count in a notebook with the CLI's summary after it, none with
progress=False."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

SCRIPT = """
import sys, types
if sys.argv[3] == "notebook":
    sys.modules["ipykernel"] = types.ModuleType("ipykernel")  # what in_notebook() looks for
import ringscrape
ringscrape.fetch(sys.argv[1], ids=range(int(sys.argv[2])), shards=1, concurrency=16,
                 progress=sys.argv[3] != "off")
"""


def _stderr_on_a_terminal(url: str, ids: int, mode: str) -> str:
    """What a fetch in a Python process whose stderr is a terminal writes there."""
    reader, writer = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, url, str(ids), mode], stderr=writer)
    os.close(writer)
    chunks = []
    while True:
        try:
            chunk = os.read(reader, 65536)
        except OSError:  # EIO: every writer closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(reader)
    assert proc.wait(60) == 0
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_on_a_terminal_the_clis_bar_is_drawn(slow_serve: str) -> None:
    said = _stderr_on_a_terminal(f"{slow_serve}/log?id={{id}}", 1000, "on")
    assert "/1,000 items" in said  # the CLI's progress line, drawn only on a terminal
    assert "Summary:" in said


def test_progress_false_draws_no_bar_and_keeps_the_summary(slow_serve: str) -> None:
    said = _stderr_on_a_terminal(f"{slow_serve}/log?id={{id}}", 1000, "off")
    assert "items " not in said.split("Summary:")[0]
    assert "Summary:" in said


def test_in_a_notebook_a_row_count_then_the_summary(slow_serve: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, f"{slow_serve}/log?id={{id}}", "1000", "notebook"],
        capture_output=True, timeout=60, check=True,
    )
    said = out.stderr.decode()  # not text=True: its universal newlines would turn CR into LF
    count, _, summary = said.partition("\nSummary:")
    drawings = count.split("\r")[1:]
    assert len(drawings) >= 2, said  # redrawn in place as batches came
    assert drawings[-1].startswith("ringscrape: 1,000 rows ("), drawings
    assert "1000 of 1000 done" in summary  # after the count's line ended, not inside it
