#!/usr/bin/env bash
# Tests the TAXII 2.1 server of two live nodes with the real Python clients.
#
#   scripts/taxii-check.sh PATH/TO/liaison     (nothing is built)
#   scripts/taxii-check.sh --medallion         (the same checks against medallion: a self-test)
#
# Renders scripts/taxii-check-topology.yaml into a temporary directory (its loopback ports
# moved to free ones, so that nodes or tests already on those ports do not get in the way):
# alpha and bravo, linked both ways, the links carrying the collection `stix`. Runs both,
# waits for their /readyz, then runs scripts/taxii_clients_check.py against their TAXII
# servers with the nodes' token files: taxii2-client discovers, posts a STIX envelope built
# with stix2 (TLP:GREEN/CLEAR, restricted and unknown markings) with the writer token at
# alpha, pages through it, reads versions and manifests, checks added_after, that the reader
# token cannot write, and that bravo, read with its reader token, gets every GREEN/CLEAR
# object and never a restricted or refused one; stix2-validator validates what comes back.
# One line per check (`ok:` / `FAIL:`). The nodes are stopped (by pid) and the directory
# removed however it ends; the exit status is non-zero when a check failed (or the nodes did
# not start).
#
# With --medallion the checks run against medallion, the OASIS reference server, on a free
# loopback port with HTTP Basic (one server: no federation, roles or markings): it shows that
# the check itself agrees with an independent implementation of TAXII 2.1.
#
# The clients live in their own venv, .build-taxii/venv (git-ignored), installed from PyPI
# at pinned versions on the first run and whenever the versions differ (python3 with venv
# and pip needed). Environment:
#   TAXII_CHECK_FEDERATION_TIMEOUT  seconds bravo may take to show alpha's objects (default 60)
#   TAXII_CHECK_KEEP=1              keep the node directories and logs (the path is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

pins="taxii2-client==2.3.0 stix2==3.0.2 stix2-validator==3.3.2 medallion==3.0.0"
venv="$root/.build-taxii/venv"
federation_timeout=${TAXII_CHECK_FEDERATION_TIMEOUT:-60}
usage="usage: scripts/taxii-check.sh PATH/TO/liaison | --medallion"
[ $# -eq 1 ] || { echo "$usage" >&2; exit 64; }
mode=liaison
if [ "$1" = --medallion ]; then
  mode=medallion
else
  liaison=$1
  [ -x "$liaison" ] || { echo "error: no liaison executable at $liaison (build it first, or pass its path)" >&2; exit 66; }
  liaison=$(cd "$(dirname "$liaison")" && pwd)/$(basename "$liaison")
fi

# --- the clients, in their own venv ----------------------------------------------------------
installed() {
  "$venv/bin/python" - 2>/dev/null <<'PY' || true
from importlib.metadata import version
print(" ".join(n + "==" + version(n) for n in ("taxii2-client", "stix2", "stix2-validator", "medallion")))
PY
}
if [ "$(installed)" != "$pins" ]; then
  echo "taxii-check: installing $pins into ${venv#"$root"/}"
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086 # the pins are words
  timeout 900 "$venv/bin/pip" install --quiet --disable-pip-version-check $pins
  [ "$(installed)" = "$pins" ] || { echo "error: ${venv#"$root"/} does not hold $pins" >&2; exit 1; }
fi

# --- the servers ------------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/liaison-taxii.XXXXXX")
pids=()       # the nodes (or medallion)
check_pid=""  # the clients' check (its timeout), while it runs
cleanup() {
  local status=$?
  if [ -n "$check_pid" ]; then
    kill -TERM "$check_pid" 2>/dev/null || true
    wait "$check_pid" 2>/dev/null || true
  fi
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    # A node stops within a second or two; one that does not after 10 s is killed.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
  done
  if [ "${TAXII_CHECK_KEEP:-}" = 1 ]; then
    echo "taxii-check: kept $work"
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Polls URL (every 0.2 s, at most 30 s) until it answers 200; gives up early when PID has
# exited. Extra curl arguments (credentials, headers) follow.
wait_ready() {
  local url=$1 pid=$2 deadline=$((SECONDS + 30))
  shift 2
  while [ "$SECONDS" -lt "$deadline" ]; do
    if curl --silent --fail --max-time 1 "$@" "$url" >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}

# The clients' check, in the background so that an interrupt or a TERM reaches the trap at
# once (which stops it); its own deadline is 540 s, this one's 600 s.
run_check() {
  local rc=0
  (exec timeout --kill-after=10 600 "$venv/bin/python" "$root/scripts/taxii_clients_check.py" "$@") &
  check_pid=$!
  wait "$check_pid" || rc=$?
  check_pid=""
  return "$rc"
}

# A loopback port free now (the kernel's pick; closed again at once).
free_port() {
  "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# medallion (the OASIS reference server) on a free loopback port with one read/write
# collection, alias `stix`, in its memory backend, HTTP Basic; sets $base, adds its pid to
# $pids.
medallion_collection=5a0c6f2e-52b0-4b1d-9a57-8d3c0b6a1e42
start_medallion() {
  port=$(free_port)
  "$venv/bin/python" - "$work" <<'PY'
import json, sys
work = sys.argv[1]
json.dump({
    "/discovery": {"title": "medallion (taxii-check self-test)", "description": "the OASIS reference server",
                   "default": "/api1/", "api_roots": ["/api1/"]},
    "api1": {
        "information": {"title": "API Root 1", "versions": ["application/taxii+json;version=2.1"],
                        "max_content_length": 10485760},
        "status": [],
        "collections": [{"id": "5a0c6f2e-52b0-4b1d-9a57-8d3c0b6a1e42", "title": "stix", "alias": "stix",
                         "can_read": True, "can_write": True, "media_types": ["application/stix+json;version=2.1"],
                         "objects": [], "manifest": []}],
    },
}, open(work + "/data.json", "w"))
json.dump({"backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend",
                       "filename": work + "/data.json"},
           "users": {"taxii-check": "taxii-check-password"}, "taxii": {"max_page_size": 100}},
          open(work + "/medallion.json", "w"))
PY
  "$venv/bin/medallion" --host 127.0.0.1 --port "$port" "$work/medallion.json" >"$work/medallion.log" 2>&1 &
  pids+=($!)
  base="http://127.0.0.1:$port"
  if ! wait_ready "$base/taxii2/" "${pids[-1]}" -u taxii-check:taxii-check-password \
      -H 'Accept: application/taxii+json;version=2.1'; then
    echo "error: medallion did not answer $base/taxii2/ within 30 s; its log:" >&2
    cat "$work/medallion.log" >&2
    return 1
  fi
}

status=0
if [ "$mode" = medallion ]; then
  start_medallion || exit 1
  echo "taxii-check: medallion at $base; $pins"
  run_check --alpha-url "$base" --basic-auth taxii-check:taxii-check-password --api-root-path /api1/ \
    --single-server-no-markings || status=$?
  [ "$status" -eq 0 ] || { echo "taxii-check: failures (exit $status); the end of medallion's log:" >&2; tail -n 40 "$work/medallion.log" >&2; }
  exit "$status"
fi

# Two nodes: the topology with each loopback port replaced by a free one (the same port maps
# to the same new one).
"$venv/bin/python" - scripts/taxii-check-topology.yaml "$work/topology.yaml" <<'PY'
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
"$liaison" topology render "$work/topology.yaml" --out "$work/nodes" >"$work/render.log"
for node in alpha bravo; do
  "$liaison" run --dir "$work/nodes/$node" >"$work/$node.log" 2>&1 &
  pids+=($!)
done
api() {  # the node's API base URL, from its federation.json
  "$venv/bin/python" -c 'import json, sys; a = json.load(open(sys.argv[1]))["api"]; print("http://127.0.0.1:%d" % a["port"])' \
    "$work/nodes/$1/federation.json"
}
alpha=$(api alpha)
bravo=$(api bravo)

# Ready: /readyz answers 200 on both (each polled for at most 30 s).
i=0
for node in alpha bravo; do
  url=$([ "$node" = alpha ] && echo "$alpha" || echo "$bravo")
  if ! wait_ready "$url/readyz" "${pids[$i]}"; then
    echo "error: $node did not answer $url/readyz within 30 s; its log:" >&2
    cat "$work/$node.log" >&2
    exit 1
  fi
  i=$((i + 1))
done
echo "taxii-check: alpha at $alpha, bravo at $bravo; $pins"

nodes=$work/nodes
run_check --alpha-url "$alpha" --bravo-url "$bravo" \
  --alpha-writer-token-file "$nodes/alpha/api-writer.token" \
  --alpha-reader-token-file "$nodes/alpha/api-reader.token" \
  --alpha-operator-token-file "$nodes/alpha/api.token" \
  --alpha-auditor-token-file "$nodes/alpha/api-auditor.token" \
  --bravo-reader-token-file "$nodes/bravo/api-reader.token" \
  --federation-timeout "$federation_timeout" || status=$?

# liaison feed pull from a real medallion into bravo: every object once, then nothing new;
# liaison export of alpha's collection validates with stix2-validator and imports at bravo.
feed_check() {
  start_medallion || return 1
  echo "taxii-check: feed pull from medallion at $base"
  "$venv/bin/python" - "$base" "$medallion_collection" <<'PY' || return 1
import sys, stix2
from taxii2client.v21 import Collection
base, collection = sys.argv[1], sys.argv[2]
objects = [stix2.Indicator(name="feed %d" % i, pattern="[ipv4-addr:value = '203.0.113.%d']" % i,
                           pattern_type="stix", valid_from="2026-01-01T00:00:00Z",
                           object_marking_refs=[stix2.TLP_GREEN]) for i in range(150)]
status = Collection("%s/api1/collections/%s/" % (base, collection), user="taxii-check",
                    password="taxii-check-password").add_objects(stix2.Bundle(objects=objects).serialize())
assert status.success_count == 150, status
PY
  printf 'taxii-check-password\n' >"$work/medallion.password"
  chmod 600 "$work/medallion.password"
  pull() {
    "$liaison" feed pull "$base/api1/" --dir "$nodes/bravo" --collection "$medallion_collection" --into stix \
      --user taxii-check --password-file "$work/medallion.password" --json
  }
  local first second
  first=$(pull) || { echo "FAIL: feed pull: the first pull failed" >&2; return 1; }
  second=$(pull) || { echo "FAIL: feed pull: the second pull failed" >&2; return 1; }
  "$venv/bin/python" - "$first" "$second" <<'PY' || return 1
import json, sys
first, second = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ok = first["read"] == 150 and first["tally"]["created"] == 150 and first["tally"]["refused"] == 0
print(("ok" if ok else "FAIL") + ": feed pull: the first pull read and created the 150 objects medallion serves (%s)" % first)
again = second["read"] == 0 and second["tally"]["created"] == 0
print(("ok" if again else "FAIL") + ": feed pull: a second pull brings nothing new (%s)" % second)
sys.exit(0 if ok and again else 1)
PY
  # The daemon pulls a feed its topology declares: a node of its own, polled until its log says
  # it took the 150 objects in (at most 60 s), then stopped by its pid.
  local feedport
  feedport=$(free_port)
  cat >"$work/feeds.yaml" <<EOF_TOPOLOGY
federation: feeds
partners:
  delta:
    endpoints: [127.0.0.1:$feedport]
    api: 127.0.0.1:$((feedport + 1))
    feeds:
      - url: $base/api1/
        collection: $medallion_collection
        into: stix
        every: 10
        user: taxii-check
        password-file: $work/medallion.password
EOF_TOPOLOGY
  "$liaison" topology render "$work/feeds.yaml" --out "$work/feednodes" >/dev/null || return 1
  "$liaison" run --dir "$work/feednodes/delta" >"$work/delta.log" 2>&1 &
  pids+=($!)
  local polled=""
  for _ in $(seq 1 120); do
    if grep -q 'liaison.outcome=created 150 liaison.read=150 .*feed pulled' "$work/delta.log"; then polled=yes; break; fi
    sleep 0.5
  done
  if [ -n "$polled" ]; then
    echo "ok: feeds: the daemon pulled the feed its topology declares (150 objects created)"
  else
    echo "FAIL: feeds: the daemon did not pull its topology's feed within 60 s; its log:" >&2
    tail -n 20 "$work/delta.log" >&2
    return 1
  fi
  "$liaison" export --dir "$nodes/alpha" --collection stix --out "$work/export.json" || return 1
  if "$venv/bin/stix2_validator" "$work/export.json" >"$work/validator.log" 2>&1; then
    echo "ok: export: alpha's collection as a bundle validates with stix2-validator"
  else
    echo "FAIL: export: stix2-validator refused alpha's bundle:" >&2
    tail -n 20 "$work/validator.log" >&2
    return 1
  fi
  # At bravo: alpha's objects released to bravo are taken in; those that stay with alpha
  # (AMBER, RED, unmarked: REL TO empty) are refused by name; --skip-refused takes the others.
  if "$liaison" import "$work/export.json" --dir "$nodes/bravo" --collection stix >"$work/import.log" 2>&1; then
    echo "FAIL: import: bravo took in alpha's whole bundle, its objects released to alpha alone included" >&2
    return 1
  fi
  if ! grep -q "does not release it to bravo" "$work/import.log"; then
    echo "FAIL: import: bravo did not name the objects released to alpha alone:" >&2
    cat "$work/import.log" >&2
    return 1
  fi
  if "$liaison" import "$work/export.json" --dir "$nodes/bravo" --collection stix --skip-refused \
      >"$work/import.log" 2>&1; then
    echo "ok: import: the exported bundle is taken in at bravo but for what is released to alpha alone ($(tail -n 1 "$work/import.log"))"
  else
    echo "FAIL: import: bravo refused alpha's exported bundle:" >&2
    cat "$work/import.log" >&2
    return 1
  fi
}
[ "$status" -ne 0 ] || feed_check || status=$?

# TAXII over HTTPS with client certificates (docs/taxii.md): a node of its own whose
# topology gives it an HTTPS listener with a certificate for 127.0.0.1 and two client
# certificates (a reader's and a writer's), made here with openssl; a third is not listed.
https_check() {
  local pki=$work/pki name
  mkdir -p "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$pki/server.key" -out "$pki/server.pem" 2>/dev/null || return 1
  for name in reader writer stranger; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=$name" \
      -keyout "$pki/$name.key" -out "$pki/$name.pem" 2>/dev/null || return 1
  done
  fingerprint() { openssl x509 -in "$pki/$1.pem" -outform DER | sha256sum | cut -d' ' -f1; }
  local port
  port=$(free_port)
  cat >"$work/https.yaml" <<EOF_TOPOLOGY
federation: https
partners:
  echo:
    endpoints: [127.0.0.1:$port]
    api: 127.0.0.1:$((port + 1))
    taxii:
      listen: 127.0.0.1:$((port + 2))
      certificate: $pki/server.pem
      key: $pki/server.key
      clients:
        - {name: analysts, sha256: $(fingerprint reader), role: reader}
        - {name: ingest, sha256: $(fingerprint writer), role: writer}
EOF_TOPOLOGY
  "$liaison" topology render "$work/https.yaml" --out "$work/httpsnodes" >/dev/null || return 1
  "$liaison" run --dir "$work/httpsnodes/echo" >"$work/echo.log" 2>&1 &
  pids+=($!)
  local url=https://127.0.0.1:$((port + 2))
  if ! wait_ready "$url/taxii2/" "${pids[-1]}" --cacert "$pki/server.pem" --cert "$pki/reader.pem" \
      --key "$pki/reader.key" -H 'Accept: application/taxii+json;version=2.1'; then
    echo "FAIL: https: echo did not answer $url/taxii2/ within 30 s; its log:" >&2
    tail -n 20 "$work/echo.log" >&2
    return 1
  fi
  # requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE override a session's own CA file:
  # both are unset, so the clients trust exactly the certificate made above.
  env -u REQUESTS_CA_BUNDLE -u CURL_CA_BUNDLE \
    "$venv/bin/python" - "$url" "$pki" "$work/httpsnodes/echo/api-reader.token" <<'PY'
import sys, requests, stix2
from taxii2client.v21 import Server, Collection
url, pki, token_file = sys.argv[1], sys.argv[2], sys.argv[3]
ca = pki + "/server.pem"
def cert(name): return (pki + "/%s.pem" % name, pki + "/%s.key" % name)
failed = 0
def check(ok, what):
    global failed
    print(("ok" if ok else "FAIL") + ": https: " + what)
    failed += 0 if ok else 1
def status(**kwargs):
    try:
        return requests.get(url + "/taxii2/liaison/collections/", verify=ca, timeout=30,
                            headers={"Accept": "application/taxii+json;version=2.1", **kwargs.pop("headers", {})},
                            **kwargs).status_code
    except requests.exceptions.SSLError:
        return "handshake refused"
    except requests.exceptions.ConnectionError as error:
        return "handshake refused" if "SSL" in str(error) or "reset" in str(error).lower() else repr(error)

server = Server(url + "/taxii2/", verify=ca, cert=cert("writer"))
stix = next(c for c in server.api_roots[0].collections if c.title == "stix")
check(stix.can_write, "discovery and collections with the writer's certificate (can_write true)")
indicator = stix2.Indicator(name="over https", pattern="[ipv4-addr:value = '192.0.2.7']", pattern_type="stix",
                            valid_from="2026-01-01T00:00:00Z", object_marking_refs=[stix2.TLP_GREEN])
added = stix.add_objects(stix2.Bundle(objects=[indicator]).serialize())
check(added.success_count == 1, "the writer's certificate adds an object (%s)" % added.status)
reader = Collection(stix.url, verify=ca, cert=cert("reader"))
objects = reader.get_objects().get("objects", [])
check([o["id"] for o in objects] == [indicator.id], "the reader's certificate reads it back")
check(not reader.can_write, "the reader's certificate sees can_write false")
forced = requests.post(stix.url + "objects/", verify=ca, cert=cert("reader"), timeout=30,
                       data=stix2.Bundle(objects=[indicator]).serialize(),
                       headers={"Accept": "application/taxii+json;version=2.1",
                                "Content-Type": "application/taxii+json;version=2.1"}).status_code
check(forced == 403, "the reader's certificate may not add objects (a forced POST: %s)" % forced)
check(status(cert=cert("stranger")) == "handshake refused", "a certificate not listed is refused in the handshake")
check(status() == 401, "no certificate and no token: 401")
token = open(token_file).read().strip()
check(status(headers={"Authorization": "Bearer " + token}) == 200, "no certificate, the reader's token: 200")
other = requests.get(url + "/v1/items", verify=ca, cert=cert("writer"), timeout=30).status_code
check(other == 404, "the HTTPS listener serves TAXII only (/v1/items: %s)" % other)
wrong = status(cert=cert("writer"), headers={"Authorization": "Bearer " + "0" * 64})
check(wrong == 401, "a wrong token is a 401 even on a connection with a listed certificate (%s)" % wrong)
# Connections per address are bounded (32): the 33rd from one address is closed at once,
# before any TLS; those held open are not disturbed.
import socket
host, port = url.split("//")[1].split(":")
held = [socket.create_connection((host, int(port)), timeout=10) for _ in range(32)]
extra = socket.create_connection((host, int(port)), timeout=10)
try:
    closed = extra.recv(1) == b""
except (ConnectionResetError, socket.timeout) as error:
    closed = isinstance(error, ConnectionResetError)
check(closed, "a 33rd connection from one address is closed before its handshake")
for s in held + [extra]:
    s.close()
sys.exit(1 if failed else 0)
PY
}
[ "$status" -ne 0 ] || https_check || status=$?

if [ "$status" -ne 0 ]; then
  for node in alpha bravo; do
    echo "taxii-check: failures (exit $status); the end of $node's log:" >&2
    tail -n 40 "$work/$node.log" >&2
  done
fi
exit "$status"
