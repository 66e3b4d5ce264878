#!/usr/bin/env bash
# Formats the tree with the toolchain's `swift format` and the checked-in .swift-format;
# `scripts/format.sh --lint` checks instead (what CI runs). Generated protobuf code is left
# as protoc-gen-swift writes it.
set -euo pipefail
cd "$(dirname "$0")/.."
files=()
while IFS= read -r file; do files+=("$file"); done < <(
  { find Sources Tests Fuzz -name '*.swift' -not -path '*/Generated/*'; echo Package.swift; } | sort
)
if [ "${1:-}" = "--lint" ]; then
  swift format lint --strict --parallel "${files[@]}"
else
  swift format format --in-place --parallel "${files[@]}"
fi
