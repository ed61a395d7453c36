#!/usr/bin/env bash
# The main job: installs what is missing, builds sskd (release), and runs the quickstart recipe
# (SS-KD on Fashion-MNIST from the Debian package). Extra arguments go to the recipe, e.g.
#   bash scripts/quickstart.sh --set samples=2500
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product sskd
exec .build/release/sskd run scripts/quickstart.lua "$@"
