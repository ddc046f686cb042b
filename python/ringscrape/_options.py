"""The run flags in Python spelling: `concurrency=256` is `--concurrency=256`.

Every flag of `ringscrape run --help` has one keyword here or is an argument of `fetch` and
`stream` themselves (`API_FLAGS`); tests/python/test_options.py checks this table against the
installed binary's help, so a new flag without a keyword fails the tests.
"""

from __future__ import annotations

import datetime
import difflib
import os
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

SWITCH = "switch"  # True adds the flag, False or None leaves it out
VALUE = "value"  # one value
REPEAT = "repeat"  # a value, a list of them, or a mapping (joined by `sep`)
OPTIONAL = "optional"  # True alone, or a value after `=`


@dataclass(frozen=True)
class Flag:
    """One run flag: its long name, how its value is given, and for a mapping how a pair is
    joined (`-H 'Name: value'`, `--extract name=expr`)."""

    name: str
    kind: str
    sep: str = ""


def _flags() -> dict[str, Flag]:
    """The keyword of every run flag the API does not take itself."""
    switches = [
        "robots", "http2", "insecure", "save-body", "quiet", "verbose", "overwrite",
        "raw-body", "no-rate-limit-headers",
    ]  # fmt: skip
    values = [
        "urls", "method", "data", "auth-command", "auth-refresh", "auth-timeout", "user-agent",
        "follow-redirects", "ca-cert", "next", "next-param", "max-pages", "body-encoding",
        "bodies-dir", "node-index", "node-count", "shards", "concurrency", "format",
        "part-rows", "config", "timeout", "connect-timeout", "max-body", "body-memory", "proxy",
        "proxy-file", "local-addr", "dns-refresh", "retries", "retry-base", "retry-cap",
        "max-retry-after", "rate", "host-concurrency", "host-rate", "metrics", "dashboard",
        "report", "summary-json", "abort-after", "max-failed", "grace",
    ]  # fmt: skip
    table = {name.replace("-", "_"): Flag(name, SWITCH) for name in switches}
    table.update({name.replace("-", "_"): Flag(name, VALUE) for name in values})
    table.update(
        headers=Flag("header", REPEAT, ": "),
        extract=Flag("extract", REPEAT, "="),
        capture_headers=Flag("capture-header", REPEAT),
        resolve=Flag("resolve", REPEAT),
        connect_to=Flag("connect-to", REPEAT),
        retry_failed=Flag("retry-failed", OPTIONAL),
    )
    return table


#: keyword -> flag, for every run flag that is a keyword.
FLAGS: Mapping[str, Flag] = _flags()

#: Run flags that `fetch` and `stream` set from their own arguments, and which argument.
API_FLAGS: Mapping[str, str] = {
    "url": "url",
    "ids": "ids",
    "ids-file": "ids",
    "keys": "keys",
    "output": "output",
    "arrow-copy": "output",
    "resume": "resume",
    "no-progress": "progress",
}

#: The arguments of `fetch` and `stream` besides the run flags' keywords.
API_ARGUMENTS = ("url", "ids", "keys", "output", "resume", "progress")


def _text(keyword: str, value: Any) -> str:
    """One flag value as the CLI reads it: a number, a path, a duration, or text."""
    if isinstance(value, bool):
        raise TypeError(f"{keyword}={value!r}: expected a value, not a bool")
    if isinstance(value, datetime.timedelta):
        return f"{value.total_seconds()}s"
    if isinstance(value, (str, int, float)):
        return str(value)
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    raise TypeError(f"{keyword}={value!r}: expected text, a number, a path or a timedelta")


def _repeated(keyword: str, flag: Flag, value: Any) -> list[str]:
    """The arguments of a repeatable flag: one per item of a list, or per pair of a mapping."""
    if isinstance(value, Mapping):
        if not flag.sep:
            raise TypeError(f"{keyword}= takes a list, not a mapping")
        items = [f"{name}{flag.sep}{_text(keyword, v)}" for name, v in value.items()]
    elif isinstance(value, (str, os.PathLike)):
        items = [_text(keyword, value)]
    elif isinstance(value, Iterable):
        items = [_text(keyword, v) for v in value]
    else:
        raise TypeError(f"{keyword}={value!r}: expected a list (or a mapping of names to values)")
    return [f"--{flag.name}={item}" for item in items]


def check_switch(keyword: str, value: Any) -> None:
    """A switch takes True or False only: `"no"` is not taken for True."""
    if not isinstance(value, bool):
        raise TypeError(f"{keyword}={value!r}: expected True or False")


def _flag_args(keyword: str, flag: Flag, value: Any) -> list[str]:
    """The command-line arguments of one keyword."""
    if value is None or value is False:
        return []
    if flag.kind == SWITCH:
        check_switch(keyword, value)
        return [f"--{flag.name}"]
    if flag.kind == OPTIONAL and value is True:
        return [f"--{flag.name}"]
    if flag.kind == OPTIONAL and not isinstance(value, (str, os.PathLike)):
        return [f"--{flag.name}=" + ",".join(_text(keyword, v) for v in value)]
    if flag.kind == REPEAT:
        return _repeated(keyword, flag, value)
    return [f"--{flag.name}={_text(keyword, value)}"]


def unknown_keyword(function: str, keyword: str) -> TypeError:
    """The TypeError for a keyword that is no run flag, naming the nearest valid one."""
    valid = [*FLAGS, *API_ARGUMENTS]
    near = difflib.get_close_matches(keyword, valid, n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]!r}?" if near else " (see docs/python.md for the options)"
    return TypeError(f"{function}() got an unexpected keyword argument {keyword!r}{hint}")


def flag_args(function: str, options: Mapping[str, Any]) -> list[str]:
    """The command-line arguments of `options` (keyword -> value), in the order given.

    Raises:
        TypeError: a keyword that is no run flag (naming the nearest one), or a value of the
            wrong kind (a bool for a value, a mapping for a list).
    """
    args: list[str] = []
    for keyword, value in options.items():
        flag = FLAGS.get(keyword)
        if flag is None:
            raise unknown_keyword(function, keyword)
        args.extend(_flag_args(keyword, flag, value))
    return args
