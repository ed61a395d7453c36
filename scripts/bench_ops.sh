#!/usr/bin/env bash
# Times every CNN op (forward, backward) in sskd and in PyTorch at the MobileNetV2 /
# EfficientNet-B0 shapes (96x96 input, batch 32) with the same thread count, in one run, and
# prints: op, shape, sskd ms, torch ms, ratio (torch / sskd; > 1 means sskd is faster).
# Times are the minimum over the repetitions (robust on a shared machine), and over ROUNDS rounds
# (default 3) that alternate the two sides in fresh processes: on this shared VM an op's best time
# varies by 10-30 % from one process to the next (cache and memory neighbours), so a single
# process per side can make either one look slower. Backward is the op's own backward node on
# both sides (grad_fn(dy)). With one thread both sides time process CPU time (immune to other jobs
# on the cores), otherwise wall time.
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
    echo "== threads $t ==" >&2
    for r in $(seq "$ROUNDS"); do
      SSKD_THREADS=$t "$BIN" bench ops --threads "$t" --budget "$BUDGET" --json "${FILTER_ARGS[@]}" > "$TMP/sskd.$r.json"
      python3 scripts/reference/bench_ops.py --spec "$TMP/spec.json" --threads "$t" --budget "$BUDGET" > "$TMP/torch.$r.json"
    done
    python3 - "$TMP" "$ROUNDS" "$t" <<'PY'
import json, math, sys
tmp, rounds, t = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def best(side):
    runs = [json.load(open(f"{tmp}/{side}.{r}.json")) for r in range(1, rounds + 1)]
    return [dict(runs[0][k], **{d: min(x[k][d] for x in runs) for d in ("forward_ms", "backward_ms")})
            for k in range(len(runs[0]))]
ours, theirs = best("sskd"), best("torch")
print(f"\n### threads {t} (best of {rounds} rounds)\n")
print(f"| op | shape | dir | sskd ms | torch ms | ratio |")
print(f"|---|---|---|---:|---:|---:|")
logs, slower = [], []
for a, b in zip(ours, theirs):
    assert a["shape"] == b["shape"], (a, b)
    for d in ("forward", "backward"):
        x, y = a[d + "_ms"], b[d + "_ms"]
        r = y / x if x > 0 else float("inf")
        logs.append(math.log(r))
        if r < 1: slower.append(f"{a['op']} {a['shape']} {d} {r:.2f}")
        print(f"| {a['op']} | {a['shape']} | {d[:3]} | {x:.3f} | {y:.3f} | {r:.2f} |")
tot_a = sum(a["forward_ms"] + a["backward_ms"] for a in ours)
tot_b = sum(b["forward_ms"] + b["backward_ms"] for b in theirs)
print(f"\ntotal sskd {tot_a:.1f} ms, torch {tot_b:.1f} ms, ratio {tot_b / tot_a:.2f}; "
      f"geometric mean ratio {math.exp(sum(logs) / len(logs)):.2f}; slower than torch: {len(slower)} of {len(logs)}")
for s in slower: print("  slower:", s)
PY
  done
done
