#!/usr/bin/env bash
# Installs every system package Squeeze needs on Debian bookworm. Idempotent:
# packages already present are skipped, so `make test` / `make demo` may call it
# on every run. Needs root (or sudo) only when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  libgrpc++-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libre2-dev
  libabsl-dev libeigen3-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libsqlite3-dev sqlite3 libcurl4-openssl-dev libssl-dev libyaml-cpp-dev
  nodejs libicu-dev
  # /metrics: the HTTP server library; promtool + prometheus and curl for its integration test
  libmicrohttpd-dev prometheus curl
  # libFuzzer targets (tests/fuzz, SQUEEZE_FUZZ=ON): clang with its fuzzer/sanitizer runtimes
  clang-14 libclang-rt-14-dev
  # the dashboard's end-to-end test (tests/integration/grpcweb): headless Chromium driven by playwright-core
  chromium
  # make demo without a pretrained model: the text corpus its own small teacher trains on (scripts/demo-teacher.sh)
  fortunes
  # security integration test (tests/integration/security): certificates made with the openssl CLI
  openssl
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done
# npm may come from Debian's package or from a Node.js install; either will do.
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
else
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Image builds (Dockerfile) need no test-only npm packages.
if [ "${SQUEEZE_SKIP_NODE_PACKAGES:-0}" = 1 ]; then
  echo "install-deps: SQUEEZE_SKIP_NODE_PACKAGES=1: npm packages skipped"
  exit 0
fi
# npm packages of tests/node (JS reference tokenizers); idempotent.
bash "$(dirname "$0")/../tests/node/install.sh"
# npm packages of the dashboard (client/web: esbuild, protobufjs, playwright-core); idempotent.
bash "$(dirname "$0")/../client/web/install.sh"
