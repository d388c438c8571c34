#!/usr/bin/env bash
# gRPC-web on a real coordinator (--grpc-web-listen) with a real worker and the
# stories260K model: grpcweb_client.mjs (Node fetch + protobufjs, the
# dashboard's client) makes unary and streaming calls in binary and -text
# modes, checks error statuses, CORS and cancel. Skips (77) without the model
# or without client/web's npm packages (scripts/install-deps.sh installs them).
source "$(dirname "$0")/lib.sh"
require_model
command -v node >/dev/null || { echo "SKIP: node is not installed (scripts/install-deps.sh)"; exit 77; }
[ -d "$ROOT/client/web/node_modules/protobufjs" ] || {
  echo "SKIP: client/web npm packages missing (run scripts/install-deps.sh)"; exit 77; }

start_grpcweb_coordinator --grpc-web-allow-origin http://allowed.example \
  --grpc-web-allow-origin http://second.example,http://third.example
write_recipe "$T/recipe.yaml"
J=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --json | json_field job_id)
[ -n "$J" ] || fail "submit"

start_node "$HERE/grpcweb_client.mjs" "$WEB" "$ROOT/proto/squeeze/v1/service.proto" "$J" "$T/watching"
wait_node_marker "$T/watching" 300 "the first watched events"
start_worker w1
wait "$NODE_PID" || { cat "$T/node.log" >&2; fail "node gRPC-web client"; }
cat "$T/node.log"
[ "$(job_state "$J")" = SUCCEEDED ] || fail "job did not succeed"
# The artifact files read over gRPC-web equal the native gRPC download.
sq download "$J" --out "$T/art" >/dev/null || fail "download"
for f in report.json model.safetensors; do
  cmp "$T/watching.$f" "$T/art/$f" || fail "$f over gRPC-web differs from the native download"
done
log "PASS grpcweb"
