#!/usr/bin/env bash
# Installs the npm packages of the dashboard (client/web: esbuild to bundle,
# protobufjs for messages, playwright-core for its end-to-end test). Idempotent:
# runs `npm ci` only when node_modules is missing or package-lock.json changed
# since the last install (a stamp holds the lock file's hash). Never fails the
# caller: without the packages the gRPC-web integration tests skip and say why.
set -uo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.squeeze-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -d node_modules ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "install-deps: client/web npm packages present"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "install-deps: WARNING: npm not found; the dashboard cannot be built and its tests will skip" >&2
  exit 0
fi
echo "install-deps: npm ci in client/web"
if npm ci --no-audit --no-fund --loglevel=error; then
  echo "$want" > "$stamp"
else
  echo "install-deps: WARNING: npm ci failed in client/web; the dashboard tests will skip" >&2
fi
exit 0
