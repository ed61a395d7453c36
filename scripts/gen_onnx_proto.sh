#!/usr/bin/env bash
# Regenerates Sources/SSKDExport/Generated/onnx.pb.swift from the official onnx.proto3.
#
# onnx.proto3 is what the onnx package's own generator (onnx/gen_proto.py) writes from its
# onnx.in.proto; protoc-gen-swift is built from the swift-protobuf version Package.swift resolves,
# so the generated code matches the runtime it links against. Run after changing either version;
# the output is committed (building the plugin in every CI run would cost minutes).
# Needs: protobuf-compiler (Debian), Python with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "gen_onnx_proto: needs protoc (apt-get install protobuf-compiler)" >&2; exit 1; }
python=$(bash scripts/pyenv.sh onnx)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$python" -m onnx.gen_proto -o "$work" onnx >/dev/null
swift package resolve >/dev/null
swift build -c release --package-path .build/checkouts/swift-protobuf --scratch-path .build-protoc --product protoc-gen-swift >/dev/null
mkdir -p "$work/in"; cp "$work/onnx.proto3" "$work/in/onnx.proto"   # protoc wants .proto; the file is proto3 syntax
protoc --plugin=protoc-gen-swift=.build-protoc/release/protoc-gen-swift --swift_out="$work" --swift_opt=Visibility=Internal \
  -I "$work/in" "$work/in/onnx.proto"
cp "$work/onnx.pb.swift" Sources/SSKDExport/Generated/onnx.pb.swift
echo "wrote Sources/SSKDExport/Generated/onnx.pb.swift (onnx $("$python" -c 'import onnx; print(onnx.__version__)'), swift-protobuf $(git -C .build/checkouts/swift-protobuf describe --tags 2>/dev/null || echo '?'))"
