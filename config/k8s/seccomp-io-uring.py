#!/usr/bin/env python3
"""Writes seccomp-io-uring.json: Docker's default seccomp profile plus the three io_uring calls.

Docker's default profile (moby/moby#46762) and containerd's RuntimeDefault (containerd/containerd#9320)
refuse io_uring_setup, io_uring_enter and io_uring_register, so in most containers ringscrape runs on
its epoll fallback. This profile is moby's default.json unchanged, with one rule appended, last:

    {"names": ["io_uring_setup", "io_uring_enter", "io_uring_register"], "action": "SCMP_ACT_ALLOW"}

Source of the committed profile: seccomp/default.json of https://github.com/moby/profiles (Apache
License 2.0) at commit cd3bed8061c7b7378b61fc6827c7885779417a75 (2026-06-30). To follow a newer
moby profile, run it again on that file:

    python3 config/k8s/seccomp-io-uring.py path/to/moby/profiles/seccomp/default.json \
        config/k8s/seccomp-io-uring.json

Standard library only. Exits 1, saying why, when the input is not a seccomp profile or already
names an io_uring call (then look at what moby decided before adding anything).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

IO_URING_CALLS = ["io_uring_setup", "io_uring_enter", "io_uring_register"]
ALLOW_IO_URING: dict[str, Any] = {"names": IO_URING_CALLS, "action": "SCMP_ACT_ALLOW"}


class ProfileError(Exception):
    """The input cannot be turned into the profile."""


def with_io_uring(profile: dict[str, Any]) -> dict[str, Any]:
    """Returns `profile` with the io_uring rule appended to its syscalls."""
    rules = profile.get("syscalls")
    if not isinstance(rules, list) or "defaultAction" not in profile:
        raise ProfileError("not a seccomp profile (no defaultAction and syscalls list)")
    named = sorted({n for rule in rules for n in rule.get("names", []) if n in IO_URING_CALLS})
    if named:
        raise ProfileError(f"it already names {', '.join(named)}: see what it does with them")
    return {**profile, "syscalls": [*rules, ALLOW_IO_URING]}


def profile_text(profile: dict[str, Any]) -> str:
    """The profile as moby writes default.json: tab-indented, keys in their order."""
    return json.dumps(profile, indent="\t") + "\n"


def main() -> int:
    """Reads moby's default.json, writes the profile; 1 with a message when it cannot."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("moby_default", type=Path, help="moby/profiles' seccomp/default.json")
    parser.add_argument("output", type=Path, nargs="?", help="where to write (default: stdout)")
    args = parser.parse_args()
    try:
        profile = json.loads(args.moby_default.read_text(encoding="utf-8"))
        text = profile_text(with_io_uring(profile))
    except (OSError, ValueError, ProfileError) as e:
        print(f"seccomp-io-uring.py: {args.moby_default}: {e}", file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
