#!/usr/bin/env bash
# make demo on a machine without a pretrained model: trains a small Llama
# teacher from scratch on a freely redistributable corpus (BSD licence)
# installed from Debian's
# archive (the `fortunes` package, /usr/share/games/fortunes: quotations,
# literature, riddles, ...; scripts/install-deps.sh installs it), with
# `squeeze train`, in bounded time.
#   usage: scripts/demo-teacher.sh BUILD_DIR OUT_DIR
# Writes OUT_DIR/corpus/train.txt and valid.txt (every 10th fortune held out;
# documents separated by lines "<|endoftext|>", as TinyStories), OUT_DIR/
# train.yaml and OUT_DIR/teacher/model (an HF checkpoint + a byte-level
# llama2.c tokenizer, 259 ids) that `squeeze run` / `submit` load.
# env: DEMO_TRAIN_STEPS (300: about two minutes on 2 idle cores),
#      FORTUNES_DIR (/usr/share/games/fortunes)
set -euo pipefail

BUILD=${1:?usage: $0 BUILD_DIR OUT_DIR}
OUT=${2:?usage: $0 BUILD_DIR OUT_DIR}
SQUEEZE=$BUILD/client/squeeze
FORTUNES=${FORTUNES_DIR:-/usr/share/games/fortunes}
STEPS=${DEMO_TRAIN_STEPS:-300}

files=()
for f in "$FORTUNES"/*; do
  # Text files only: not the strfile indexes (.dat), not the .u8 links, not
  # the ASCII-art collections.
  case "$(basename "$f")" in *.dat|*.u8|art|ascii-art) continue ;; esac
  [ -f "$f" ] && [ ! -L "$f" ] && files+=("$f")
done
if [ ${#files[@]} -eq 0 ]; then
  echo "demo-teacher: no fortune files in $FORTUNES; install Debian's 'fortunes' package (scripts/install-deps.sh)" >&2
  exit 2
fi
mkdir -p "$OUT/corpus"
# A fortune file is documents separated by lines "%".
cat "${files[@]}" | awk -v train="$OUT/corpus/train.txt" -v valid="$OUT/corpus/valid.txt" '
  function flush() {
    if (doc != "") { f = (n % 10 == 9) ? valid : train; printf "%s<|endoftext|>\n", doc > f; n++ }
    doc = ""
  }
  /^%$/ { flush(); next }
  { doc = doc $0 "\n" }
  END { flush() }'
echo "demo-teacher: corpus of $(wc -c <"$OUT/corpus/train.txt") bytes (train) and $(wc -c <"$OUT/corpus/valid.txt") bytes (held out) from ${#files[@]} fortune files"

cat >"$OUT/train.yaml" <<YAML
# A small Llama trained from scratch on fortunes (byte-level tokenizer).
model: {dim: 64, hidden_dim: 172, n_layers: 4, n_heads: 8, n_kv_heads: 4, max_seq_len: 128}
tokenizer: byte
data: [$OUT/corpus/train.txt]
separator: "<|endoftext|>"
steps: $STEPS
batch_size: 16
seq_len: 128
lr: 0.004
min_lr: 0.0004
warmup_steps: 20
weight_decay: 0.1
seed: 0
out_dir: $OUT/teacher
checkpoint_every: 100
YAML
echo "demo-teacher: squeeze train --config $OUT/train.yaml ($STEPS steps of 16 x 128 bytes)"
"$SQUEEZE" train --config "$OUT/train.yaml" --log-every 25
