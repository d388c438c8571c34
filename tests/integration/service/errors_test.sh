#!/usr/bin/env bash
# Clear errors and nothing stored: invalid recipe, unknown model, truncated and
# corrupted uploads, bad usage, unreachable server.
source "$(dirname "$0")/lib.sh"
PROBE=$4
start_coordinator "$T/data" --max-upload-bytes 4096
blobs() { find "$T/data/objects/blobs" -type f | wc -l; }
expect_rc() {
  local want=$1
  shift
  set +e
  "$@" >"$T/out" 2>&1
  local rc=$?
  set -e
  [ "$rc" = "$want" ] || fail "'$*' exited $rc, want $want: $(cat "$T/out")"
}
printf 'hello\n' >"$T/calib.txt"
MODEL=$(sq upload "$T/calib.txt")
# An N:M mask whose M does not divide a width of the model (its config.json:
# MLP width 172, 172 % 8 = 4) is refused at submit, naming the YAML path and module.
mkdir -p "$T/nm_model"
printf '{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2, "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512, "tie_word_embeddings": true}\n' >"$T/nm_model/config.json"
NM_MODEL=$(sq upload "$T/nm_model")
cat >"$T/nm.yaml" <<'YAML'
sparsity_stage:
  sparsity_modifiers:
    SparseGPTModifier: {mask_structure: "4:8"}
YAML
expect_rc 2 sq submit --recipe "$T/nm.yaml" --model "$NM_MODEL"
grep -q "sparsity_stage.sparsity_modifiers.SparseGPTModifier.mask_structure" "$T/out" || fail "N:M width error does not name the YAML path: $(cat "$T/out")"
grep -q "model.layers.0.mlp.down_proj has 172 inputs" "$T/out" || fail "N:M width error does not name the module: $(cat "$T/out")"
before=$(blobs)
cat >"$T/bad.yaml" <<'YAML'
stage:
  quant_modifiers:
    NoSuchModifier: {}
YAML
expect_rc 2 sq submit --recipe "$T/bad.yaml" --model "$MODEL"
grep -q "stage.quant_modifiers" "$T/out" || fail "invalid recipe error does not name the YAML path: $(cat "$T/out")"
write_recipe "$T/recipe.yaml"
expect_rc 2 sq submit --recipe "$T/recipe.yaml" --model "$(printf 'a%.0s' $(seq 64))"
grep -q "not in the object store" "$T/out" || fail "unknown model error unclear: $(cat "$T/out")"
expect_rc 2 sq submit --recipe "$T/recipe.yaml" --model /no/such/path
expect_rc 2 sq submit --recipe "$T/missing.yaml" --model "$MODEL"
expect_rc 2 sq submit --model "$MODEL"
expect_rc 2 sq get job-doesnotexist
expect_rc 3 sq --server 127.0.0.1:1 jobs --retry-seconds 0
expect_rc 3 sq jobs --server 127.0.0.1:1 --retry-seconds 0
# A bounded retry (--retry-seconds, default 30) still ends in exit 3.
expect_rc 3 sq get some-job --server=127.0.0.1:1 --retry-seconds 0.5
grep -q "retrying for up to 1 s" "$T/out" || fail "no retry notice: $(cat "$T/out")"
expect_rc 2 sq get some-job --retry-seconds=-1
[ "$(sq jobs --json)" = "[]" ] || fail "a rejected submit queued a job"
# An upload over the coordinator's --max-upload-bytes is refused, naming the limit.
head -c 5000 /dev/zero >"$T/big.bin"
set +e
sq upload "$T/big.bin" >"$T/out" 2>&1
rc=$?
set -e
[ "$rc" != 0 ] || fail "an upload over --max-upload-bytes succeeded"
grep -q "max-upload-bytes 4096" "$T/out" || fail "upload cap error does not name the limit: $(cat "$T/out")"
# Truncated and corrupted uploads (the probe speaks gRPC directly).
"$PROBE" "127.0.0.1:$PORT" >"$T/probe.log" 2>&1 || fail "upload probe: $(cat "$T/probe.log")"
[ "$(blobs)" = "$before" ] || fail "a rejected upload stored something ($before -> $(blobs) blobs)"
[ -z "$(ls -A "$T/data/objects/tmp")" ] || fail "temporary files left behind"
log "PASS errors"
