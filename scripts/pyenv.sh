#!/usr/bin/env bash
# Prints the path of a Python in .build/pyenv with the named PyPI packages, creating the virtual
# environment and installing what is missing (onnxruntime, numpy, onnx, safetensors: the checks of
# exported files). Usage: python=$(bash scripts/pyenv.sh onnxruntime numpy)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.build/pyenv
if [ ! -x "$venv/bin/python" ]; then
  if ! command -v python3 >/dev/null || ! python3 -c "import venv, ensurepip" 2>/dev/null; then
    # Debian's python3 keeps venv's pip bootstrap in a separate package.
    echo "pyenv: installing python3 and python3-venv" >&2
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3 python3-venv >&2
  fi
  rm -rf "$venv"
  python3 -m venv "$venv" >&2 || { echo "pyenv: python3 -m venv $venv failed" >&2; exit 1; }
fi
missing=()
for p in "$@"; do "$venv/bin/python" -c "import $p" 2>/dev/null || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "pyenv: installing ${missing[*]} into $venv" >&2
  "$venv/bin/pip" install -q "${missing[@]}" >&2
fi
echo "$PWD/$venv/bin/python"
