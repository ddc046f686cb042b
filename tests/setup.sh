#!/usr/bin/env bash
# Installs what the integration tests need when it is missing, so `make test` is the only set-up
# on a fresh machine: nginx (Debian) and aiohttp (PyPI) as servers nobody here wrote, openssl to
# make the test CA and certificates, prometheus_client (PyPI) to parse /metrics as Prometheus does. Needs root (or sudo) only when something is missing.
set -euo pipefail
need_apt=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx-light)
command -v openssl >/dev/null || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "tests/setup.sh: installing ${need_apt[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
for module in aiohttp prometheus_client; do
  if ! python3 -c "import $module" 2>/dev/null; then
    echo "tests/setup.sh: installing $module" >&2
    python3 -m pip install -q "$module"
  fi
done
