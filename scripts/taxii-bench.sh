#!/usr/bin/env bash
# TAXII 2.1 throughput, side by side: a Liaison node against medallion (the OASIS reference
# TAXII server), with the same client (taxii2-client) for both.
#
#   scripts/taxii-bench.sh PATH/TO/liaison [--objects N] [--batch B] [--per-page P] [--rounds R] [--json]
#   scripts/taxii-bench.sh --medallion-only [--objects N] [--batch B] [--per-page P] [--rounds R] [--json]
#   scripts/taxii-bench.sh PATH/TO/liaison --liaison-only [...]   (no medallion: one build against another)
#
# Defaults: N=10000 objects, B=500 objects per POST, P=1000 per page, R=3 rounds. Nothing is
# built: pass a liaison executable (a release build gives the figures worth quoting).
#
# Generates N STIX 2.1 indicators once (deterministic, 1024 bytes of JSON each, TLP:GREEN),
# then runs R rounds; each round starts a fresh server, measures, and stops it, Liaison first
# and then medallion, one server running at a time:
#   Liaison    one node, alpha of scripts/taxii-check-topology.yaml rendered anew each round
#              (a new node directory; its loopback ports moved to free ones; bravo is rendered
#              but not started), the writer token, its TAXII api root;
#   medallion  a new `medallion` process each round on a free loopback port, its memory
#              backend loaded from an empty collection (alias `stix`), HTTP Basic,
#              max_page_size = P (so per_request P is honoured), session_timeout 600 s (so a
#              slow paged read does not lose its cursor).
# scripts/taxii_bench.py measures against each: add_objects in envelopes of B (every status
# waited for until final), a paged read of the objects (as_pages, per_request P) and one of
# the manifest, checking that every object came back exactly once. The report gives the
# median and every round's value per server and figure and the ratio Liaison/medallion, with
# nproc, the date and the versions; --json prints the table on stderr and JSON on stdout.
#
# Not like for like, and the output says so: a Liaison POST answers once the objects are
# committed to SQLite with fsync (synchronous=FULL) as signed ops; medallion's memory backend
# keeps them in RAM only.
#
# The client lives in .build-taxii/venv (git-ignored), shared with scripts/taxii-check.sh and
# installed at the same pinned versions when missing. Every process started here is stopped by
# its pid, whatever happens. Environment:
#   TAXII_BENCH_TIMEOUT  seconds one server's measure run (one round) may take (default 3600)
#   TAXII_BENCH_KEEP=1   keep the work directory (objects, node dirs, logs, raw results)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

pins="taxii2-client==2.3.0 stix2==3.0.2 stix2-validator==3.3.2 medallion==3.0.0"
venv="$root/.build-taxii/venv"
measure_timeout=${TAXII_BENCH_TIMEOUT:-3600}
usage="usage: scripts/taxii-bench.sh PATH/TO/liaison [--liaison-only] | --medallion-only  [--objects N] [--batch B] [--per-page P] [--rounds R] [--json]"

liaison=""
medallion_only=0
liaison_only=0
objects=10000
batch=500
per_page=1000
rounds=3
json=0
[ $# -ge 1 ] || { echo "$usage" >&2; exit 64; }
while [ $# -gt 0 ]; do
  case $1 in
    --medallion-only) medallion_only=1 ;;
    --liaison-only) liaison_only=1 ;;
    --objects|--batch|--per-page|--rounds)
      [ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "error: $1 takes a positive whole number" >&2; exit 64; }
      case $1 in
        --objects) objects=$2 ;;
        --batch) batch=$2 ;;
        --per-page) per_page=$2 ;;
        --rounds) rounds=$2 ;;
      esac
      shift ;;
    --json) json=1 ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) echo "error: unknown option $1" >&2; echo "$usage" >&2; exit 64 ;;
    *) [ -z "$liaison" ] || { echo "$usage" >&2; exit 64; }; liaison=$1 ;;
  esac
  shift
done
if [ "$medallion_only" = 1 ]; then
  [ -z "$liaison" ] || { echo "error: --medallion-only takes no liaison path" >&2; exit 64; }
else
  [ -n "$liaison" ] || { echo "$usage" >&2; exit 64; }
  [ -x "$liaison" ] || { echo "error: no liaison executable at $liaison (build it first, or pass its path)" >&2; exit 66; }
  liaison=$(cd "$(dirname "$liaison")" && pwd)/$(basename "$liaison")
fi
say() { echo "taxii-bench: $*" >&2; }

# --- the client, in its own venv (the same as scripts/taxii-check.sh's) ----------------------
installed() {
  "$venv/bin/python" - 2>/dev/null <<'PY' || true
from importlib.metadata import version
print(" ".join(n + "==" + version(n) for n in ("taxii2-client", "stix2", "stix2-validator", "medallion")))
PY
}
if [ "$(installed)" != "$pins" ]; then
  say "installing $pins into ${venv#"$root"/}"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086 # the pins are words
  timeout 900 "$venv/bin/pip" install --quiet --disable-pip-version-check $pins
  [ "$(installed)" = "$pins" ] || { echo "error: ${venv#"$root"/} does not hold $pins" >&2; exit 1; }
fi
py="$venv/bin/python"
bench="$root/scripts/taxii_bench.py"

# --- processes: the running server and the running Python step, each by pid --------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/liaison-taxii-bench.XXXXXX")
server_pid=""
step_pid=""
stop_server() {
  local pid=$server_pid
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  # A node or medallion stops within a second or two; one that does not after 10 s is killed.
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
  server_pid=""
}
cleanup() {
  local status=$?
  if [ -n "$step_pid" ]; then
    kill -TERM "$step_pid" 2>/dev/null || true
    wait "$step_pid" 2>/dev/null || true
  fi
  stop_server
  if [ "${TAXII_BENCH_KEEP:-}" = 1 ]; then
    say "kept $work"
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A Python step (generate, measure, report), in the background so that an interrupt or a TERM
# reaches the trap at once; bounded by SECONDS (and the step's own deadline inside).
step() {
  local seconds=$1 rc=0
  shift
  (exec timeout --kill-after=10 "$seconds" "$py" "$bench" "$@") &
  step_pid=$!
  wait "$step_pid" || rc=$?
  step_pid=""
  return "$rc"
}

# Polls URL (every 0.2 s, at most 30 s) until it answers 200; gives up early when the server
# has exited. Extra curl arguments (credentials, headers) follow.
wait_ready() {
  local url=$1 deadline=$((SECONDS + 30))
  shift
  while [ "$SECONDS" -lt "$deadline" ]; do
    if curl --silent --fail --max-time 1 "$@" "$url" >/dev/null 2>&1; then return 0; fi
    kill -0 "$server_pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# --- the objects, once; what the report says about the machine and versions --------------------
step 900 generate --objects "$objects" --out "$work/objects.json"

"$py" - "$work/meta.json" "$objects" "$batch" "$per_page" "$rounds" "$(nproc)" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  "$(uname -srm)" "$(df -PT "$work" | awk 'NR == 2 { print $2 }')" "$liaison" \
  "$( [ -n "$liaison" ] && "$liaison" --version 2>/dev/null || true)" \
  "$( [ -n "$liaison" ] && sha256sum "$liaison" | cut -d' ' -f1 || true)" \
  "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" <<'PY'
import json, re, sys
(out, n, b, p, r, nproc, date, uname, fs, binary, version, sha, head) = sys.argv[1:]
cpu = "?"
try:
    cpu = re.search(r"^model name\s*:\s*(.*)$", open("/proc/cpuinfo").read(), re.M).group(1)
except Exception:
    pass
json.dump({"date": date,
           "parameters": {"objects": int(n), "batch": int(b), "per_page": int(p), "rounds": int(r),
                          "medallion_max_page_size": int(p)},
           "machine": {"nproc": int(nproc), "uname": uname, "cpu": cpu, "work_fs": fs},
           "versions": {"liaison": version or None, "liaison_binary": binary or None, "liaison_sha256": sha or "",
                        "liaison_source_head": head}},
          open(out, "w"), indent=1)
PY
"$py" "$bench" versions --meta "$work/meta.json"

# --- one round of one server --------------------------------------------------------------------
round_liaison() {
  local r=$1 dir="$work/round$1/liaison"
  mkdir -p "$dir"
  # The topology with each loopback port replaced by a free one (as scripts/taxii-check.sh does).
  "$py" - scripts/taxii-check-topology.yaml "$dir/topology.yaml" <<'PY'
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
  "$liaison" topology render "$dir/topology.yaml" --out "$dir/nodes" >"$dir/render.log"
  "$liaison" run --dir "$dir/nodes/alpha" >"$dir/alpha.log" 2>&1 &
  server_pid=$!
  local url
  url=$("$py" -c 'import json, sys; a = json.load(open(sys.argv[1]))["api"]; print("http://127.0.0.1:%d" % a["port"])' \
    "$dir/nodes/alpha/federation.json")
  if ! wait_ready "$url/readyz"; then
    echo "error: alpha did not answer $url/readyz within 30 s; its log:" >&2
    tail -n 40 "$dir/alpha.log" >&2
    exit 1
  fi
  say "round $r: Liaison alpha at $url (pid $server_pid, $dir/nodes/alpha)"
  local rc=0
  step $((measure_timeout + 60)) measure --server liaison --round "$r" --url "$url" \
    --token-file "$dir/nodes/alpha/api-writer.token" --objects-file "$work/objects.json" \
    --batch "$batch" --per-page "$per_page" --timeout "$measure_timeout" --out "$work/result-$r-liaison.json" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "error: the Liaison round $r failed (exit $rc); the end of alpha's log:" >&2
    tail -n 40 "$dir/alpha.log" >&2
    exit 1
  fi
  stop_server
  [ "${TAXII_BENCH_KEEP:-}" = 1 ] || rm -rf "$dir/nodes"
}

round_medallion() {
  local r=$1 dir="$work/round$1/medallion" port
  mkdir -p "$dir"
  port=$(free_port)
  "$py" - "$dir" "$per_page" <<'PY'
import json, sys
d, per_page = sys.argv[1], int(sys.argv[2])
json.dump({
    "/discovery": {"title": "medallion (taxii-bench)", "description": "the OASIS reference server",
                   "default": "/api1/", "api_roots": ["/api1/"]},
    "api1": {
        "information": {"title": "API Root 1", "versions": ["application/taxii+json;version=2.1"],
                        "max_content_length": 67108864},
        "status": [],
        "collections": [{"id": "5a0c6f2e-52b0-4b1d-9a57-8d3c0b6a1e42", "title": "stix", "alias": "stix",
                         "can_read": True, "can_write": True, "media_types": ["application/stix+json;version=2.1"],
                         "objects": [], "manifest": []}],
    },
}, open(d + "/data.json", "w"))
json.dump({"backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
                       "filename": d + "/data.json", "session_timeout": 600},
           "users": {"taxii-bench": "taxii-bench-password"}, "taxii": {"max_page_size": per_page}},
          open(d + "/medallion.json", "w"))
PY
  "$venv/bin/medallion" --host 127.0.0.1 --port "$port" "$dir/medallion.json" >"$dir/medallion.log" 2>&1 &
  server_pid=$!
  local url="http://127.0.0.1:$port"
  if ! wait_ready "$url/taxii2/" -u taxii-bench:taxii-bench-password -H 'Accept: application/taxii+json;version=2.1'; then
    echo "error: medallion did not answer $url/taxii2/ within 30 s; its log:" >&2
    tail -n 40 "$dir/medallion.log" >&2
    exit 1
  fi
  say "round $r: medallion at $url (pid $server_pid)"
  local rc=0
  step $((measure_timeout + 60)) measure --server medallion --round "$r" --url "$url" \
    --basic-auth taxii-bench:taxii-bench-password --objects-file "$work/objects.json" \
    --batch "$batch" --per-page "$per_page" --timeout "$measure_timeout" --out "$work/result-$r-medallion.json" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "error: the medallion round $r failed (exit $rc); the end of its log:" >&2
    tail -n 40 "$dir/medallion.log" >&2
    exit 1
  fi
  stop_server
}

for r in $(seq 1 "$rounds"); do
  [ "$medallion_only" = 1 ] || round_liaison "$r"
  [ "$liaison_only" = 1 ] || round_medallion "$r"
done

# The Liaison api root, for the report (the discovery's default, as the client used it).
if [ "$medallion_only" = 0 ]; then
  "$py" - "$work/meta.json" "$work/result-1-liaison.json" <<'PY'
import json, sys
meta = json.load(open(sys.argv[1]))
url = json.load(open(sys.argv[2]))["collection_url"]
meta["versions"]["liaison_api_root"] = "/" + url.split("/", 3)[3].split("collections/")[0]
json.dump(meta, open(sys.argv[1], "w"), indent=1)
PY
fi

args=(report --meta "$work/meta.json")
[ "$json" = 0 ] || args+=(--json)
step 120 "${args[@]}" "$work"/result-*.json
