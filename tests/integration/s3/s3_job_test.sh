#!/usr/bin/env bash
# A real job with the coordinator's object store in S3: npm s3rver on loopback
# (behind an aws4 SigV4 check, s3_server.js), credentials in the environment.
# The model, the artifact and the report land in the bucket (nothing in the
# local store), `squeeze download` gives the artifact back, and a coordinator
# with a wrong secret refuses to start with an error naming the bucket.
source "$(dirname "$0")/../service/lib.sh"
require_model
HERE=$(cd "$(dirname "$0")" && pwd)
NODE_MODULES=$HERE/../../node/node_modules
command -v node >/dev/null || { echo "SKIP: node is not installed"; exit 77; }
[ -f "$NODE_MODULES/s3rver/package.json" ] && [ -f "$NODE_MODULES/aws4/package.json" ] \
  || { echo "SKIP: npm s3rver/aws4 missing: run npm ci in tests/node (scripts/install-deps.sh does)"; exit 77; }

BUCKET=squeeze-artifacts
export AWS_ACCESS_KEY_ID=squeeze-it-key AWS_SECRET_ACCESS_KEY=squeeze-it-secret
node "$HERE/s3_server.js" --dir "$T/s3data" --port-file "$T/s3port" --bucket "$BUCKET" \
  --access-key "$AWS_ACCESS_KEY_ID" --secret "$AWS_SECRET_ACCESS_KEY" >>"$T/s3server.log" 2>&1 &
PIDS+=("$!")
wait_for 30 "s3_server.js to listen" test -s "$T/s3port"
S3=http://127.0.0.1:$(cat "$T/s3port")
log "S3 server at $S3"

# s3_head KEY: HTTP status of a signed HEAD of the object.
EMPTY_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
s3_head() {
  curl -s -o /dev/null -w '%{http_code}' -I --aws-sigv4 "aws:amz:us-east-1:s3" \
    --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: $EMPTY_SHA" "$S3/$BUCKET/$1"
}

# A wrong secret: the coordinator exits 2 at start, naming the endpoint and bucket.
if AWS_SECRET_ACCESS_KEY=wrong "$COORD_BIN" --listen 127.0.0.1:0 --data-dir "$T/bad" --object-store s3 \
  --s3-endpoint "$S3" --s3-bucket "$BUCKET" 2>"$T/bad.err"; then
  fail "a coordinator with a wrong secret started"
fi
grep -q "SignatureDoesNotMatch" "$T/bad.err" || fail "wrong-secret error: $(cat "$T/bad.err")"
grep -q "bucket \"$BUCKET\"" "$T/bad.err" || fail "wrong-secret error names no bucket: $(cat "$T/bad.err")"
# The secret never appears in the command line (ps) nor in the log.
grep -q "$AWS_SECRET_ACCESS_KEY" "$T/bad.err" && fail "the secret is printed"

# An unknown backend and a missing bucket flag are refused at start, by name.
"$COORD_BIN" --listen 127.0.0.1:0 --data-dir "$T/bad2" --object-store gcs 2>"$T/bad2.err" && fail "--object-store gcs accepted"
grep -q 'backend "gcs" is unknown' "$T/bad2.err" || fail "unknown backend error: $(cat "$T/bad2.err")"
"$COORD_BIN" --listen 127.0.0.1:0 --data-dir "$T/bad3" --object-store s3 --s3-endpoint "$S3" 2>"$T/bad3.err" \
  && fail "--object-store s3 without --s3-bucket accepted"
grep -q 's3 option bucket' "$T/bad3.err" || fail "missing bucket error: $(cat "$T/bad3.err")"

start_coordinator "$T/data" --object-store s3 --s3-endpoint "$S3" --s3-bucket "$BUCKET" --s3-prefix blobs/
grep -q "object store s3 $S3 bucket $BUCKET" "$T/coordinator.log" || fail "coordinator log does not name the S3 store"
start_worker w1
write_recipe "$T/recipe.yaml"
sq submit --recipe "$T/recipe.yaml" --model "$MODEL_DIR" --seed 7 --no-latency --no-agreement --json >"$T/submit.json" \
  || fail "submit"
J=$(json_field job_id <"$T/submit.json")
MODEL_DIGEST=$(json_field model_digest <"$T/submit.json")
[ -n "$J" ] && [ -n "$MODEL_DIGEST" ] || fail "submit --json printed no job_id / model_digest"
sq watch "$J" >/dev/null || fail "job failed: $(sq get "$J" --json)"
A=$(sq get "$J" --json | json_field artifact_digest)
[ -n "$A" ] || fail "no artifact digest"

# The model manifest and the artifact manifest are objects in the bucket.
[ "$(s3_head "blobs/$MODEL_DIGEST")" = 200 ] || fail "model manifest blobs/$MODEL_DIGEST is not in the bucket"
[ "$(s3_head "blobs/$A")" = 200 ] || fail "artifact manifest blobs/$A is not in the bucket"
[ "$(s3_head "blobs/0000000000000000000000000000000000000000000000000000000000000000")" = 404 ] \
  || fail "HEAD of an absent key is not 404 (the check above proves nothing)"
# ... and the local store holds no blob.
n_local=$(find "$T/data" -path '*/blobs/*' -type f 2>/dev/null | wc -l)
[ "$n_local" = 0 ] || fail "$n_local blobs landed in the local store"

sq download "$J" --out "$T/art" >/dev/null || fail "download"
for f in config.json model.safetensors recipe.yaml report.json; do
  [ -s "$T/art/$f" ] || fail "artifact lacks $f"
done
# Every downloaded file is the blob its manifest names (fetched straight from the bucket).
manifest=$(curl -s --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
  -H "x-amz-content-sha256: $EMPTY_SHA" "$S3/$BUCKET/blobs/$A")
for f in config.json model.safetensors; do
  want=$(printf '%s' "$manifest" | tr '{' '\n' | grep "\"path\":\"$f\"" | sed 's/.*"sha256":"\([0-9a-f]*\)".*/\1/')
  [ -n "$want" ] || fail "manifest in the bucket does not list $f: $manifest"
  [ "$(sha256sum "$T/art/$f" | cut -d' ' -f1)" = "$want" ] || fail "$f differs from its blob in the bucket"
done
log "PASS s3_job ($J, artifact $A in $S3/$BUCKET)"
