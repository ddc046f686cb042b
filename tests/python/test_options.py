"""The keywords against the installed binary's `run --help`: every run flag is reachable, each
taking a value where the flag does."""

from __future__ import annotations

import datetime
import re
import subprocess

import pytest
import ringscrape
from ringscrape import _options

FLAG_LINE = re.compile(r"^\s+(?:-\w, )?--([a-z0-9-]+)(\[=<[^>]+>\]| <[^>]+>)?")


def _run_flags() -> dict:
    """Each long flag of `ringscrape run --help` and how it takes a value: '' (a switch),
    ' <X>' (a value) or '[=<X>]' (an optional value); and whether it is repeatable."""
    text = subprocess.run(
        [ringscrape.find_binary(), "run", "--help"], capture_output=True, text=True, check=True
    ).stdout
    flags = {}
    lines = text.splitlines()
    for n, line in enumerate(lines):
        found = FLAG_LINE.match(line)
        if found and found.group(1) != "help":
            description = lines[n + 1] if n + 1 < len(lines) else ""
            flags[found.group(1)] = (found.group(2) or "", "repeatable" in description)
    return flags


def test_every_run_flag_is_a_keyword_or_an_argument() -> None:
    flags = _run_flags()
    assert len(flags) > 50
    by_flag = {flag.name: keyword for keyword, flag in _options.FLAGS.items()}
    missing = [f for f in flags if f not in by_flag and f not in _options.API_FLAGS]
    assert missing == []
    unknown = [f for f in by_flag if f not in flags]
    assert unknown == []  # no keyword for a flag the binary does not have


def test_each_keyword_takes_a_value_as_its_flag_does() -> None:
    for name, (value, repeatable) in _run_flags().items():
        if name in _options.API_FLAGS:
            continue
        kind = next(f.kind for f in _options.FLAGS.values() if f.name == name)
        expected = {"": _options.SWITCH, "[": _options.OPTIONAL}.get(value[:1], _options.VALUE)
        if repeatable:
            expected = _options.REPEAT
        assert kind == expected, name


@pytest.mark.parametrize(
    "options, args",
    [
        ({"concurrency": 256, "shards": 2}, ["--concurrency=256", "--shards=2"]),
        ({"concurrency": "auto"}, ["--concurrency=auto"]),
        ({"save_body": True, "robots": False}, ["--save-body"]),
        ({"headers": {"Authorization": "Bearer x"}}, ["--header=Authorization: Bearer x"]),
        ({"headers": ["A: 1", "B: 2"]}, ["--header=A: 1", "--header=B: 2"]),
        ({"extract": {"name": "/name"}}, ["--extract=name=/name"]),
        ({"capture_headers": "etag"}, ["--capture-header=etag"]),
        ({"timeout": datetime.timedelta(milliseconds=1500)}, ["--timeout=1.5s"]),
        ({"retry_failed": True}, ["--retry-failed"]),
        ({"retry_failed": ["errors", "5xx"]}, ["--retry-failed=errors,5xx"]),
        ({"next": "link", "max_pages": 3}, ["--next=link", "--max-pages=3"]),
        ({"rate": 500, "user_agent": None}, ["--rate=500"]),
    ],
)
def test_keywords_become_flags(options: dict, args: list) -> None:
    assert _options.flag_args("fetch", options) == args
