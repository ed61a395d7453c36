#!/usr/bin/env bash
# Installs the Debian packages sskd builds and runs with, if any is missing. Idempotent.
# Usage: bash scripts/setup.sh
set -euo pipefail
pkgs=(pkg-config libopenblas-dev liblua5.4-dev libedit-dev libpng-dev libjpeg-dev zlib1g-dev libssl-dev libopenmpi-dev openmpi-bin dataset-fashion-mnist)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: swift is not on PATH (install Swift 6 first)" >&2; exit 1; }
