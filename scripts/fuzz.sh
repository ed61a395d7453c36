#!/usr/bin/env bash
# libFuzzer campaigns over the readers of outside bytes (safetensors, checkpoints, IDX, STL-10,
# CIFAR-10, PNG, JPEG, the `--set` parser), and the Lua API fuzzer.
#
#   bash scripts/fuzz.sh [TARGET|all|lua] [SECONDS=60] [extra libFuzzer flags...]
#
# Builds sskd-fuzz with -sanitize=fuzzer,address into .build-fuzz (C targets with
# -fsanitize=fuzzer-no-link,address), then runs each target for SECONDS on a working corpus in
# .build-fuzz/corpus/TARGET seeded from Fuzz/corpus/TARGET. A crashing input is written to
# .build-fuzz/crashes/TARGET/ and the script exits non-zero; reproduce it with
# `sskd-fuzz TARGET FILE` (any build). `lua` runs `sskd fuzz lua` (seed 1) for SECONDS instead.
# Prints executions, coverage (edges) and corpus size per target.
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"; seconds="${2:-60}"; shift $(( $# > 2 ? 2 : $# )) || true
targets=(safetensors checkpoint idx stl10 cifar10 png jpeg set)
[ "$which" = all ] || targets=("$which")
export SWIFT_BACKTRACE=enable=no   # else Swift's backtracer holds the process on the first crash

if [ "$which" = lua ]; then
  swift build -c release --product sskd >/dev/null
  exec .build/release/sskd fuzz lua --seconds "$seconds" --seed "${SSKD_FUZZ_SEED:-1}"
fi

swift build --build-path .build-fuzz --product sskd-fuzz \
  -Xswiftc -sanitize=fuzzer,address -Xswiftc -DSSKD_LIBFUZZER -Xcc -fsanitize=fuzzer-no-link,address -Xswiftc -use-ld=lld >/dev/null
bin=.build-fuzz/debug/sskd-fuzz
status=0
for t in "${targets[@]}"; do
  [ -d "Fuzz/corpus/$t" ] || { echo "fuzz.sh: unknown target '$t' (targets: safetensors checkpoint idx stl10 cifar10 png jpeg set lua)" >&2; exit 2; }
  work=.build-fuzz/corpus/$t crashes=.build-fuzz/crashes/$t
  mkdir -p "$work" "$crashes"
  log=.build-fuzz/$t.log
  # -rss_limit_mb: the readers must refuse what does not fit long before 2 GB.
  if "$bin" "$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
       -artifact_prefix="$crashes/" "$@" "$work" "Fuzz/corpus/$t" >"$log" 2>&1; then
    result=ok
  else
    result="CRASH (inputs in $crashes, log $log)"; status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
  echo "fuzz $t: $seconds s, $runs executions, $cov edges, corpus $(ls "$work" | wc -l) files: $result"
done
exit $status
