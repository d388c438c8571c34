# Shared prologue of the reliability tests: service/lib.sh (real processes on
# loopback, a private temp dir, cleanup) plus the small one-stage recipes they
# submit.
#
# Usage (from a test script):  source "$(dirname "$0")/lib.sh" COORDINATOR WORKER SQUEEZE
source "$(dirname "${BASH_SOURCE[0]}")/../service/lib.sh"

# write_magnitude_recipe FILE: 50% magnitude pruning of every Linear (fast; a
# dense artifact the size of the model).
write_magnitude_recipe() {
  cat >"$1" <<'YAML'
sparsity_stage:
  sparsity_modifiers:
    MagnitudePruningModifier:
      sparsity: 0.5
      targets: ["Linear"]
YAML
}

# write_rtn_recipe FILE: W4A16 round-to-nearest of every Linear (fast; the
# packed artifact is about 1/4 of the dense one).
write_rtn_recipe() {
  cat >"$1" <<'YAML'
quant_stage:
  quant_modifiers:
    QuantizationModifier:
      targets: ["Linear"]
      scheme: W4A16
YAML
}
