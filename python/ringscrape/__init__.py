"""ringscrape from Python: a URL template fetched over millions of ids, every row as Arrow.

    import ringscrape
    table = ringscrape.fetch("http://127.0.0.1:8080/log?id={id}", ids=range(100_000))
    for batch in ringscrape.stream(url, ids="0..1000000", concurrency=512): ...

Each call runs the `ringscrape` binary this wheel installed (worker processes pinned per core,
exact rows, `--resume`) and reads its rows as an Arrow IPC stream; see docs/python.md.
"""

from __future__ import annotations

from ._api import fetch, stream
from ._binary import BIN_ENV, find_binary
from ._errors import RunError


def _version() -> str:
    """The installed distribution's version (the Cargo version the wheel was built from)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ringscrape")
    except PackageNotFoundError:  # run from a source tree
        return "0+unknown"


__version__ = _version()
__all__ = ["fetch", "stream", "RunError", "find_binary", "BIN_ENV", "__version__"]
