#!/usr/bin/env bash
# Installs what the benchmark needs when missing, then runs bench/bench.py, bench/hosts.py,
# bench/protocols.py and bench/realpath.py (see their docstrings).
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
for tool in wrk hey ffuf tinyproxy microsocks; do command -v "$tool" >/dev/null || need_apt+=("$tool"); done
command -v h2load >/dev/null || need_apt+=(nghttp2-client)
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v oha >/dev/null || cargo install --locked oha
python3 -c 'import aiohttp' 2>/dev/null || python3 -m pip install -q aiohttp
python3 -c 'import scrapy' 2>/dev/null || python3 -m pip install -q scrapy
python3 bench/bench.py
# Many hosts, each capped, against scrapy and aiohttp (a namespace with dnsmasq as root, else
# loopback addresses).
if [ "$(id -u)" -eq 0 ]; then python3 bench/hosts.py; else python3 bench/hosts.py --loopback; fi
# Client CPU per request by door (plain, TLS, h2, h2c, plain on the epoll driver) against wrk and
# h2load: pinned, 5 interleaved rounds, medians of per-round ratios; then each client's
# instructions per request under callgrind (counts that machine noise does not move).
INSTRUCTIONS=1 python3 bench/protocols.py
# The same clients on a path with a real round trip (needs root and tun; says so otherwise).
exec python3 bench/realpath.py
