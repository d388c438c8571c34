#!/usr/bin/env bash
# Offline checks of the deploy files (no docker daemon, no cluster):
#  - Dockerfile: every file it COPYs from the context exists and is not
#    excluded by .dockerignore; the CMake targets it builds and the binary paths
#    it copies are the real ones (compared with this build's binaries); the
#    runtime stage gets the example recipe the batch Job uses.
#  - deploy/k8s: rendered by the real `kubectl kustomize` (when kubectl is
#    installed; otherwise the kustomization's files concatenated), validated
#    against the Kubernetes schema (npm kubernetes-models) plus the wiring
#    checks of validate_k8s.mjs; every flag a container passes is one the real
#    binary accepts; the Prometheus config in the ConfigMap passes the real
#    `promtool check config`; broken copies of the manifests are refused.
#
#  - the coordinator answers the kubelet's gRPC probe (grpc.health.v1 Check,
#    made by health_probe) SERVING once it listens.
#
#   deploy_test.sh COORDINATOR WORKER SQUEEZE BUILD_DIR HEALTH_PROBE
set -euo pipefail
COORD_BIN=$1 WORKER_BIN=$2 SQUEEZE_BIN=$3 BUILD_DIR=$4 PROBE_BIN=$5
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
NODE_MODULES=$ROOT/tests/node/node_modules
T=$(mktemp -d "${TMPDIR:-/tmp}/squeeze-deploy.XXXXXX")
COORD_PID=""
trap '[ -n "$COORD_PID" ] && kill -9 "$COORD_PID" 2>/dev/null; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# ---- Dockerfile -------------------------------------------------------------
DF=$ROOT/Dockerfile
[ -f "$DF" ] && [ -f "$ROOT/.dockerignore" ] || fail "Dockerfile or .dockerignore missing"
grep -q '^FROM debian:bookworm AS build' "$DF" || fail "build stage is not debian:bookworm"
grep -q '^FROM debian:bookworm-slim AS runtime' "$DF" || fail "runtime stage is not debian:bookworm-slim"
grep -q 'scripts/install-deps.sh' "$DF" || fail "the build stage does not run scripts/install-deps.sh"
grep -q 'SQUEEZE_SKIP_NODE_PACKAGES' "$ROOT/scripts/install-deps.sh" \
  || fail "scripts/install-deps.sh ignores SQUEEZE_SKIP_NODE_PACKAGES (the Dockerfile sets it)"
# .dockerignore patterns (no negations used); a path is excluded when it or a parent matches.
mapfile -t IGNORES < <(grep -v '^\s*#' "$ROOT/.dockerignore" | sed '/^\s*$/d')
ignored() {
  local p=$1 pat part
  while [ -n "$p" ] && [ "$p" != . ]; do
    for pat in "${IGNORES[@]}"; do
      part=${pat#\*\*/}
      # shellcheck disable=SC2053
      [[ $p == $pat ]] && return 0
      [[ $pat == "**/"* && ( $p == $part || $p == */$part ) ]] && return 0
    done
    p=$(dirname "$p")
  done
  return 1
}
ignored build-x/foo || fail ".dockerignore check is broken (build-x/foo should be excluded)"
ignored server/objectstore/s3_client.cc && fail ".dockerignore check is broken (sources must not be excluded)"
n_copies=0
while read -r src; do
  [ "$src" = . ] && continue
  [ -e "$ROOT/$src" ] || fail "Dockerfile copies $src, which does not exist"
  ignored "${src%/}" && fail "Dockerfile copies $src, which .dockerignore excludes"
  n_copies=$((n_copies + 1))
done < <(grep -E '^COPY ' "$DF" | grep -v -- '--from=' | awk '{for (i = 2; i < NF; i++) print $i}')
[ "$n_copies" -ge 2 ] || fail "found only $n_copies COPY sources in the Dockerfile"
# CMake targets and the paths the binaries have in a build tree.
targets=$(sed -n 's/.*cmake --build \/build --target \(.*\)$/\1/p' "$DF")
[ "$targets" = 'squeeze-coordinator squeeze-worker squeeze $plugin' ] || fail "Dockerfile builds targets '$targets'"
# FLAVOR=cuda adds the GPU plugin: a real CMake target, copied from where CMake puts it.
plugin=$(sed -n 's/.*plugin=\([a-z_]*\);.*/\1/p' "$DF")
[ "$plugin" = squeeze_cuda_plugin ] || fail "Dockerfile's cuda plugin target is '$plugin'"
grep -q "add_library($plugin MODULE" "$ROOT/workers/kernels/cuda/CMakeLists.txt" || fail "no CMake target $plugin"
grep -q "cp /build/workers/kernels/cuda/lib$plugin.so /out/bin/" "$DF" || fail "Dockerfile does not copy lib$plugin.so beside the worker"
if [ -f "$BUILD_DIR/workers/kernels/cuda/lib$plugin.so" ]; then
  echo "ok: this build made workers/kernels/cuda/lib$plugin.so where the Dockerfile copies it from"
fi
for bin in "$COORD_BIN" "$WORKER_BIN" "$SQUEEZE_BIN"; do
  rel=${bin#"$BUILD_DIR"/}
  grep -q "/build/$rel" "$DF" || fail "Dockerfile does not copy /build/$rel (where CMake puts $(basename "$bin"))"
done
# The example recipe the batch Job names is in the directory the image gets.
recipe=$(sed -n 's|.*--recipe=/usr/share/squeeze/examples/\(.*\)$|\1|p' "$ROOT/deploy/k8s/job-example.yaml")
[ -n "$recipe" ] && [ -f "$ROOT/deploy/examples/$recipe" ] || fail "job-example.yaml names recipe '$recipe', not in deploy/examples"
grep -q '^COPY deploy/examples/ /usr/share/squeeze/examples/' "$DF" || fail "the image lacks /usr/share/squeeze/examples"
echo "ok: Dockerfile ($n_copies COPY sources, targets, binary paths)"

# ---- gRPC health (the probes of the coordinator StatefulSet) -----------------
"$COORD_BIN" --listen 127.0.0.1:0 --data-dir "$T/data" --port-file "$T/port" >"$T/coordinator.log" 2>&1 &
COORD_PID=$!
for _ in $(seq 1 100); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || fail "coordinator did not start: $(cat "$T/coordinator.log")"
out=$("$PROBE_BIN" "127.0.0.1:$(cat "$T/port")") || fail "health probe: $out"
[ "$out" = SERVING ] || fail "health probe says $out"
# A service name the server does not know is NOT_FOUND (the probe can fail).
out=$("$PROBE_BIN" "127.0.0.1:$(cat "$T/port")" no.such.Service) && fail "unknown service reported healthy: $out"
kill -TERM "$COORD_PID" && wait "$COORD_PID" || true
COORD_PID=""
echo "ok: the coordinator answers grpc.health.v1 Check SERVING"

# ---- Kubernetes manifests ---------------------------------------------------
command -v node >/dev/null || { echo "SKIP: node is not installed (the Dockerfile checks passed)"; exit 77; }
for pkg in kubernetes-models yaml; do
  [ -f "$NODE_MODULES/$pkg/package.json" ] \
    || { echo "SKIP: npm $pkg missing: run npm ci in tests/node (the Dockerfile checks passed)"; exit 77; }
done
K8S=$ROOT/deploy/k8s
render() {  # render DIR > FILE
  if command -v kubectl >/dev/null && kubectl kustomize "$1" 2>"$T/kustomize.err"; then return 0; fi
  [ -s "$T/kustomize.err" ] && { cat "$T/kustomize.err" >&2; return 1; }
  for f in $(sed -n 's/^  - \(.*\.yaml\)$/\1/p' "$1/kustomization.yaml"); do cat "$1/$f"; echo "---"; done
}
render "$K8S" >"$T/rendered.yaml" || fail "kubectl kustomize deploy/k8s failed"
command -v kubectl >/dev/null && echo "ok: kubectl kustomize rendered deploy/k8s" \
  || echo "note: kubectl not installed; validating the kustomization's files as they are"
node "$HERE/validate_k8s.mjs" "$NODE_MODULES" "$T/rendered.yaml" >"$T/flags" || fail "deploy/k8s: see PROBLEM lines above"
# Every flag passed to a program is one it accepts.
"$COORD_BIN" --helpfull >"$T/help.squeeze-coordinator" 2>&1 || true
"$WORKER_BIN" --helpfull >"$T/help.squeeze-worker" 2>&1 || true
"$SQUEEZE_BIN" submit --help >"$T/help.squeeze" 2>&1 || true
n_flags=0
while read -r _ prog flag; do
  name=${flag#--}
  if [ "$prog" = squeeze ]; then
    grep -q -- "--$name\b" "$T/help.squeeze" || fail "squeeze submit has no $flag (used in deploy/k8s)"
  else
    grep -q -- "-${name//-/_} " "$T/help.$prog" || fail "$prog has no $flag (used in deploy/k8s)"
  fi
  n_flags=$((n_flags + 1))
done <"$T/flags"
[ "$n_flags" -ge 10 ] || fail "only $n_flags flags seen in deploy/k8s"
echo "ok: deploy/k8s valid, $n_flags container flags accepted by the binaries"
# The exit codes the Job maps are the CLI's.
grep -q 'kExitJobFailed = 1, kExitUsage = 2' "$ROOT/client/cli/command.h" \
  || fail "client/cli/command.h exit codes changed: update job-example.yaml's podFailurePolicy"

if command -v promtool >/dev/null; then
  out=$(cd "$T" && promtool check config prometheus.yml 2>&1) || fail "promtool check config: $out"
  echo "ok: promtool check config (the ConfigMap's prometheus.yml)"
else
  echo "note: promtool not installed; the ConfigMap's prometheus.yml is unchecked"
fi

# ---- The checks refuse broken manifests -------------------------------------
mkdir -p "$T/broken"
expect_refused() {  # expect_refused WHAT SED-EXPRESSION FILE EXPECTED-TEXT
  local what=$1 expr=$2 file=$3 want=$4
  rm -rf "$T/broken" && cp -r "$K8S" "$T/broken"
  sed -i "$expr" "$T/broken/$file"
  cmp -s "$K8S/$file" "$T/broken/$file" && fail "mutation '$what' changed nothing"
  render "$T/broken" >"$T/broken.yaml" 2>/dev/null || return 0  # refused by kustomize: fine
  if node "$HERE/validate_k8s.mjs" "$NODE_MODULES" "$T/broken.yaml" >/dev/null 2>"$T/broken.err"; then
    fail "validate_k8s accepted a manifest with $what"
  fi
  grep -q -- "$want" "$T/broken.err" || fail "$what: expected '$want' in: $(cat "$T/broken.err")"
}
expect_refused "a string containerPort" 's/containerPort: 50051/containerPort: "grpc"/' coordinator.yaml "must be integer"
expect_refused "no GPU request" '/nvidia.com\/gpu: 1/d' worker-gpu.yaml "no worker requests nvidia.com/gpu"
expect_refused "an HTTP liveness probe on the coordinator" '/livenessProbe:/,/port: 50051/s/grpc:/tcpSocket:/' coordinator.yaml "livenessProbe is not a gRPC probe"
expect_refused "a short grace period" 's/terminationGracePeriodSeconds: 600/terminationGracePeriodSeconds: 30/' worker-cpu.yaml "too short"
expect_refused "exit code 3 failing the Job" 's/values: \[1, 2\]/values: [1, 2, 3]/' job-example.yaml "expected \[1,2\]"
echo "ok: broken manifests are refused"
echo "PASS deploy"
