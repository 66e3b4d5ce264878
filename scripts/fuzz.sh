#!/usr/bin/env bash
# Builds the libFuzzer harnesses in Fuzz/Harnesses and runs them (docs/testing.md, "Fuzzing").
#
#   scripts/fuzz.sh [TARGET…] [--runs N | --seconds S] [--write-seeds] [--build-only]
#
# TARGET: sync-frame, op, sealed-envelope, governance, topology (default: all five, one after another).
# --runs N      stop each target after N executions (libFuzzer's -runs)
# --seconds S   stop each target after S seconds (default 60)
# --write-seeds rewrite Fuzz/corpus/TARGET from the project's own code and topology/*.yaml
# --build-only  build the harnesses and stop
# --release     build on SwiftPM's release build in .build-release (made here if missing) and
#               compile the Liaison modules -O, into .build-fuzz/release: several times the
#               executions per second (signatures, Protocol Buffers and compression run
#               optimised), for long runs; compiling takes minutes, not seconds. CI uses the
#               debug build.
#
# How it builds: the package's dependencies (swift-protobuf, swift-crypto, NIOCore,
# compress-nio, Yams…) come as they are from SwiftPM's own debug build in .build (the one
# `swift test` leaves behind, so CI pays nothing for them); the Liaison modules a harness
# needs are compiled again here with `swiftc -sanitize=fuzzer`, so libFuzzer sees their
# branches, into .build-fuzz/debug. They are compiled -Onone: with -O and coverage,
# LiaisonCore alone takes 5 to 18 minutes on 2 shared cores, against 15 seconds. The
# harnesses export LLVMFuzzerTestOneInput with @_cdecl; libFuzzer supplies main. Plain
# `swift build` and `swift test` never see any of it.
#
# A run reads the committed seeds in Fuzz/corpus/TARGET and keeps what it discovers in
# .build-fuzz/corpus/TARGET; a failing input is written to .build-fuzz/artifacts/ and the
# script exits non-zero. Replay one: .build-fuzz/debug/fuzz-TARGET FILE.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(sync-frame op sealed-envelope governance topology)
targets=()
runs=""
seconds=60
config=debug
write_seeds=false
build_only=false
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --write-seeds) write_seeds=true; shift ;;
    --build-only) build_only=true; shift ;;
    --release) config=release; shift ;;
    sync-frame | op | sealed-envelope | governance | topology) targets+=("$1"); shift ;;
    *) echo "error: unknown argument '$1'; see the top of $0" >&2; exit 64 ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

# --- the dependencies, from SwiftPM's build ---------------------------------------------
mkdir -p ".build-fuzz/$config"
scratch=.build
optimise=-Onone
if [ "$config" = release ]; then
  scratch=.build-release
  optimise=-O
fi
bin="$scratch/$config"
link_list="$bin/liaison.product/Objects.LinkFileList"
# SwiftPM runs only when its build is missing or older than the package's dependencies
# (after `swift test` it is there; the Liaison sources are compiled below, not by SwiftPM).
if [ ! -f "$link_list" ] || [ Package.swift -nt "$link_list" ] || [ Package.resolved -nt "$link_list" ]; then
  echo "fuzz: swift build -c $config --scratch-path $scratch --product liaison"
  swift build -c "$config" --scratch-path "$scratch" --product liaison >".build-fuzz/$config/swift-build.log" 2>&1 \
    || { cat ".build-fuzz/$config/swift-build.log"; exit 1; }
fi
manifest="$scratch/$config.yaml"
out=".build-fuzz/$config"

# Import paths and C module maps: the ones SwiftPM gives LiaisonNode, which imports every
# dependency the harnesses need. Libraries: the ones SwiftPM links the liaison executable with.
python3 - "$manifest" "$out" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read()
def args(target, kind):
    start = re.search(r'\n  "C\.%s-[^"]*\.%s":' % (target, kind), text).end()
    return json.loads(re.search(r'\n    args: (\[.*?\])\n', text[start:]).group(1))
node = args("LiaisonNode", "module")
imports = []
for i, arg in enumerate(node):
    if arg in ("-I", "-Xcc") and i + 1 < len(node):
        imports += [arg, node[i + 1]]
libraries = [arg for arg in args("liaison", "exe") if arg.startswith("-l")]
open(sys.argv[2] + "/import-flags", "w").write("\n".join(imports) + "\n")
open(sys.argv[2] + "/link-flags", "w").write("\n".join(libraries) + "\n")
PY
mapfile -t import_flags <"$out/import-flags"
mapfile -t link_flags <"$out/link-flags"

# Every object of the dependencies, as one thin archive (it names the objects SwiftPM built,
# it copies none): the linker takes what the harness uses.
if [ ! -f "$out/deps.a" ] || [ "$link_list" -nt "$out/deps.a" ]; then
  rm -f "$out/deps.a"
  mapfile -t dep_objects < <(sed "s/^'//; s/'\$//" "$link_list" | grep -v -e '/Liaison[A-Za-z]*\.build/' -e '/liaison\.build/')
  ar qcsT "$out/deps.a" "${dep_objects[@]}"
fi

# --- the Liaison modules, instrumented ------------------------------------------------
swift_flags=(
  -swift-version 6 -parse-as-library "$optimise" -wmo -enable-testing -package-name liaison -suppress-warnings
  -enable-upcoming-feature ExistentialAny -enable-upcoming-feature MemberImportVisibility
  -enable-upcoming-feature InternalImportsByDefault
  -I "$out" "${import_flags[@]}" -module-cache-path "$out/ModuleCache"
)

# build_module NAME SANITIZE SOURCE… — one module, rebuilt when a source or an input changed.
build_module() {
  local name="$1" sanitize="$2"
  shift 2
  local object="$out/$name.o"
  if [ -f "$object" ] && [ -z "$(find "$@" "$out/deps.a" "$0" -newer "$object" 2>/dev/null | head -1)" ] \
    && [ -z "$(find "$out" -maxdepth 1 -name '*.swiftmodule' -newer "$object" | head -1)" ]; then
    return
  fi
  echo "fuzz: compiling $name"
  local flags=("${swift_flags[@]}")
  [ "$sanitize" = yes ] && flags+=(-sanitize=fuzzer)
  swiftc "${flags[@]}" -module-name "$name" -emit-module -emit-module-path "$out/$name.swiftmodule" \
    -c -o "$object" "$@"
}

sources() { find "$@" -name '*.swift' | sort; }
mapfile -t core_sources < <(sources Sources/LiaisonCore)
build_module LiaisonCore yes "${core_sources[@]}"
mapfile -t support_sources < <(sources Sources/LiaisonTestSupport)
build_module LiaisonTestSupport no "${support_sources[@]}"
mapfile -t wire_sources < <(sources Sources/LiaisonWire)
build_module LiaisonWire yes "${wire_sources[@]}"
mapfile -t replication_sources < <(sources Sources/LiaisonReplication)
build_module LiaisonReplication yes "${replication_sources[@]}"
# Of LiaisonNode, the topology parser and what it calls; the rest of the module (stores,
# transport, services) would bring GRDB and swift-nio-ssl into the build for nothing.
build_module LiaisonNode yes Sources/LiaisonNode/Topology/Topology.swift Sources/LiaisonNode/NodeConfig.swift Sources/LiaisonNode/Topology/FeedSource.swift Sources/LiaisonNode/Topology/TAXIIListener.swift Sources/LiaisonNode/Topology/APIRole.swift

# --- the harnesses ----------------------------------------------------------------------
modules_for() {
  case "$1" in
    sync-frame) echo "LiaisonCore LiaisonTestSupport LiaisonWire" ;;
    op | sealed-envelope | governance) echo "LiaisonCore LiaisonTestSupport" ;;
    topology) echo "LiaisonCore LiaisonReplication LiaisonNode" ;;
  esac
}
harness_file() {
  case "$1" in
    sync-frame) echo Fuzz/Harnesses/SyncFrameHarness.swift ;;
    op) echo Fuzz/Harnesses/OpHarness.swift ;;
    sealed-envelope) echo Fuzz/Harnesses/SealedEnvelopeHarness.swift ;;
    governance) echo Fuzz/Harnesses/GovernanceHarness.swift ;;
    topology) echo Fuzz/Harnesses/TopologyHarness.swift ;;
  esac
}

for target in "${targets[@]}"; do
  exe="$out/fuzz-$target"
  objects=()
  for module in $(modules_for "$target"); do objects+=("$out/$module.o"); done
  inputs=(Fuzz/Harnesses/FuzzEntry.swift "$(harness_file "$target")")
  # Inputs that are Protocol Buffers messages get the structure-aware mutator.
  [ "$target" = topology ] || inputs+=(Fuzz/Harnesses/ProtobufMutator.swift)
  if [ ! -f "$exe" ] || [ -n "$(find "${inputs[@]}" "${objects[@]}" -newer "$exe" | head -1)" ]; then
    echo "fuzz: linking fuzz-$target"
    swiftc "${swift_flags[@]}" -sanitize=fuzzer -enable-experimental-feature Extern -module-name "Fuzz_${target//-/_}" "${inputs[@]}" \
      "${objects[@]}" "$out/deps.a" "${link_flags[@]}" -o "$exe"
  fi
done
$build_only && exit 0

# --- seeds ------------------------------------------------------------------------------
if $write_seeds; then
  for target in "${targets[@]}"; do
    rm -rf "Fuzz/corpus/$target"
    LIAISON_FUZZ_WRITE_SEEDS="Fuzz/corpus/$target" "$out/fuzz-$target"
    [ "$target" = topology ] && cp topology/*.yaml Fuzz/corpus/topology/
  done
  exit 0
fi

# --- runs -------------------------------------------------------------------------------
max_len() {
  case "$1" in
    sync-frame) echo 65536 ;;  # past the 16 KiB compression threshold
    *) echo 16384 ;;
  esac
}

passed=0
failed=0
mkdir -p .build-fuzz/artifacts .build-fuzz/logs
for target in "${targets[@]}"; do
  mkdir -p ".build-fuzz/corpus/$target"
  limit=(-max_total_time="$seconds")
  [ -n "$runs" ] && limit=(-runs="$runs")
  log=".build-fuzz/logs/$target.log"
  echo "fuzz: $target ${limit[*]} (log: $log)"
  if SWIFT_BACKTRACE=enable=no "$out/fuzz-$target" "${limit[@]}" -max_len="$(max_len "$target")" -timeout=30 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=".build-fuzz/artifacts/$target-" \
    ".build-fuzz/corpus/$target" "Fuzz/corpus/$target" >"$log" 2>&1; then
    passed=$((passed + 1))
    grep -E '^Done |^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" | sed 's/^/  /'
  else
    failed=$((failed + 1))
    tail -n 60 "$log"
    echo "fuzz: $target FAILED; the input is in .build-fuzz/artifacts/ (replay: $out/fuzz-$target FILE)"
  fi
done
# The plain summary line CI reads.
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
