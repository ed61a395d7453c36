#!/usr/bin/env bash
# Data pipeline benchmark: sskd's paper train transform and loader vs torchvision's, same images,
# same machine, same run. Writes N synthetic STL-10-format images (smooth random gradients plus
# noise, seeded) unless --root points at a real stl10_binary directory.
#
#   scripts/bench_data.sh [--images 2000] [--root DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
images=2000
root=""
while [ $# -gt 0 ]; do
  case "$1" in
    --images) images="$2"; shift 2 ;;
    --root) root="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
python=${PYTHON:-python3}
if [ -z "$root" ]; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  "$python" - "$root" "$images" <<'PY'
import sys, numpy as np
root, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:96, 0:96].astype(np.float32)
imgs = np.empty((n, 3, 96, 96), np.uint8)
for i in range(n):
    a, b, c = rng.uniform(-2, 2, 3)
    base = 128 + 60 * np.sin(a * xx / 20 + b * yy / 20 + c)
    planes = [base + rng.normal(0, 20, (96, 96)) + 30 * k for k in range(3)]
    imgs[i] = np.clip(np.stack(planes), 0, 255).astype(np.uint8)
# STL-10 stores each plane column-major.
np.ascontiguousarray(np.transpose(imgs, (0, 1, 3, 2))).tofile(f"{root}/train_X.bin")
(rng.integers(1, 11, n).astype(np.uint8)).tofile(f"{root}/train_y.bin")
PY
fi
swift build -c release --product sskd >/dev/null
bin=$(swift build -c release --show-bin-path)/sskd
echo "== sskd (Swift) =="
swift_out=$("$bin" bench data --root "$root" --images "$images")
echo "$swift_out"
echo "== torchvision (PIL path as the paper, transforms v1; and the v2 tensor path) =="
torch_out=$("$python" scripts/reference/bench_data.py --root "$root" --images "$images")
echo "$torch_out"
get() { echo "$1" | awk -v k="$2" '$1 == k { print $2 }'; }
st=$(get "$swift_out" swift_transform_images_per_s); tt=$(get "$torch_out" torch_transform_images_per_s)
sl=$(get "$swift_out" swift_loader_images_per_s); tl=$(get "$torch_out" torch_loader_images_per_s)
echo "== ratio (sskd / torchvision, higher is better for sskd) =="
awk -v a="$st" -v b="$tt" 'BEGIN { printf "transform, 1 thread:  %.2fx  (%.0f vs %.0f images/s)\n", a / b, a, b }'
t2=$(get "$torch_out" torch_v2_tensor_transform_images_per_s)
awk -v a="$st" -v b="$t2" 'BEGIN { printf "transform vs v2 tensor path, 1 thread: %.2fx  (%.0f vs %.0f images/s)\n", a / b, a, b }'
awk -v a="$sl" -v b="$tl" 'BEGIN { printf "loader, batch 32:     %.2fx  (%.0f vs %.0f images/s)\n", a / b, a, b }'
