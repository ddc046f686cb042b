"""Where the `ringscrape` binary is: the one the wheel installed beside this interpreter's
scripts, unless `RINGSCRAPE_BIN` names another (a development build, `target/release/ringscrape`).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path

#: The environment variable that names the binary to run instead of the installed one.
BIN_ENV = "RINGSCRAPE_BIN"

_NAME = "ringscrape"


def _script_dirs() -> list[Path]:
    """The directories pip puts a wheel's scripts in, for this interpreter: the environment's
    (a venv, or the system) and the user scheme's (`pip install --user`)."""
    dirs = [Path(sysconfig.get_path("scripts"))]
    user_scheme = f"{os.name}_user"
    if user_scheme in sysconfig.get_scheme_names():
        dirs.append(Path(sysconfig.get_path("scripts", scheme=user_scheme)))
    # A venv's interpreter may be a symlink whose sysconfig names the base installation.
    dirs.append(Path(sys.executable).parent)
    return dirs


def find_binary() -> str:
    """The path of the `ringscrape` binary to run.

    `RINGSCRAPE_BIN` wins when set (it must name an executable file); else the binary installed
    with this package, beside the interpreter's scripts; else one on `PATH`.

    Raises:
        FileNotFoundError: no binary was found, or `RINGSCRAPE_BIN` names no executable.
    """
    override = os.environ.get(BIN_ENV)
    if override:
        if os.path.isfile(override) and os.access(override, os.X_OK):
            return override
        raise FileNotFoundError(f"{BIN_ENV}={override} is not an executable file")
    for directory in _script_dirs():
        candidate = directory / _NAME
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    on_path = shutil.which(_NAME)
    if on_path:
        return on_path
    raise FileNotFoundError(
        f"no {_NAME} binary beside {sys.executable} nor on PATH: install the ringscrape wheel, "
        f"or set {BIN_ENV} to a built binary (target/release/{_NAME})"
    )
