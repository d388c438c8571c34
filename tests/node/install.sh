#!/usr/bin/env bash
# Installs the npm packages of tests/node (the JS reference tokenizers used by
# tests/unit/tokenizer/js_crosscheck_test.cc). Idempotent: runs `npm ci` only
# when node_modules is missing or package-lock.json changed since the last
# install (a stamp holds the lock file's hash). Never fails the caller: without
# the packages the cross-check tests skip and say why.
set -uo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.squeeze-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -d node_modules ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "install-deps: tests/node npm packages present"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "install-deps: WARNING: npm not found; tokenizer JS cross-check tests will skip" >&2
  exit 0
fi
echo "install-deps: npm ci in tests/node"
if npm ci --no-audit --no-fund --loglevel=error; then
  echo "$want" > "$stamp"
else
  echo "install-deps: WARNING: npm ci failed in tests/node; tokenizer JS cross-check tests will skip" >&2
fi
exit 0
