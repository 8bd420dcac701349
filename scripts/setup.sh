#!/usr/bin/env bash
# Installs the Debian 12 packages Prism builds and tests with, only those missing.
# Called by `make run` and `make test`; safe to run again.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  dpkg-dev lintian
  clang libclang-rt-14-dev
  libuv1-dev libprotobuf-dev protobuf-compiler libcrypto++-dev libyaml-cpp-dev
  libhiredis-dev libpqxx-dev libsqlite3-dev libwebsockets-dev libwebsockets-evlib-uv libspdlog-dev
  libcli11-dev nlohmann-json3-dev libgtest-dev libgmock-dev libenet-dev
  redis-server postgresql-15
  openssl
  chromium media-types
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

install_packages() {
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # Do not let package installs start system services (redis, postgres): tests run their own.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [[ ! -e $policy && -z $sudo ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
  fi
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if ((created_policy)); then rm -f "$policy"; fi
}

((${#missing[@]} == 0)) || install_packages

# The stock phoenix JavaScript client for the WebSocket gateway's tests, pinned by
# tests/phoenix/package-lock.json and installed there (never globally). Node.js comes
# with the machine.
phoenix_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/phoenix"
if [[ ! -f $phoenix_dir/node_modules/phoenix/package.json ]]; then
  command -v npm >/dev/null || { echo "setup: npm (Node.js 20) is needed for tests/phoenix" >&2; exit 1; }
  echo "setup: npm ci in tests/phoenix"
  npm ci --prefix "$phoenix_dir" --no-audit --no-fund --loglevel=error
fi

# The same client for the rooms demo pages (examples/rooms-web, pinned by its own
# package-lock.json), which the headless Chromium test (rooms_web_test) loads.
rooms_web_dir="$(cd "$(dirname "$0")/.." && pwd)/examples/rooms-web"
if [[ ! -f $rooms_web_dir/node_modules/phoenix/package.json ]]; then
  command -v npm >/dev/null || { echo "setup: npm (Node.js 20) is needed for examples/rooms-web" >&2; exit 1; }
  echo "setup: npm ci in examples/rooms-web"
  npm ci --prefix "$rooms_web_dir" --no-audit --no-fund --loglevel=error
fi
