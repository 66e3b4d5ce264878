#!/usr/bin/env bash
# Regenerates the Swift code for proto/liaison/v1/*.proto. Needs protoc
# (Debian: protobuf-compiler) and protoc-gen-swift built from swift-protobuf 1.39.0:
#   git clone --branch 1.39.0 <swift-protobuf> /tmp/pgs/swift-protobuf
#   swift build -c release --package-path /tmp/pgs/swift-protobuf --product protoc-gen-swift
# PLUGIN may point elsewhere. The generated files are committed; CI never runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
PLUGIN="${PLUGIN:-/tmp/pgs/swift-protobuf/.build/release/protoc-gen-swift}"
protoc --plugin=protoc-gen-swift="$PLUGIN" --proto_path=proto \
  --swift_opt=Visibility=Public --swift_opt=UseAccessLevelOnImports=true \
  --swift_opt=FileNaming=PathToUnderscores \
  --swift_out=Sources/LiaisonCore/Generated proto/liaison/v1/op.proto proto/liaison/v1/state.proto proto/liaison/v1/envelope.proto proto/liaison/v1/governance.proto
echo "generated into Sources/LiaisonCore/Generated"
protoc --plugin=protoc-gen-swift="$PLUGIN" --proto_path=proto \
  --swift_opt=Visibility=Public --swift_opt=UseAccessLevelOnImports=true \
  --swift_opt=FileNaming=PathToUnderscores \
  --swift_out=Sources/LiaisonWire/Generated proto/liaison/v1/sync.proto
echo "generated into Sources/LiaisonWire/Generated"
