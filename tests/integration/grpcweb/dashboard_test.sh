#!/usr/bin/env bash
# The dashboard (client/web) end to end: built with esbuild into a temp dir,
# served by a real coordinator (--dashboard-dir on the gRPC-web port), driven
# by headless Chromium (playwright-core, executablePath /usr/bin/chromium)
# while a real worker runs real jobs on stories260K. Screenshots are kept in
# OUT_DIR (default: ./grpcweb-dashboard-out under the ctest working dir).
# Skips (77) without the model, chromium or client/web's npm packages
# (scripts/install-deps.sh installs them).
source "$(dirname "$0")/lib.sh"
OUT_DIR=${OUT_DIR:-$PWD/grpcweb-dashboard-out}
require_model
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
[ -x "$CHROMIUM" ] || { echo "SKIP: $CHROMIUM missing (Debian package chromium; scripts/install-deps.sh)"; exit 77; }
for m in esbuild protobufjs playwright-core; do
  [ -d "$ROOT/client/web/node_modules/$m" ] || {
    echo "SKIP: client/web npm package $m missing (run scripts/install-deps.sh)"; exit 77; }
done
mkdir -p "$OUT_DIR"

node "$ROOT/client/web/build.mjs" "$T/dist" >/dev/null || fail "dashboard build"
start_grpcweb_coordinator --dashboard-dir "$T/dist"
curl -fsS "$WEB/" | grep -q '<script type="module" src="app.js">' || fail "GET / is not the dashboard"
DIGEST=$(sq upload "$MODEL_DIR") || fail "upload"
write_recipe "$T/recipe.yaml"

export CHROMIUM
start_node "$HERE/dashboard_e2e.mjs" "$WEB" "$DIGEST" "$T/recipe.yaml" "$T/go" "$OUT_DIR" \
  "$ROOT/proto/squeeze/v1/service.proto"
wait_node_marker "$T/go" 600 "submitting its jobs (browser test)"
start_worker w1
wait "$NODE_PID" || { cat "$T/node.log" >&2; fail "dashboard e2e"; }
cat "$T/node.log"
log "PASS dashboard"
