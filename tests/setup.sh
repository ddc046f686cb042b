#!/usr/bin/env bash
# Installs what the integration tests need when it is missing, so `make test` is the only set-up
# on a fresh machine: nginx, tinyproxy and microsocks (Debian) and aiohttp (PyPI) as servers
# nobody here wrote, openssl to
# make the test CA and certificates, prometheus_client (PyPI) to parse /metrics as Prometheus does, the Kubernetes client (PyPI, pinned)
# to check the Indexed Job manifest against the API types, brotli and zstandard (PyPI) to encode
# answers as real servers do, pyarrow and duckdb (PyPI) to read the Parquet output (and polars the
# Arrow stream), h2 (PyPI)
# for an h2c server that speaks first, chromium (Debian) and websocket-client (PyPI) to drive
# it over the DevTools protocol. Needs root (or sudo) only when something is missing.
set -euo pipefail
need_apt=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v openssl >/dev/null || need_apt+=(openssl)
# Proxies nobody here wrote: HTTP (forward and CONNECT) and SOCKS5.
command -v tinyproxy >/dev/null || need_apt+=(tinyproxy)
command -v microsocks >/dev/null || need_apt+=(microsocks)
# A resolver nobody here wrote, for the DNS tests (run in network namespaces: iproute2).
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || need_apt+=(iproute2)
# A browser nobody here wrote, headless, to see the live page and the report as a person does.
command -v chromium >/dev/null || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "tests/setup.sh: installing ${need_apt[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# module to import, then what pip installs for it
pip_need() {
  if ! python3 -c "$1" 2>/dev/null; then
    echo "tests/setup.sh: installing $2" >&2
    python3 -m pip install -q "$2"
  fi
}
pip_need "import aiohttp" aiohttp
pip_need "import prometheus_client" prometheus_client
pip_need "import brotli" brotli
pip_need "import zstandard" zstandard
pip_need "import pyarrow" pyarrow
pip_need "import duckdb" duckdb
# A second reader of the Arrow IPC stream output (--format arrow), nobody here wrote.
pip_need "import polars" polars
pip_need "import h2" h2
# DNS packets for tests/servers/dns_lossy.py (a wildcard zone that loses queries, tests/dns_scale.rs).
pip_need "import dnslib" dnslib
pip_need "import websocket" websocket-client
# The wheel (make wheel) is built by maturin; tests/python/run.sh installs it with pytest, pandas
# and polars in a virtual environment of its own.
pip_need "import maturin" maturin
pip_need "import kubernetes, sys; sys.exit(kubernetes.__version__ != '37.0.2')" kubernetes==37.0.2
