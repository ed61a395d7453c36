#!/usr/bin/env bash
# Times every CNN op (forward, backward) in sskd and in PyTorch at the MobileNetV2 /
# EfficientNet-B0 shapes (96x96 input, batch 32) with the same thread count, in one run, and
# prints: op, shape, sskd ms, torch ms, ratio (torch / sskd; > 1 means sskd is faster).
# Both sides run as servers side by side (scripts/reference/compare_ops.py): each round times
# every op on both sides back to back, the side going first alternating, so an op's two timings
# are seconds apart. On this shared VM an op's best time drifts by 10-30 % over minutes (cache and
# memory neighbours); timing one side's whole list and then the other's let that drift favour
# either side. Times are the minimum over the repetitions and over ROUNDS rounds (default 3);
# the "paired median" column is the median over rounds of each round's ratio (the two timings
# seconds apart), and an op counts as slower than PyTorch when that median is below 1.
# Backward is the op's own backward node on both sides (grad_fn(dy)). With one thread both sides
# time process CPU time (immune to other jobs on the cores), otherwise wall time.
#
#   scripts/bench_ops.sh [threads ...]        default: 1 2
#   BUDGET=0.5 ROUNDS=1 FILTER=dw scripts/bench_ops.sh 2
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product sskd >&2
BIN=.build/release/sskd
BUDGET=${BUDGET:-0.3}
ROUNDS=${ROUNDS:-3}
FILTER_ARGS=()
if [[ -n "${FILTER:-}" ]]; then FILTER_ARGS=(--filter "$FILTER"); fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$BIN" bench ops --spec "${FILTER_ARGS[@]}" > "$TMP/spec.json"
for T in "${@:-1 2}"; do
  for t in $T; do
    python3 scripts/reference/compare_ops.py --bin "$BIN" --spec "$TMP/spec.json" --threads "$t" \
      --rounds "$ROUNDS" --budget "$BUDGET" "${FILTER_ARGS[@]}"
  done
done
