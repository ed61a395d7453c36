#!/usr/bin/env bash
# The test suite under AddressSanitizer (with LeakSanitizer) and ThreadSanitizer.
#
#   bash scripts/sanitize.sh [address|thread|all] [extra swift test args, e.g. --filter Loader]
#
# Separate build folders (.build-asan, .build-tsan). A sanitizer report fails the run: ASan and
# TSan abort the test process on the first report (halt_on_error), so a green run means zero
# reports. Suppressions (scripts/sanitizers/*.supp) cover only code we do not build: Foundation's
# own leaks and OpenBLAS's uninstrumented thread pool, each with the reason next to it.
# Run before each release (too slow for CI's 25 minutes); the last result is in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"; shift $(( $# > 0 ? 1 : 0 )) || true
bash scripts/setup.sh >/dev/null
here=$(pwd)/scripts/sanitizers
export SWIFT_BACKTRACE=enable=no
status=0
run() {
  local san=$1 dir=$2; shift 2
  local t0; t0=$(date +%s)
  swift build --build-tests --sanitize="$san" --build-path "$dir" -Xswiftc -use-ld=lld
  if swift test --skip-build --sanitize="$san" --build-path "$dir" "$@"; then r=pass; else r=FAIL; status=1; fi
  echo "sanitize $san: $r in $(( $(date +%s) - t0 )) s"
}
if [ "$which" = address ] || [ "$which" = all ]; then
  ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:abort_on_error=0" LSAN_OPTIONS="suppressions=$here/lsan.supp:print_suppressions=0" \
    run address .build-asan "$@"
fi
if [ "$which" = thread ] || [ "$which" = all ]; then
  TSAN_OPTIONS="halt_on_error=1:suppressions=$here/tsan.supp:second_deadlock_stack=1" run thread .build-tsan "$@"
fi
exit $status
