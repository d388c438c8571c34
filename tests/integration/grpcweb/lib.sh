# Shared prologue of the gRPC-web tests: service/lib.sh plus the repository
# paths, a coordinator with a gRPC-web port, and a node client started in the
# background that the test waits on.
#
# Usage (from a test script):  source "$(dirname "$0")/lib.sh" COORDINATOR WORKER SQUEEZE
source "$(dirname "${BASH_SOURCE[0]}")/../service/lib.sh"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)

# start_grpcweb_coordinator [flags...]: a coordinator on $T/data with a
# gRPC-web port picked by the kernel; sets WEB (http://127.0.0.1:PORT).
start_grpcweb_coordinator() {
  start_coordinator "$T/data" --grpc-web-listen 127.0.0.1:0 --grpc-web-port-file "$T/webport" "$@"
  wait_for 10 "gRPC-web port file" test -s "$T/webport"
  WEB=http://127.0.0.1:$(cat "$T/webport")
}

# start_node SCRIPT ARGS...: runs node in the background, output to
# $T/node.log; sets NODE_PID (cleaned up with the other processes).
start_node() {
  node "$@" >"$T/node.log" 2>&1 &
  NODE_PID=$!
  PIDS+=("$NODE_PID")
}

# wait_node_marker FILE TENTHS WHAT: waits up to TENTHS x 0.1 s for node to
# write FILE (WHAT names that point for errors); fails with node's log if node
# exits first or FILE never comes.
wait_node_marker() {
  local file=$1 tenths=$2 what=$3
  for _ in $(seq 1 "$tenths"); do
    [ -s "$file" ] && return 0
    kill -0 "$NODE_PID" 2>/dev/null || { cat "$T/node.log" >&2; fail "node exited before $what"; }
    sleep 0.1
  done
  cat "$T/node.log" >&2
  fail "node never reached $what"
}
