#!/usr/bin/env bash
# Exported ONNX files against sskd's own eval: for the student (efficientnet_b0) and the teacher
# (mobilenet_v2) at 3x96x96, 10 classes, it exports with `sskd export` (release build), prints the
# file size, and measures eval img/s at batch 32 and 256 with 1 and 2 threads: sskd through
# `sskd bench train --case {student,teacher}_eval{32,256}`, onnxruntime through
# scripts/bench_onnx.py on the exported file. Run it on an otherwise idle machine.
#   SECONDS_PER=10 THREADS="1 2" scripts/bench_onnx.sh
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product sskd >&2
BIN=.build/release/sskd
PY=$(bash scripts/pyenv.sh onnxruntime numpy)
THREADS=${THREADS:-1 2}
SECONDS_PER=${SECONDS_PER:-10}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| model | file MB | batch | threads | sskd img/s | onnxruntime img/s | ratio (sskd / ort) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for pair in student:efficientnet_b0 teacher:mobilenet_v2; do
  role=${pair%%:*}; model=${pair#*:}
  "$BIN" export "$model" --input 3x96x96 --classes 10 --out "$TMP/$model.onnx" --fold-batchnorm >/dev/null
  mb=$(python3 -c "import os; print(f'{os.path.getsize(\"$TMP/$model.onnx\") / 1e6:.2f}')")
  for batch in 32 256; do
    for t in $THREADS; do
      iters=$(( batch == 32 ? 20 : 4 ))
      ours=$("$BIN" bench train --case "${role}_eval${batch}" --threads "$t" --warmup 2 --iters "$iters" --json | tail -1 \
             | python3 -c "import json,sys; print(round(json.load(sys.stdin)['images_per_s'], 1))")
      ort=$("$PY" scripts/bench_onnx.py "$TMP/$model.onnx" --batch "$batch" --threads "$t" --seconds "$SECONDS_PER" \
             | python3 -c "import json,sys; print(json.load(sys.stdin)['img_per_s'])")
      ratio=$(python3 -c "print(f'{$ours / $ort:.2f}')")
      echo "| $model | $mb | $batch | $t | $ours | $ort | $ratio |"
    done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
