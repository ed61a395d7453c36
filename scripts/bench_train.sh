#!/usr/bin/env bash
# Training / KD / inference throughput of sskd against PyTorch (issue 8), same machine, same
# thread count, same run: for each case and thread count it runs `sskd bench train --case` and
# `scripts/reference/bench_train.py --case` (each in a fresh process, alternating sides) REPEATS
# times and prints a Markdown table of medians:
#   case, threads, sskd img/s, torch img/s, ratio (sskd / torch; > 1 means sskd is faster),
#   sskd peak MiB, torch peak MiB, torch peak minus its `import torch` baseline.
# Peak memory is each process's VmHWM / ru_maxrss (the torch wheel maps ~530 MiB at import).
# The load average is printed before and after: the machine is shared, medians are the figure.
#
#   scripts/bench_train.sh                         all cases, threads 1 and 2
#   THREADS="2" CASES=kd_step REPEATS=5 scripts/bench_train.sh
#   WARMUP=3 ITERS=10 OUT=bench-train.jsonl scripts/bench_train.sh   (raw JSON lines kept in OUT)
#   BASELINE=1 scripts/bench_train.sh    also runs sskd with the non-kernel levers off (glibc malloc
#                                        defaults, eval forwards layer by layer) in the same run:
#                                        extra "sskd base" columns, before/after under the same load
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product sskd >&2
BIN=.build/release/sskd
THREADS=${THREADS:-1 2}
CASES=${CASES:-student_train teacher_train kd_step student_eval32 student_eval256 teacher_eval32 teacher_eval256}
CASES=${CASES//,/ }
REPEATS=${REPEATS:-1}
BASELINE=${BASELINE:-0}
WARMUP=${WARMUP:-2}
ITERS=${ITERS:-5}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
RAW=${OUT:-$TMP/raw.jsonl}
: > "$RAW"
echo "load before: $(cat /proc/loadavg)" >&2
for t in $THREADS; do
  for c in $CASES; do
    for ((r = 0; r < REPEATS; r++)); do
      echo "== $c, $t thread(s), repeat $((r + 1))/$REPEATS (load $(cut -d' ' -f1 /proc/loadavg))" >&2
      SSKD_THREADS=$t "$BIN" bench train --case "$c" --threads "$t" --warmup "$WARMUP" --iters "$ITERS" --json \
        | sed 's/^{/{"side": "sskd", /' >> "$RAW"
      if [[ "$BASELINE" == 1 ]]; then
        SSKD_MALLOC_DEFAULTS=1 SSKD_THREADS=$t "$BIN" bench train --case "$c" --threads "$t" --warmup "$WARMUP" --iters "$ITERS" \
          --json --no-fusion | sed 's/^{/{"side": "base", /' >> "$RAW"
      fi
      OMP_NUM_THREADS=$t MKL_NUM_THREADS=$t python3 scripts/reference/bench_train.py --case "$c" --threads "$t" \
        --warmup "$WARMUP" --iters "$ITERS" | grep '^{' | sed 's/^{/{"side": "torch", /' >> "$RAW"
    done
  done
done
LOAD_AFTER=$(cat /proc/loadavg)
echo "load after: $LOAD_AFTER" >&2
python3 - "$RAW" "$LOAD_AFTER" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = []
for r in rows:
    k = (r["case"], r["threads"])
    if k not in keys: keys.append(k)
med = lambda xs: statistics.median(xs) if xs else float("nan")
sides = len({r["side"] for r in rows})
print(f"\nsskd vs PyTorch, medians of {max(1, len(rows) // max(1, sides * len(keys)))} run(s) per cell; load after: {sys.argv[2]}\n")
base = any(r["side"] == "base" for r in rows)
if base:
    print("| case | threads | sskd base img/s | sskd img/s | torch img/s | base ratio | ratio | sskd base peak MiB | sskd peak MiB | torch peak MiB | torch peak - import MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
else:
    print("| case | threads | sskd img/s | torch img/s | ratio | sskd peak MiB | torch peak MiB | torch peak - import MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
for case, t in keys:
    s = [r for r in rows if r["side"] == "sskd" and r["case"] == case and r["threads"] == t]
    p = [r for r in rows if r["side"] == "torch" and r["case"] == case and r["threads"] == t]
    si, pi = med([r["images_per_s"] for r in s]), med([r["images_per_s"] for r in p])
    sm, pm = med([r["peak_rss_mb"] for r in s]), med([r["peak_rss_mb"] for r in p])
    pb = med([r["peak_rss_mb"] - r["rss_after_import_mb"] for r in p])
    if base:
        b = [r for r in rows if r["side"] == "base" and r["case"] == case and r["threads"] == t]
        bi, bm = med([r["images_per_s"] for r in b]), med([r["peak_rss_mb"] for r in b])
        print(f"| {case} | {t} | {bi:.1f} | {si:.1f} | {pi:.1f} | {bi / pi:.2f} | {si / pi:.2f} | {bm:.0f} | {sm:.0f} | {pm:.0f} | {pb:.0f} |")
    else:
        print(f"| {case} | {t} | {si:.1f} | {pi:.1f} | {si / pi:.2f} | {sm:.0f} | {pm:.0f} | {pb:.0f} |")
# On a shared machine the fastest iteration is the least disturbed figure: the same table from
# each side's best ms/iter (over iterations and repeats).
print("\nfrom the best iteration of each side:\n")
print("| case | threads |" + (" sskd base img/s |" if base else "") + " sskd img/s | torch img/s |" + (" base ratio |" if base else "") + " ratio |")
print("|---|---:|" + ("---:|" * (5 if base else 3)))
for case, t in keys:
    best = {}
    for r in rows:
        if r["case"] == case and r["threads"] == t:
            v = r["batch"] * 1000.0 / r["ms_per_iter_min"]
            best[r["side"]] = max(best.get(r["side"], 0.0), v)
    s_, p_ = best.get("sskd", float("nan")), best.get("torch", float("nan"))
    if base:
        b_ = best.get("base", float("nan"))
        print(f"| {case} | {t} | {b_:.1f} | {s_:.1f} | {p_:.1f} | {b_ / p_:.2f} | {s_ / p_:.2f} |")
    else:
        print(f"| {case} | {t} | {s_:.1f} | {p_:.1f} | {s_ / p_:.2f} |")
PY
