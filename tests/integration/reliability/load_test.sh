#!/usr/bin/env bash
# Bounded load on loopback (make stress; not in ctest): the coordinator's RSS
# is sampled every 0.5 s through ROUNDS rounds of
#   (a) tests/bench/service/service_bench: SUBMITS SubmitJob calls from 8
#       client threads (p50/p99 latency, errors) and WATCHERS concurrent
#       WatchJob streams fanned out by cancels;
#   (b) worker churn: WORKERS real squeeze-worker processes join, lease and
#       fail queued bench jobs (their "model" is not loadable), and leave by
#       SIGTERM or kill -9 (then their leases expire).
# It prints the RSS after a warm-up round, after each round and the peak, and
# the coordinator's own memory gauges after each (squeeze_coordinator_memory_bytes:
# glibc heap in use / free, SQLite's heap; squeeze_coordinator_table_entries).
# It FAILS when memory is not flat: over rounds 2..N the RSS may grow by at most
# RSS_SLACK_KIB per round on average (default 1024 KiB = 1 MiB; see
# tests/integration/reliability/README.md for the measurements behind it), and
# no in-memory table may keep an entry per job (last_seq and watchers empty,
# at most WORKERS*ROUNDS+WORKERS workers) once the round is over. Nothing is
# asserted on time; it also fails on request errors, wrong watch streams, or a
# dead coordinator.
#
# Usage: load_test.sh COORDINATOR WORKER SQUEEZE SERVICE_BENCH
# Env: ROUNDS (default 4), SUBMITS (2000), WATCHERS (200), WORKERS (6),
#      RSS_SLACK_KIB (1024), LOAD_RSS_OUT (copy the "unix-time KiB" samples there)
BENCH_BIN=$4
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-4}
SUBMITS=${SUBMITS:-2000}
WATCHERS=${WATCHERS:-200}
WORKERS=${WORKERS:-6}

RSS_SLACK_KIB=${RSS_SLACK_KIB:-1024}
start_coordinator "$T/data" --lease-ttl-ms 2000 --metrics-listen 127.0.0.1:0 --metrics-port-file "$T/metrics-port"
ADDR=127.0.0.1:$PORT
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$COORD_PID/status"; }
# gauge NAME{LABELS}: one sample of the coordinator's /metrics, as an integer.
gauge() { awk -v k="$1" '$1 == k {printf "%d\n", $2}' "$T/metrics.txt"; }
scrape() {
  curl -sS --max-time 20 -o "$T/metrics.txt" "http://127.0.0.1:$(cat "$T/metrics-port")/metrics" ||
    fail "GET /metrics"
  local kib=1024
  echo "load:   heap in use $(( $(gauge 'squeeze_coordinator_memory_bytes{kind="heap_in_use"}') / kib )) KiB," \
    "heap free $(( $(gauge 'squeeze_coordinator_memory_bytes{kind="heap_free"}') / kib )) KiB," \
    "sqlite $(( $(gauge 'squeeze_coordinator_memory_bytes{kind="sqlite"}') / kib )) KiB;" \
    "entries: last_seq $(gauge 'squeeze_coordinator_table_entries{table="last_seq"}')," \
    "watchers $(gauge 'squeeze_coordinator_table_entries{table="watchers"}')," \
    "stage_starts $(gauge 'squeeze_coordinator_table_entries{table="stage_starts"}')," \
    "workers $(gauge 'squeeze_coordinator_table_entries{table="workers"}')"
}
( while kill -0 "$COORD_PID" 2>/dev/null; do
    echo "$(date +%s.%N) $(awk '/^VmRSS/ {print $2}' "/proc/$COORD_PID/status" 2>/dev/null)" >>"$T/rss.samples"
    sleep 0.5
  done ) &
PIDS+=($!)
printf 'squeeze load test: model reference blob\n' >"$T/model.bin"
MODEL=$(sq upload "$T/model.bin")

bench_round() {  # bench_round NAME SUBMITS WATCHERS
  "$BENCH_BIN" "$ADDR" "$MODEL" "$2" 8 "$3" >"$T/bench.$1" 2>&1 || fail "service_bench round $1: $(cat "$T/bench.$1")"
  sed "s/^/  [$1] /" "$T/bench.$1"
}
churn() {  # worker churn: join, work for a while, leave
  local w pids=()
  for w in $(seq 1 "$WORKERS"); do
    start_worker "churn$w" --lease-wait-ms 500
    pids+=("$WORKER_PID")
  done
  sleep 3
  for w in "${!pids[@]}"; do
    if [ $((w % 2)) = 0 ]; then kill -TERM "${pids[$w]}" 2>/dev/null || true; else kill -9 "${pids[$w]}" 2>/dev/null || true; fi
  done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}

log "warm-up round"
bench_round warmup $((SUBMITS / 2)) $((WATCHERS / 2))
churn
sleep 1
WARM=$(rss_kb)
echo "load: coordinator RSS after warm-up: $WARM KiB"
scrape
declare -a AFTER
for r in $(seq 1 "$ROUNDS"); do
  # service_bench's idempotency keys are bench-0..N-1: growing N by SUBMITS
  # per round makes SUBMITS new jobs each round (the earlier keys replay the
  # idempotent path).
  bench_round "round$r" $((SUBMITS / 2 + SUBMITS * r)) "$WATCHERS"
  churn
  sleep 1
  AFTER[$r]=$(rss_kb)
  kill -0 "$COORD_PID" 2>/dev/null || fail "the coordinator died in round $r"
  echo "load: round $r: $((SUBMITS / 2 + SUBMITS * r)) submits ($SUBMITS new jobs), $WATCHERS watch streams, $WORKERS workers joined and left;" \
    "coordinator RSS $((AFTER[$r])) KiB ($((AFTER[$r] - WARM)) KiB vs warm)"
  scrape
  # Per-job state must be gone once nobody watches: no entry per job kept.
  [ "$(gauge 'squeeze_coordinator_table_entries{table="last_seq"}')" = 0 ] || fail "last_seq entries left after round $r"
  [ "$(gauge 'squeeze_coordinator_table_entries{table="watchers"}')" = 0 ] || fail "watcher entries left after round $r"
  [ "$(gauge 'squeeze_coordinator_table_entries{table="workers"}')" -le $((WORKERS * (r + 1) + WORKERS)) ] ||
    fail "more workers registered than ever joined"
done
PEAK=$(awk '{ if ($2 > m) m = $2 } END {print m}' "$T/rss.samples")
growth=$(( (AFTER[ROUNDS] - AFTER[1]) / (ROUNDS > 1 ? ROUNDS - 1 : 1) ))
limit=$RSS_SLACK_KIB
verdict="flat"
[ "$growth" -le "$limit" ] || verdict="GROWING"
echo "load: RSS warm $WARM KiB, after round 1 ${AFTER[1]} KiB, after round $ROUNDS ${AFTER[$ROUNDS]} KiB," \
  "peak $PEAK KiB; growth per round over rounds 2..$ROUNDS: $growth KiB (flat means <= $limit KiB): memory $verdict"
echo "load: $(wc -l <"$T/rss.samples") RSS samples every 0.5 s; min $(awk 'NR == 1 || $2 < m { m = $2 } END {print m}' "$T/rss.samples") KiB"
[ -z "${LOAD_RSS_OUT:-}" ] || cp "$T/rss.samples" "$LOAD_RSS_OUT"
[ "$verdict" = flat ] || fail "coordinator RSS grew $growth KiB per round over rounds 2..$ROUNDS (limit $limit KiB)"
log "PASS load ($ROUNDS rounds; memory $verdict)"
