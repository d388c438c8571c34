#!/usr/bin/env bash
# `squeeze-coordinator --verify` beside a live coordinator (issue 11) is
# read-only: it opens jobs.db with SQLITE_OPEN_READONLY (no migration) and the
# object store read-only, so not one byte of the data dir changes and an upload
# in progress (its bytes in objects/tmp) survives. The only file a SQLite
# reader may touch is jobs.db-shm (the WAL's shared-memory index: read marks),
# which holds no data and is left out of the hash.
source "$(dirname "$0")/lib.sh"
start_coordinator "$T/data"
printf 'verify live test: model blob\n' >"$T/model.bin"
MODEL=$(sq upload "$T/model.bin")
write_magnitude_recipe "$T/recipe.yaml"
for i in 1 2 3; do sq submit --recipe "$T/recipe.yaml" --model "$MODEL" --json >/dev/null || fail "submit $i"; done
# An upload in progress, as a LocalBlobWriter leaves it in objects/tmp.
printf 'half an upload' >"$T/data/objects/tmp/unnamed.tmp.verify-live"
tree_hash() {
  (cd "$T/data" && find . -type f ! -name 'jobs.db-shm' -print0 | sort -z | xargs -0 sha256sum)
}
tree_hash >"$T/before"
grep -q "jobs.db-wal" "$T/before" || fail "the live coordinator has no WAL file: $(cat "$T/before")"
"$COORD_BIN" --verify --data-dir "$T/data" >"$T/verify.out" 2>&1 || fail "verify: $(cat "$T/verify.out")"
grep -q "^OK: 3 jobs" "$T/verify.out" || fail "verify summary: $(cat "$T/verify.out")"
tree_hash >"$T/after"
diff "$T/before" "$T/after" >"$T/diff" || fail "--verify changed the data dir: $(cat "$T/diff")"
[ -f "$T/data/objects/tmp/unnamed.tmp.verify-live" ] || fail "--verify removed an upload in progress"
kill -0 "$COORD_PID" || fail "the coordinator died"
sq submit --recipe "$T/recipe.yaml" --model "$MODEL" --json >/dev/null || fail "the coordinator stopped accepting jobs"
log "PASS verify beside a live coordinator changed nothing"
