#!/usr/bin/env bash
# Offline checks of deploy/prometheus with the real promtool: the scrape config
# (and the rule file it loads) is valid, and the alerting/recording rules
# behave as tests/integration/metrics/rules_test.yml says.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
if ! command -v promtool >/dev/null 2>&1; then
  echo "SKIP: needs promtool (Debian package prometheus; scripts/install-deps.sh installs it)"
  exit 77
fi
out=$(promtool check config "$ROOT/deploy/prometheus/prometheus.yml" 2>&1) || { echo "$out"; exit 1; }
if grep -q WARNING <<<"$out"; then echo "$out"; echo "FAIL: promtool warned"; exit 1; fi
cd "$HERE"  # rule_files in rules_test.yml are relative to it
promtool test rules rules_test.yml
echo "PASS deploy/prometheus config and rules"
