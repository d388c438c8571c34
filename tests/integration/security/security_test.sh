#!/usr/bin/env bash
# TLS on every coordinator listener, mTLS for workers, bearer tokens mapped to
# tenants, tenant isolation and per-tenant limits, on real processes:
#   - certificates: a server CA + server cert (SAN 127.0.0.1), a client CA +
#     worker cert, all made here with the openssl CLI;
#   - a worker with its client cert runs a real job for tenant A;
#   - tenant B cannot see, watch, cancel, report or download it (NOT_FOUND, exit 2);
#   - a worker without a client cert is refused, one with a cert from another
#     CA never registers; a plaintext client on the
#     TLS port is unreachable (exit 3); no / wrong token: exit 2; a token
#     without TLS is refused by the CLI and the worker (exit 2) unless
#     --insecure-send-token;
#   - gRPC-web and /metrics over HTTPS (curl --cacert), tenant-scoped;
#   - a rate-limited tenant gets RESOURCE_EXHAUSTED with "retry after" (exit 1),
#     an upload over the tenant's max_upload_bytes RESOURCE_EXHAUSTED (exit 1).
source "$(dirname "$0")/../service/lib.sh"
require_model
for tool in openssl curl base64 sha256sum; do
  command -v $tool >/dev/null || { echo "SKIP: needs $tool (scripts/install-deps.sh)"; exit 77; }
done

# ---------------------------------------------------------------- certificates
C=$T/certs
mkdir -p "$C"
ossl() { openssl "$@" >>"$T/openssl.txt" 2>&1 || fail "openssl $1 failed (see openssl.txt)"; }
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=squeeze test server CA" \
  -keyout "$C/ca.key" -out "$C/ca.pem"
ossl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$C/server.key" -out "$C/server.csr"
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$C/server.ext"
ossl x509 -req -in "$C/server.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -CAcreateserial -days 2 \
  -extfile "$C/server.ext" -out "$C/server.pem"
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=squeeze test worker CA" \
  -keyout "$C/client-ca.key" -out "$C/client-ca.pem"
ossl req -newkey rsa:2048 -nodes -subj "/CN=worker-1" -keyout "$C/worker.key" -out "$C/worker.csr"
printf 'extendedKeyUsage=clientAuth\n' >"$C/worker.ext"
ossl x509 -req -in "$C/worker.csr" -CA "$C/client-ca.pem" -CAkey "$C/client-ca.key" -CAcreateserial -days 2 \
  -extfile "$C/worker.ext" -out "$C/worker.pem"

# ---------------------------------------------------------------- tenants
TOK_A=$(openssl rand -hex 24)
TOK_B=$(openssl rand -hex 24)
TOK_C=$(openssl rand -hex 24)
digest() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
cat >"$T/auth.yaml" <<YAML
tenants:
  - name: team-a
    token_sha256: [$(digest "$TOK_A")]
  - name: team-b
    token_sha256: [$(digest "$TOK_B")]
    max_upload_bytes: 1000
  - name: team-c
    token_sha256: [$(digest "$TOK_C")]
    requests_per_second: 0.01
    burst: 2
YAML
grep -q "$TOK_A" "$T/auth.yaml" && fail "the auth config holds a plaintext token"

start_coordinator "$T/data" --tls-cert "$C/server.pem" --tls-key "$C/server.key" --tls-client-ca "$C/client-ca.pem" \
  --auth-config "$T/auth.yaml" --grpc-web-listen 127.0.0.1:0 --grpc-web-port-file "$T/web_port" \
  --metrics-listen 127.0.0.1:0 --metrics-port-file "$T/metrics_port"
wait_for 10 "gRPC-web port" test -s "$T/web_port"
wait_for 10 "metrics port" test -s "$T/metrics_port"
WEB_PORT=$(cat "$T/web_port")
METRICS_PORT=$(cat "$T/metrics_port")
export SQUEEZE_TLS_CA=$C/ca.pem

# A token without TLS is refused before anything is sent (a wrong --server or
# a plaintext proxy would receive it): bad usage (2), for the CLI and the worker.
set +e
SQUEEZE_TLS_CA= SQUEEZE_TOKEN=$TOK_A sq jobs --retry-seconds 0 >"$T/plaintoken.out" 2>"$T/plaintoken.err"
rc=$?
set -e
[ $rc -eq 2 ] || fail "token without TLS: exit $rc, want 2 ($(cat "$T/plaintoken.err"))"
grep -q "refusing to send the bearer token over a plaintext connection" "$T/plaintoken.err" ||
  fail "token without TLS: $(cat "$T/plaintoken.err")"
grep -q "$TOK_A" "$T/plaintoken.err" && fail "the refusal echoed the token"
set +e
SQUEEZE_TLS_CA= SQUEEZE_TOKEN=$TOK_A timeout 30 "$WORKER_BIN" --coordinator "127.0.0.1:$PORT" --work-dir "$T/plainworker" \
  --once --threads 1 >"$T/plainworker.log" 2>&1
rc=$?
set -e
[ $rc -eq 2 ] || fail "worker with a token without TLS: exit $rc, want 2 ($(tail -n 3 "$T/plainworker.log"))"
grep -q "insecure-send-token" "$T/plainworker.log" || fail "worker token refusal: $(tail -n 3 "$T/plainworker.log")"
# A plaintext client on the TLS port cannot talk to it: unreachable (3), also
# when it explicitly sends its token in the clear.
set +e
SQUEEZE_TLS_CA= SQUEEZE_TOKEN= sq jobs --retry-seconds 0 >"$T/plain.out" 2>"$T/plain.err"
rc=$?
SQUEEZE_TLS_CA= SQUEEZE_TOKEN=$TOK_A sq --insecure-send-token jobs --retry-seconds 0 >"$T/plain2.out" 2>"$T/plain2.err"
rc2=$?
SQUEEZE_TLS_CA= sq get some-job --token "$TOK_A" --insecure-send-token --retry-seconds 0 >"$T/plain3.out" 2>"$T/plain3.err"
rc3=$?
set -e
[ $rc -eq 3 ] || fail "plaintext client on the TLS port: exit $rc, want 3 ($(cat "$T/plain.err"))"
[ $rc2 -eq 3 ] || fail "plaintext client with --insecure-send-token on the TLS port: exit $rc2, want 3 ($(cat "$T/plain2.err"))"
[ $rc3 -eq 3 ] || fail "get --token --insecure-send-token on the TLS port: exit $rc3, want 3 ($(cat "$T/plain3.err"))"
# TLS without a token, or with a wrong one: UNAUTHENTICATED, exit 2.
set +e
SQUEEZE_TOKEN= sq jobs >"$T/notoken.out" 2>"$T/notoken.err"
rc=$?
set -e
[ $rc -eq 2 ] || fail "no token: exit $rc, want 2"
grep -q "missing bearer token" "$T/notoken.err" || fail "no token: $(cat "$T/notoken.err")"
set +e
sq --token wrong-token jobs >/dev/null 2>"$T/badtoken.err"
rc=$?
set -e
[ $rc -eq 2 ] || fail "wrong token: exit $rc, want 2"
grep -q "unknown bearer token" "$T/badtoken.err" || fail "wrong token: $(cat "$T/badtoken.err")"
log "token without TLS refused (2), plaintext refused (3), missing/wrong token refused (2)"

# A worker without a client certificate is refused by WorkerService.
set +e
SQUEEZE_TOKEN= timeout 30 "$WORKER_BIN" --coordinator "127.0.0.1:$PORT" --tls-ca "$C/ca.pem" --work-dir "$T/nocert" \
  --once --threads 1 >"$T/nocert.log" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] || fail "a worker without a client certificate was accepted"
grep -q "client certificate" "$T/nocert.log" || fail "worker without cert: $(tail -n 5 "$T/nocert.log")"
log "worker without a client certificate refused (exit $rc)"

# A worker whose certificate is not signed by the client CA fails the TLS
# handshake: it never registers (it keeps retrying an unreachable coordinator).
ossl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=rogue" -keyout "$C/rogue.key" -out "$C/rogue.pem"
set +e
SQUEEZE_TOKEN= timeout 6 "$WORKER_BIN" --coordinator "127.0.0.1:$PORT" --tls-ca "$C/ca.pem" --tls-cert "$C/rogue.pem" \
  --tls-key "$C/rogue.key" --work-dir "$T/rogue" --once --threads 1 >"$T/rogue.log" 2>&1
rc=$?
set -e
[ $rc -ne 0 ] || fail "a worker with a rogue certificate ran"
grep -q "registered as" "$T/rogue.log" && fail "a worker with a certificate from another CA registered"
log "worker with a certificate from another CA never registered (exit $rc)"

# Tenant A submits a real job; a worker with its client certificate runs it.
write_recipe "$T/recipe.yaml"
export SQUEEZE_TOKEN=$TOK_A
J=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --seed 3 --json | json_field job_id)
[ -n "$J" ] || fail "tenant A: submit printed no job id"
start_worker w1 --tls-ca "$C/ca.pem" --tls-cert "$C/worker.pem" --tls-key "$C/worker.key" \
  --metrics-listen 127.0.0.1:0 --metrics-port-file "$T/worker_metrics_port" \
  --metrics-tls-cert "$C/server.pem" --metrics-tls-key "$C/server.key"
sq watch "$J" >"$T/watch_a.out" 2>&1 || fail "tenant A: watch failed: $(tail -n 5 "$T/watch_a.out")"
[ "$(job_state "$J")" = SUCCEEDED ] || fail "tenant A's job is $(job_state "$J")"
sq download "$J" --out "$T/artifact_a" >/dev/null || fail "tenant A: download"
[ -s "$T/artifact_a/model.safetensors" ] || fail "tenant A: no model.safetensors downloaded"
sq jobs --json >"$T/jobs_a.json" || fail "tenant A: jobs"
grep -q "$J" "$T/jobs_a.json" || fail "tenant A does not list its job"
log "tenant A: job $J SUCCEEDED on the mTLS worker, listed, downloaded"

# Tenant B sees nothing of it: NOT_FOUND (exit 2) everywhere, empty list.
export SQUEEZE_TOKEN=$TOK_B
sq jobs --json >"$T/jobs_b.json" || fail "tenant B: jobs"
grep -q "$J" "$T/jobs_b.json" && fail "tenant B lists tenant A's job"
for cmd in "get $J" "watch $J" "cancel $J" "report $J" "download $J --out $T/artifact_b"; do
  set +e
  sq $cmd >"$T/b.out" 2>"$T/b.err"
  rc=$?
  set -e
  [ $rc -eq 2 ] || fail "tenant B: squeeze $cmd exit $rc, want 2 ($(cat "$T/b.err"))"
  grep -q "job $J not found" "$T/b.err" || fail "tenant B: squeeze $cmd said: $(cat "$T/b.err")"
done
[ ! -e "$T/artifact_b/model.safetensors" ] || fail "tenant B downloaded tenant A's artifact"
[ "$(SQUEEZE_TOKEN=$TOK_A job_state "$J")" = SUCCEEDED ] || fail "tenant B's cancel changed the job"
log "tenant B: get/watch/cancel/report/download of $J all NOT_FOUND (exit 2), list empty"

# Upload limit: tenant B may upload at most 1000 bytes.
set +e
sq upload "$MODEL_DIR" >"$T/upload_b.out" 2>"$T/upload_b.err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "tenant B: oversized upload exit $rc, want 1 ($(cat "$T/upload_b.err"))"
grep -q "max_upload_bytes 1000" "$T/upload_b.err" || fail "tenant B upload: $(cat "$T/upload_b.err")"
log "tenant B: upload over max_upload_bytes refused (RESOURCE_EXHAUSTED, exit 1)"

# Rate limit: tenant C has a burst of 2 and 0.01 requests/s.
export SQUEEZE_TOKEN=$TOK_C
sq jobs >/dev/null || fail "tenant C: first call"
sq jobs >/dev/null || fail "tenant C: second call"
set +e
sq jobs >/dev/null 2>"$T/rate.err"
rc=$?
set -e
[ $rc -eq 1 ] || fail "tenant C: rate-limited call exit $rc, want 1 ($(cat "$T/rate.err"))"
grep -q "request rate limit" "$T/rate.err" && grep -q "retry after" "$T/rate.err" \
  || fail "tenant C: $(cat "$T/rate.err")"
log "tenant C: third call in the burst refused (RESOURCE_EXHAUSTED with retry after, exit 1)"

# gRPC-web over HTTPS: ListJobs (an empty request = one empty data frame).
web_list() {  # TOKEN -> decoded response body on stdout
  curl -sS --fail --cacert "$C/ca.pem" -X POST "https://127.0.0.1:$WEB_PORT/squeeze.v1.CompressionService/ListJobs" \
    -H 'content-type: application/grpc-web-text' -H "authorization: Bearer $1" --data 'AAAAAAA=' | base64 -d
}
web_list "$TOK_A" >"$T/web_a.bin" || fail "gRPC-web over HTTPS (tenant A)"
grep -aq "grpc-status: *0" "$T/web_a.bin" || fail "gRPC-web tenant A: no grpc-status 0 trailer"
grep -aq "$J" "$T/web_a.bin" || fail "gRPC-web tenant A: job $J not in ListJobs"
web_list "$TOK_B" >"$T/web_b.bin" || fail "gRPC-web over HTTPS (tenant B)"
grep -aq "grpc-status: *0" "$T/web_b.bin" || fail "gRPC-web tenant B: no grpc-status 0 trailer"
grep -aq "$J" "$T/web_b.bin" && fail "gRPC-web tenant B sees tenant A's job"
curl -sS --cacert "$C/ca.pem" -X POST "https://127.0.0.1:$WEB_PORT/squeeze.v1.CompressionService/ListJobs" \
  -H 'content-type: application/grpc-web-text' --data 'AAAAAAA=' | base64 -d >"$T/web_none.bin" || true
grep -aq "grpc-status: *16" "$T/web_none.bin" || fail "gRPC-web without a token: want grpc-status 16"
# A server stream over HTTPS: WatchJob of the finished job (WatchJobRequest{job_id: J}).
watch_body=$(printf "\\x00\\x00\\x00\\x00\\x$(printf %02x $((${#J} + 2)))\\x0a\\x$(printf %02x ${#J})%s" "$J" | base64 -w0)
web_watch() {
  curl -sS --cacert "$C/ca.pem" -X POST "https://127.0.0.1:$WEB_PORT/squeeze.v1.CompressionService/WatchJob" \
    -H 'content-type: application/grpc-web-text' -H "authorization: Bearer $1" --data "$watch_body" | base64 -di
}
web_watch "$TOK_A" >"$T/watch_web_a.bin" || fail "gRPC-web WatchJob over HTTPS (tenant A)"
grep -aq "submitted" "$T/watch_web_a.bin" && grep -aq "grpc-status: *0" "$T/watch_web_a.bin" \
  || fail "gRPC-web WatchJob over HTTPS: no events / OK trailer for tenant A"
web_watch "$TOK_B" >"$T/watch_web_b.bin" || true
grep -aq "grpc-status: *5" "$T/watch_web_b.bin" || fail "gRPC-web WatchJob of A's job by tenant B: want NOT_FOUND (5)"
grep -aq "submitted" "$T/watch_web_b.bin" && fail "tenant B received A's events over gRPC-web"
if curl -sS -m 5 "http://127.0.0.1:$WEB_PORT/" >/dev/null 2>&1; then fail "plain HTTP answered on the HTTPS gRPC-web port"; fi
log "gRPC-web over HTTPS: tenant-scoped ListJobs and WatchJob stream, UNAUTHENTICATED without a token, no plain HTTP"

# /metrics over HTTPS, with the per-tenant auth counters.
curl -sS --fail --cacert "$C/ca.pem" "https://127.0.0.1:$METRICS_PORT/metrics" >"$T/metrics.txt" \
  || fail "metrics over HTTPS"
grep -q 'squeeze_auth_requests_total{tenant="team-c",result="rate_limited"} 1' "$T/metrics.txt" \
  || fail "metrics: no rate_limited count for team-c: $(grep squeeze_auth "$T/metrics.txt")"
if curl -sS -m 5 "http://127.0.0.1:$METRICS_PORT/metrics" >/dev/null 2>&1; then fail "plain HTTP metrics"; fi
log "metrics over HTTPS with per-tenant auth counters"
# The worker's /metrics over HTTPS too.
curl -sS --fail --cacert "$C/ca.pem" "https://127.0.0.1:$(cat "$T/worker_metrics_port")/metrics" \
  >"$T/worker_metrics.txt" || fail "worker metrics over HTTPS"
grep -q '^squeeze_worker' "$T/worker_metrics.txt" || fail "worker metrics: no squeeze_worker samples"
log "worker metrics over HTTPS"
log "PASS"
