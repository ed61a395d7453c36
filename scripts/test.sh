#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test (XCTest, including the
# Lua test scripts). Usage: bash scripts/test.sh [extra swift test args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# onnxruntime checks the ONNX exports (SSKDExportTests); the venv lives under .build/.
bash scripts/pyenv.sh onnxruntime onnx numpy safetensors >/dev/null
swift build --build-tests
swift test --skip-build "$@"
# libFuzzer smoke run: every reader's harness for 10 s under AddressSanitizer (campaigns: scripts/fuzz.sh).
bash scripts/fuzz.sh all 10
