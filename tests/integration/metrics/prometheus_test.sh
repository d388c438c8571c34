#!/usr/bin/env bash
# /metrics end to end: a coordinator and a worker started with --metrics-listen
# run one real compression job; both /metrics outputs must pass the real
# `promtool check metrics` (format and lint) and show the job; then a real
# Prometheus server scrapes both on loopback and its HTTP API
# (/api/v1/query) must return the scraped series.
source "$(dirname "$0")/../service/lib.sh"
require_model
for tool in promtool prometheus curl; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "SKIP: needs $tool (Debian packages prometheus and curl; scripts/install-deps.sh installs them)"
    exit 77
  fi
done

start_coordinator "$T/data" --metrics-listen 127.0.0.1:0 --metrics-port-file "$T/coord-metrics-port"
start_worker w1 --metrics-listen 127.0.0.1:0 --metrics-port-file "$T/worker-metrics-port"
wait_for 20 "the metrics port files" test -s "$T/coord-metrics-port" -a -s "$T/worker-metrics-port"
CM=$(cat "$T/coord-metrics-port")
WM=$(cat "$T/worker-metrics-port")

# value SERIES < metrics text: the sample value of an exact series line.
value() { awk -v s="$1" 'index($0, s " ") == 1 { print $NF; exit }'; }
scrape() { curl -sS --max-time 10 -D "$T/$2.headers" -o "$T/$2.txt" "http://127.0.0.1:$1/metrics"; }

# Before any job: the service is up and says so.
scrape "$CM" coord0 || fail "GET coordinator /metrics"
grep -qi '^content-type: text/plain; version=0.0.4; charset=utf-8' "$T/coord0.headers" \
  || fail "coordinator /metrics content type: $(cat "$T/coord0.headers")"
[ "$(value 'squeeze_coordinator_jobs{state="succeeded"}' <"$T/coord0.txt")" = 0 ] || fail "fresh coordinator has succeeded jobs"

write_recipe "$T/recipe.yaml"
J=$(sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --json | json_field job_id)
[ -n "$J" ] || fail "submit printed no job id"
sq watch "$J" >/dev/null || fail "job $J did not succeed"
# The worker counts the task once CompleteTask is acknowledged, just after the
# job turns SUCCEEDED: poll briefly.
wait_for 20 "the worker to count its task" \
  bash -c "curl -s http://127.0.0.1:$WM/metrics | grep -q '^squeeze_worker_tasks_total{outcome=\"succeeded\"} 1\$'"

scrape "$CM" coord || fail "GET coordinator /metrics"
scrape "$WM" worker || fail "GET worker /metrics"
for who in coord worker; do
  # promtool prints lint problems and exits non-zero on any; both must be clean.
  if ! promtool check metrics <"$T/$who.txt" >"$T/$who.promtool" 2>&1 || [ -s "$T/$who.promtool" ]; then
    fail "promtool check metrics ($who): $(cat "$T/$who.promtool")"
  fi
done
log "promtool check metrics: coordinator and worker outputs are clean"

c() { value "$1" <"$T/coord.txt"; }
w() { value "$1" <"$T/worker.txt"; }
[ "$(c 'squeeze_coordinator_jobs{state="succeeded"}')" = 1 ] || fail "jobs{succeeded} != 1"
[ "$(c 'squeeze_coordinator_jobs{state="queued"}')" = 0 ] || fail "jobs{queued} != 0"
[ "$(c 'squeeze_coordinator_queue_depth{capability="cpu"}')" = 0 ] || fail "queue depth not 0"
[ "$(c 'squeeze_coordinator_submit_latency_seconds_count{code="OK"}')" = 1 ] || fail "submit latency count != 1"
[ "$(c 'squeeze_coordinator_job_duration_seconds_count{state="succeeded"}')" = 1 ] || fail "job duration count"
[ "$(c 'squeeze_coordinator_workers{state="idle"}')" = 1 ] || fail "the worker is not idle after its job"
[ "$(c 'squeeze_objectstore_blobs')" -ge 6 ] || fail "object store blob count: $(c squeeze_objectstore_blobs)"
[ "$(c 'squeeze_objectstore_stored_bytes')" -gt 100000 ] || fail "stored bytes: $(c squeeze_objectstore_stored_bytes)"
for stage in fetch load sparsity_stage quant_stage save upload; do
  [ "$(w "squeeze_worker_stage_seconds_count{stage=\"$stage\"}")" = 1 ] || fail "worker stage $stage not timed once"
done
awk '/^squeeze_worker_stage_cpu_seconds_total\{stage="sparsity_stage"\}/ { exit !($2 > 0) }' "$T/worker.txt" \
  || fail "no CPU seconds for sparsity_stage"
[ "$(w 'squeeze_worker_stage_gpu_seconds_total{stage="load"}')" = 0 ] || fail "GPU seconds should be 0 (no GPU path)"
[ "$(w 'squeeze_worker_busy')" = 0 ] || fail "worker still busy"
grep -q '^process_cpu_seconds_total ' "$T/worker.txt" || fail "worker lacks process metrics"

# Errors of the HTTP server: unknown path, wrong method.
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$CM/nope")" = 404 ] || fail "GET /nope is not 404"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$WM/metrics")" = 405 ] || fail "POST is not 405"

# A real Prometheus server scrapes both every second.
cat >"$T/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: squeeze-coordinator
    static_configs:
      - targets: ["127.0.0.1:$CM"]
  - job_name: squeeze-worker
    static_configs:
      - targets: ["127.0.0.1:$WM"]
YAML
promtool check config "$T/prometheus.yml" >"$T/promtool-config.log" 2>&1 || fail "promtool check config: $(cat "$T/promtool-config.log")"
# Prometheus cannot report a port it picked: try free-looking ports until one binds.
PP=""
for _ in 1 2 3 4 5; do
  p=$((20000 + RANDOM % 40000))
  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && continue  # in use
  prometheus --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
    --web.listen-address="127.0.0.1:$p" >>"$T/prometheus.log" 2>&1 &
  PROM_PID=$!
  PIDS+=("$PROM_PID")
  for _ in $(seq 1 300); do  # up to 30 s: TSDB start-up on a loaded 2-core machine
    curl -sf "http://127.0.0.1:$p/-/ready" >/dev/null 2>&1 && { PP=$p; break; }
    kill -0 "$PROM_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ -n "$PP" ] && break
  kill "$PROM_PID" 2>/dev/null || true
done
[ -n "$PP" ] || fail "prometheus did not start: $(tail -n 5 "$T/prometheus.log")"
log "prometheus ready on 127.0.0.1:$PP"

# query EXPR: the first result's value, via the HTTP API.
query() {
  curl -sfG --max-time 5 "http://127.0.0.1:$PP/api/v1/query" --data-urlencode "query=$1" \
    | sed -n 's/.*"value":\[[^,]*,"\([^"]*\)"\].*/\1/p'
}
query_is() { [ "$(query "$1")" = "$2" ]; }
wait_for 30 "prometheus to scrape the coordinator" query_is 'up{job="squeeze-coordinator"}' 1
wait_for 30 "prometheus to scrape the worker" query_is 'up{job="squeeze-worker"}' 1
wait_for 30 "the finished job in prometheus" query_is 'squeeze_coordinator_jobs{state="succeeded"}' 1
query_is 'squeeze_worker_tasks_total{outcome="succeeded"}' 1 || fail "worker task count not in prometheus"
query_is 'squeeze_worker_stage_seconds_count{stage="load"}' 1 || fail "stage histogram not in prometheus"
# A histogram query Prometheus computes itself: the median stage latency is a number.
q=$(query 'histogram_quantile(0.5, sum by (le) (squeeze_worker_stage_seconds_bucket))')
[[ "$q" =~ ^[0-9.e+-]+$ ]] || fail "histogram_quantile over the stage buckets gave '$q'"
# Every series of the worker's last scrape was ingested (a malformed line fails the whole scrape).
n=$(query 'scrape_samples_scraped{job="squeeze-worker"}')
[ "${n:-0}" -gt 20 ] || fail "prometheus ingested only '${n}' samples from the worker"
log "PASS metrics (coordinator :$CM, worker :$WM, prometheus :$PP, median stage ${q}s)"
