#!/usr/bin/env bash
# Tests a live node's HTTP API against docs/openapi.yaml with schemathesis.
#
#   scripts/openapi-check.sh [LIAISON]       (default: .build/debug/liaison; nothing is built)
#
# Renders topology/demo.yaml into a temporary directory (its loopback ports moved to free
# ones, so that nodes or tests already on the demo's ports do not get in the way), runs
# alpha and bravo, waits for alpha's /readyz, then runs schemathesis against alpha: every
# operation with the operator's token (generated valid and invalid input, and chains along
# the description's links), then again, briefly, with the auditor's. It checks that no
# answer is a 5xx, that every status code, Content-Type, JSON body and documented header
# is one the description gives for the operation, and that the bearer token is not
# ignored. The nodes are stopped (by pid) and the directory removed however it ends; the
# exit status is non-zero when schemathesis found a failure (or the nodes did not start).
#
# Schemathesis lives in its own venv, .build-openapi/venv (git-ignored), installed from
# PyPI on the first run (python3 with venv and pip needed). Environment:
#   OPENAPI_CHECK_EXAMPLES  test cases per operation and phase (default 25)
#   OPENAPI_CHECK_SEED      the generation seed (default a fixed one, so runs repeat)
#   OPENAPI_CHECK_KEEP=1    keep the node directories and logs (the path is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

schemathesis_version=4.32.5
venv="$root/.build-openapi/venv"
liaison=${1:-.build/debug/liaison}
[ -x "$liaison" ] || { echo "error: no liaison executable at $liaison (build it first, or pass its path)" >&2; exit 66; }
liaison=$(cd "$(dirname "$liaison")" && pwd)/$(basename "$liaison")
examples=${OPENAPI_CHECK_EXAMPLES:-25}
seed=${OPENAPI_CHECK_SEED:-20261130}

# --- schemathesis, in its own venv ---------------------------------------------------------
if [ "$("$venv/bin/st" --version 2>/dev/null || true)" != "st, version $schemathesis_version" ]; then
  echo "openapi-check: installing schemathesis $schemathesis_version into ${venv#"$root"/}"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

# --- two nodes of the demo federation -----------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/liaison-openapi.XXXXXX")
pids=()    # the nodes
st_pid=""  # schemathesis (its timeout), while it runs
cleanup() {
  local status=$?
  if [ -n "$st_pid" ]; then
    kill -TERM "$st_pid" 2>/dev/null || true
    wait "$st_pid" 2>/dev/null || true
  fi
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    # A node stops within a second or two; one that does not after 10 s is killed.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
  done
  if [ "${OPENAPI_CHECK_KEEP:-}" = 1 ]; then
    echo "openapi-check: kept $work"
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The demo topology with each loopback port replaced by a free one (the same port maps to
# the same new one).
"$venv/bin/python" - topology/demo.yaml "$work/demo.yaml" <<'PY'
import re, socket, sys
text = open(sys.argv[1]).read()
sockets, ports = [], {}
def free(match):
    old = match.group(1)
    if old not in ports:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports[old] = str(s.getsockname()[1])
    return "127.0.0.1:" + ports[old]
open(sys.argv[2], "w").write(re.sub(r"127\.0\.0\.1:(\d+)", free, text))
for s in sockets:
    s.close()
PY
"$liaison" topology render "$work/demo.yaml" --out "$work/nodes" >"$work/render.log"
for node in alpha bravo; do
  "$liaison" run --dir "$work/nodes/$node" >"$work/$node.log" 2>&1 &
  pids+=($!)
done
port=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["api"]["port"])' "$work/nodes/alpha/federation.json")
base="http://127.0.0.1:$port"
token=$(cat "$work/nodes/alpha/api.token")

# Ready: /readyz answers 200 (polled every 0.2 s, for at most 30 s).
ready=false
deadline=$((SECONDS + 30))
while [ "$SECONDS" -lt "$deadline" ]; do
  if curl --silent --fail --max-time 1 "$base/readyz" >/dev/null 2>&1; then ready=true; break; fi
  kill -0 "${pids[0]}" 2>/dev/null || break
  sleep 0.2
done
if [ "$ready" != true ]; then
  echo "error: alpha did not answer $base/readyz within 30 s; its log:" >&2
  cat "$work/alpha.log" >&2
  exit 1
fi
echo "openapi-check: alpha at $base, bravo running; schemathesis $schemathesis_version, $examples examples per operation, seed $seed"

# --- schemathesis -------------------------------------------------------------------------
# One worker and a bounded number of examples: the machine is shared. Every request has a
# timeout, and each run a deadline (SECONDS, the first argument), so no generated body can
# hang it. It runs in the background and the script waits for it, so that an interrupt or a
# TERM reaches the trap at once (which stops it). Schemathesis and Hypothesis keep caches in
# the working directory: theirs is the temporary one.
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,ignored_auth
schemathesis() {
  local limit=$1 rc=0
  shift
  (cd "$work" && exec timeout --kill-after=10 "$limit" "$venv/bin/st" run "$root/docs/openapi.yaml" \
    --url "$base" --checks "$checks" --seed "$seed" --workers 1 --request-timeout 30 \
    --generation-database none --no-color "$@") &
  st_pid=$!
  wait "$st_pid" || rc=$?
  st_pid=""
  return "$rc"
}
status=0
# Every operation with the operator's token: all phases (the description's examples,
# boundary and invalid values, random input, and chains along its links: create an item,
# then read, change, recall and delete it).
echo "openapi-check: every operation, operator token"
schemathesis 900 --header "Authorization: Bearer $token" --max-examples "$examples" || status=$?
# Every operation again with the auditor's token, briefly: item views without values
# (`valuesHidden`), and the 403 of every route it may not use.
if [ "$status" -eq 0 ]; then
  echo "openapi-check: every operation, auditor token"
  schemathesis 300 --header "Authorization: Bearer $(cat "$work/nodes/alpha/api-auditor.token")" \
    --phases examples,coverage,fuzzing --max-examples 10 || status=$?
fi
if [ "$status" -ne 0 ]; then
  echo "openapi-check: schemathesis found failures (exit $status); the end of alpha's log:" >&2
  tail -n 40 "$work/alpha.log" >&2
fi
exit "$status"
