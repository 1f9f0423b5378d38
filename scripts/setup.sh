#!/usr/bin/env bash
# Installs everything mod_bastion's build, demo and tests need on Debian 12, when missing.
# Idempotent and quiet when all is there. Run as root (CI and `make run`/`make test` call it).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  # build: apxs and headers, libclang for bindgen, a C compiler for aws-lc-sys
  apache2 apache2-dev libclang-dev clang make gcc
  # tests and demo: real clients and peers
  curl openssl nghttp2-client memcached ca-certificates pebble
  python3 python3-pip
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps Debian from starting the system apache2/memcached on install.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found: install Rust (rustup, stable >= 1.89)" >&2
  exit 1
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import pytest, cryptography, websockets' 2>/dev/null; then
  echo "setup: installing Python test packages"
  "$PY" -m pip install -q --disable-pip-version-check -r tests/requirements.txt \
    || "$PY" -m pip install -q --disable-pip-version-check --break-system-packages -r tests/requirements.txt
fi

id www-data >/dev/null 2>&1 || { echo "setup: user www-data is missing (it comes with Debian's base-passwd)" >&2; exit 1; }
exit 0
