#!/usr/bin/env python3
"""TAXII 2.1 throughput, measured with taxii2-client: Liaison against medallion.

Run by scripts/taxii-bench.sh, which starts a fresh server for every round and calls this
script three ways:

    taxii_bench.py generate --objects N --out objects.json
        N STIX 2.1 indicators, the same every time (ids are uuid5 of the index; fixed
        timestamps): a name, a description padded so that each object is exactly 1024 bytes
        of JSON as taxii2-client sends it, a pattern, valid_from, and TLP:GREEN (the TLP 2.0
        marking definition) in object_marking_refs. Every one parsed with stix2 once.

    taxii_bench.py measure --url http://127.0.0.1:PORT (--token-file F | --basic-auth U:P) \
        --objects-file objects.json --batch B --per-page P --server NAME --out result.json
        Against one fresh, empty server (the collection with alias `stix` of the discovery's
        default API root), in this order, each timed on its own:
          add_objects  the objects posted in envelopes of B (Collection.add_objects; every
                       status not yet final waited for with Status.wait_until_final, polled
                       every 0.05 s) -> objects/s and wall time. The envelopes are serialized
                       before the clock starts, exactly as add_objects would serialize a dict.
          read         as_pages(Collection.get_objects, per_request=P) over the whole
                       collection -> objects/s.
          manifest     as_pages(Collection.get_manifest, per_request=P) -> records/s.
        Checked after each (outside the timing): every POST complete with N successes and no
        failure; every object read back exactly once and none else, its pattern and
        description as posted; every object once in the manifest with version = modified.
        Any failed check ends the run with exit status 1 (the figures would be meaningless).

    taxii_bench.py report --meta meta.json RESULT.json... [--json]
        The median and the values of every round per server and figure, and the ratio of the
        medians Liaison/medallion: a short table on stdout, or (--json) the table on stderr and
        one JSON document on stdout.

The client is the same for both servers: one taxii2-client connection (a requests session),
one request at a time, a per-request timeout (taxii2-client sets none) and a deadline for
the whole measure run.
"""

import argparse
import collections
import datetime
import json
import logging
import platform
import re
import signal
import statistics
import sys
import time
import uuid

import requests

TLP2_GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
NAMESPACE = uuid.UUID("6f1f5cf3-3e0b-4d5c-9a0e-6f1e0b7a1c42")   # the benchmark's own uuid5 namespace
OBJECT_BYTES = 1024                  # each object's size as JSON (json.dumps defaults, as add_objects sends it)
REQUEST_TIMEOUT = 1200               # seconds, every HTTP request (medallion's memory backend answers the
                                     # first page of a read after sorting the whole collection against its
                                     # manifest, quadratic in the objects: minutes at 10000)
STATUS_POLL = 0.05                   # seconds between two polls of a status not yet final
STATUS_TIMEOUT = 120                 # seconds a status may take to become final
FILLER = ("Deterministic benchmark padding for the TAXII throughput comparison between Liaison and "
          "medallion; the same text for every run so that both servers store identical bytes. ")

DURABILITY = {
    "liaison": "durable: the 202 comes after an fsync'd SQLite commit (WAL, synchronous=FULL) of signed ops",
    "medallion": "not durable: memory backend, objects held in RAM only (lost when the process ends)",
}


class BenchError(Exception):
    """A check failed or the server misbehaved: the figures are not worth reporting."""


def log(message):
    print("taxii-bench: " + message, file=sys.stderr, flush=True)


# --- generate --------------------------------------------------------------------------------
def make_object(i):
    obj = {
        "type": "indicator",
        "spec_version": "2.1",
        "id": "indicator--%s" % uuid.uuid5(NAMESPACE, "taxii-bench-%d" % i),
        "created": "2024-01-01T00:00:00.000Z",
        "modified": "2024-01-01T00:00:00.000Z",
        "name": "taxii-bench indicator %06d" % i,
        "description": "",
        "indicator_types": ["malicious-activity"],
        "pattern": "[ipv4-addr:value = '10.%d.%d.%d']" % ((i >> 16) & 255, (i >> 8) & 255, i & 255),
        "pattern_type": "stix",
        "valid_from": "2024-01-01T00:00:00Z",
        "object_marking_refs": [TLP2_GREEN],
    }
    room = OBJECT_BYTES - len(json.dumps(obj, ensure_ascii=False).encode())
    head = "Indicator %06d of the taxii-bench set. " % i
    text = head + FILLER * (room // len(FILLER) + 1)
    obj["description"] = text[:room]
    assert len(json.dumps(obj, ensure_ascii=False).encode()) == OBJECT_BYTES
    return obj


def generate(args):
    if args.objects < 1:
        raise SystemExit("--objects must be at least 1")
    objects = [make_object(i) for i in range(args.objects)]
    import stix2   # only here: parsing all of them once shows they are valid STIX 2.1
    started = time.perf_counter()
    for obj in objects:
        stix2.parse(obj, allow_custom=False)
    ids = {o["id"] for o in objects}
    if len(ids) != len(objects):
        raise SystemExit("generated ids are not distinct")
    with open(args.out, "w") as f:
        json.dump(objects, f)
    log("generated %d indicators of %d bytes each (%s); stix2 parsed them all in %.1f s"
        % (len(objects), OBJECT_BYTES, args.out, time.perf_counter() - started))
    return 0


# --- measure ---------------------------------------------------------------------------------
class Credentials(requests.auth.AuthBase):
    """Bearer token (Liaison) or HTTP Basic (medallion); counts the bytes of every response."""

    def __init__(self, token=None, basic=None):
        self.token = token
        self.basic = requests.auth.HTTPBasicAuth(*basic) if basic else None
        self.received = 0
        self.requests = 0

    def _count(self, response, *args, **kwargs):
        self.requests += 1
        self.received += len(response.content)

    def __call__(self, request):
        if self.token is not None:
            request.headers["Authorization"] = "Bearer " + self.token
        else:
            request = self.basic(request)
        request.register_hook("response", self._count)
        return request


class TimeoutAdapter(requests.adapters.HTTPAdapter):
    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = REQUEST_TIMEOUT
        return super().send(request, **kwargs)


def bounded(endpoint):
    endpoint._conn.session.mount("http://", TimeoutAdapter())
    endpoint._conn.session.mount("https://", TimeoutAdapter())
    return endpoint


def open_collection(url, creds, alias):
    from taxii2client.v21 import Server
    server = bounded(Server(url.rstrip("/") + "/taxii2/", auth=creds))
    server.refresh()
    root = server.default or (server.api_roots[0] if server.api_roots else None)
    if root is None:
        raise BenchError("%s: discovery lists no api root" % url)
    bounded(root)
    found = [c for c in root.collections if c.alias == alias]
    if not found:
        raise BenchError("%s: no collection with alias %r among %s" % (url, alias, [c.alias for c in root.collections]))
    col = found[0]
    if not (col.can_read and col.can_write):
        raise BenchError("%s: collection %r: can_read %s, can_write %s" % (url, alias, col.can_read, col.can_write))
    return root, col


def paged(func, per_request, n, what):
    """Every envelope of as_pages(func, per_request); stops on a page with more and no next, or
    on more pages than the objects could fill."""
    from taxii2client.v21 import as_pages
    pages, times = [], []
    started = time.perf_counter()
    for envelope in as_pages(func, per_request):
        times.append(time.perf_counter() - started)
        pages.append(envelope)
        if envelope.get("more") and not envelope.get("next"):
            raise BenchError("%s: page %d has more:true and no next" % (what, len(pages)))
        if len(pages) > n + 2:
            raise BenchError("%s: more than %d pages for %d objects" % (what, n + 2, n))
    return pages, times[0] if times else 0.0


def stamp(value):
    """A STIX/TAXII timestamp (any number of fraction digits) as (seconds part, microseconds)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", value or "")
    if not match:
        return None
    return match.group(1), int(((match.group(2) or "") + "000000")[:6])


def rate(count, seconds):
    return count / seconds if seconds > 0 else float("inf")


def measure(args):
    with open(args.objects_file) as f:
        objects = json.load(f)
    n = len(objects)
    posted = {o["id"]: o for o in objects}
    if args.token_file:
        with open(args.token_file) as f:
            creds = Credentials(token=f.read().strip())
    else:
        creds = Credentials(basic=tuple(args.basic_auth.split(":", 1)))

    def out_of_time(signum, frame):
        raise BenchError("the measure run took longer than %d s" % args.timeout)
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.timeout)

    root, col = open_collection(args.url, creds, args.collection_alias)
    if col.get_manifest(limit=1).get("objects"):
        raise BenchError("the collection is not empty: the server is not fresh")
    result = {"server": args.server, "round": args.round, "objects": n, "batch": args.batch,
              "per_page": args.per_page, "collection_url": col.url}

    # 1. add_objects ---------------------------------------------------------------------------
    envelopes = [json.dumps({"objects": objects[i:i + args.batch]}, ensure_ascii=False).encode("utf-8")
                 for i in range(0, n, args.batch)]
    initial = collections.Counter()
    latencies, statuses = [], []
    creds.received = creds.requests = 0
    started = time.perf_counter()
    for envelope in envelopes:
        t = time.perf_counter()
        status = col.add_objects(envelope, wait_for_completion=False)
        initial[status.status] += 1
        if status.status != "complete":
            status.wait_until_final(poll_interval=STATUS_POLL, timeout=STATUS_TIMEOUT)
        latencies.append(time.perf_counter() - t)
        statuses.append(status)
    add_seconds = time.perf_counter() - started
    add_requests = creds.requests
    unfinished = [s.id for s in statuses if s.status != "complete"]
    totals = [sum(getattr(s, k) or 0 for s in statuses)
              for k in ("total_count", "success_count", "failure_count", "pending_count")]
    if unfinished or totals != [n, n, 0, 0]:
        failures = [f for s in statuses for f in (s.failures or [])][:3]
        raise BenchError("add_objects: %d statuses not complete after %d s; total/success/failure/pending %s, "
                         "wanted [%d, %d, 0, 0]; failures e.g. %s"
                         % (len(unfinished), STATUS_TIMEOUT, totals, n, n, failures))
    result["add_objects"] = {
        "seconds": add_seconds, "per_s": rate(n, add_seconds), "posts": len(envelopes),
        "requests": add_requests, "initial_status": dict(initial),
        "post_latency_s": {"median": statistics.median(latencies), "max": max(latencies)},
        "sent_bytes": sum(len(e) for e in envelopes),
    }
    log("%s round %s: add_objects %d in %.2f s = %.0f objects/s (%d POSTs, first statuses %s)"
        % (args.server, args.round, n, add_seconds, rate(n, add_seconds), len(envelopes), dict(initial)))

    # 2. paged read of the objects ------------------------------------------------------------------
    creds.received = creds.requests = 0
    started = time.perf_counter()
    pages, first_page = paged(col.get_objects, args.per_page, n, "read")
    read_seconds = time.perf_counter() - started
    got = [o for p in pages for o in p.get("objects", [])]
    counts = collections.Counter(o["id"] for o in got)
    missing = set(posted) - set(counts)
    twice = sorted(i for i, c in counts.items() if c > 1)
    extra = sorted(set(counts) - set(posted))
    changed = [o["id"] for o in got if o["id"] in posted and
               (o.get("pattern"), o.get("description")) != (posted[o["id"]]["pattern"], posted[o["id"]]["description"])]
    if missing or twice or extra or changed:
        raise BenchError("read: %d missing, %d more than once, %d not posted, %d changed (e.g. %s)"
                         % (len(missing), len(twice), len(extra), len(changed),
                            (sorted(missing) + twice + extra + changed)[:3]))
    result["read"] = {"seconds": read_seconds, "per_s": rate(n, read_seconds), "pages": len(pages),
                      "first_page_s": first_page,
                      "page_sizes": sorted(set(len(p.get("objects", [])) for p in pages)),
                      "received_bytes": creds.received, "requests": creds.requests}
    log("%s round %s: paged read %d in %.2f s = %.0f objects/s (%d pages, the first after %.2f s; %.1f MiB)"
        % (args.server, args.round, n, read_seconds, rate(n, read_seconds), len(pages), first_page,
           creds.received / 2**20))

    # 3. paged read of the manifest --------------------------------------------------------------------
    creds.received = creds.requests = 0
    started = time.perf_counter()
    pages, first_page = paged(col.get_manifest, args.per_page, n, "manifest")
    manifest_seconds = time.perf_counter() - started
    records = [r for p in pages for r in p.get("objects", [])]
    counts = collections.Counter(r["id"] for r in records)
    missing = set(posted) - set(counts)
    twice = sorted(i for i, c in counts.items() if c > 1)
    extra = sorted(set(counts) - set(posted))
    wrong = [r["id"] for r in records if r["id"] in posted and
             (not r.get("date_added") or stamp(r.get("version")) != stamp(posted[r["id"]]["modified"]))]
    if missing or twice or extra or wrong:
        raise BenchError("manifest: %d missing, %d more than once, %d not posted, %d with a wrong version or "
                         "no date_added (e.g. %s)" % (len(missing), len(twice), len(extra), len(wrong),
                                                       (sorted(missing) + twice + extra + wrong)[:3]))
    result["manifest"] = {"seconds": manifest_seconds, "per_s": rate(n, manifest_seconds), "pages": len(pages),
                          "first_page_s": first_page,
                          "page_sizes": sorted(set(len(p.get("objects", [])) for p in pages)),
                          "received_bytes": creds.received, "requests": creds.requests}
    log("%s round %s: manifest %d in %.2f s = %.0f records/s (%d pages, the first after %.2f s)"
        % (args.server, args.round, n, manifest_seconds, rate(n, manifest_seconds), len(pages), first_page))
    signal.alarm(0)

    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    return 0


# --- report ----------------------------------------------------------------------------------
FIGURES = [("add_objects", "add_objects", "objects/s"), ("read", "paged read", "objects/s"),
           ("manifest", "manifest read", "records/s")]
SERVERS = [("liaison", "Liaison"), ("medallion", "medallion")]


def summary(values):
    return {"median": statistics.median(values), "values": values}


def report(args):
    with open(args.meta) as f:
        meta = json.load(f)
    runs = []
    for path in args.results:
        with open(path) as f:
            runs.append(json.load(f))
    runs.sort(key=lambda r: (r["server"], int(r["round"])))
    servers = [(key, label) for key, label in SERVERS if any(r["server"] == key for r in runs)]
    results = {}
    for key, _ in servers:
        mine = [r for r in runs if r["server"] == key]
        results[key] = {}
        for fig, _, unit in FIGURES:
            results[key][fig] = {
                "unit": unit,
                "rate": summary([r[fig]["per_s"] for r in mine]),
                "seconds": summary([r[fig]["seconds"] for r in mine]),
                "pages_or_posts": mine[0][fig].get("pages", mine[0][fig].get("posts")),
            }
            if fig != "add_objects":
                results[key][fig]["first_page_seconds"] = summary([r[fig]["first_page_s"] for r in mine])
        results[key]["add_objects"]["initial_status"] = dict(sum(
            (collections.Counter(r["add_objects"]["initial_status"]) for r in mine), collections.Counter()))
        results[key]["durability"] = DURABILITY[key]
    ratio = None
    if len(servers) == 2:
        ratio = {fig: {"rate": results["liaison"][fig]["rate"]["median"] / results["medallion"][fig]["rate"]["median"],
                       "seconds": results["liaison"][fig]["seconds"]["median"] /
                       results["medallion"][fig]["seconds"]["median"]}
                 for fig, _, _ in FIGURES}

    p = meta["parameters"]
    lines = []
    lines.append("TAXII 2.1 throughput: %s -- %d STIX 2.1 indicators of %d bytes each, envelopes of %d, "
                 "per_request %d, %d round(s), a fresh server each round"
                 % (" vs ".join(label for _, label in servers), p["objects"], OBJECT_BYTES, p["batch"],
                    p["per_page"], p["rounds"]))
    m = meta["machine"]
    lines.append("machine: nproc %s, %s, %s; node dirs on %s; %s"
                 % (m["nproc"], m["uname"], m["cpu"], m["work_fs"], meta["date"]))
    v = meta["versions"]
    lines.append("client (the same for both): taxii2-client %s, requests %s, Python %s; one connection, "
                 "one request at a time" % (v["taxii2-client"], v["requests"], v["python"]))
    if "liaison" in results:
        lines.append("Liaison: %s (%s, sha256 %s); one node (alpha), writer token, TAXII api root %s"
                     % (v["liaison"], v["liaison_binary"], v["liaison_sha256"][:12], v.get("liaison_api_root", "?")))
    lines.append("medallion: %s, memory backend, HTTP Basic, served by its `medallion` command (Flask %s / "
                 "Werkzeug %s dev server), max_page_size %s" % (v["medallion"], v["flask"], v["werkzeug"],
                                                               p["medallion_max_page_size"]))
    lines.append("")
    head = "%-15s %-10s" % ("figure", "unit")
    for _, label in servers:
        head += "  %-31s" % ("%s median (rounds)" % label)
    if ratio:
        head += "  Liaison/medallion"
    lines.append(head)
    for fig, name, unit in FIGURES:
        for kind, u in (("rate", unit), ("seconds", "wall s")):
            row = "%-15s %-10s" % (name if kind == "rate" else "", u)
            for key, _ in servers:
                s = results[key][fig][kind]
                fmt = "%.0f" if kind == "rate" else "%.2f"
                row += "  %-31s" % ((fmt % s["median"]) + " (" + ", ".join(fmt % x for x in s["values"]) + ")")
            if ratio:
                row += "  %sx" % ("%.3g" % ratio[fig][kind])
            lines.append(row)
        if fig == "add_objects":
            for key, label in servers:
                lines.append("%-26s  ^ %s: %s" % ("", label, DURABILITY[key]))
    lines.append("")
    if ratio:
        lines.append("Liaison/medallion: ratio of the medians (rates: above 1 Liaison is faster; wall s: below 1).")
    for key, label in servers:
        st = results[key]["add_objects"]["initial_status"]
        lines.append("%s: statuses in the 202s: %s; pages per read: %s; the first page came after %.2f s (objects), "
                     "%.2f s (manifest), medians" % (
                         label, ", ".join("%d %s" % (c, s) for s, c in sorted(st.items())),
                         results[key]["read"]["pages_or_posts"], results[key]["read"]["first_page_seconds"]["median"],
                         results[key]["manifest"]["first_page_seconds"]["median"]))
    table = "\n".join(lines)

    document = {"date": meta["date"], "machine": meta["machine"], "versions": meta["versions"],
                "parameters": dict(p, object_bytes=OBJECT_BYTES), "results": results,
                "ratio_liaison_over_medallion": ratio, "runs": runs}
    if args.json:
        print(table, file=sys.stderr)
        print(json.dumps(document, indent=1))
    else:
        print(table)
    return 0


# --- meta ------------------------------------------------------------------------------------
def versions(args):
    """The client's and medallion's versions, merged into the meta file the shell started."""
    from importlib.metadata import version
    with open(args.meta) as f:
        meta = json.load(f)
    for name in ("taxii2-client", "stix2", "requests", "medallion", "flask", "werkzeug"):
        meta["versions"][name] = version(name)
    meta["versions"]["python"] = platform.python_version()
    meta["date"] = meta.get("date") or datetime.datetime.now(datetime.timezone.utc).isoformat()
    with open(args.meta, "w") as f:
        json.dump(meta, f, indent=1)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--objects", type=int, required=True)
    g.add_argument("--out", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--url", required=True, help="the server's base URL, http://HOST:PORT")
    m.add_argument("--token-file")
    m.add_argument("--basic-auth", metavar="USER:PASS")
    m.add_argument("--collection-alias", default="stix")
    m.add_argument("--objects-file", required=True)
    m.add_argument("--batch", type=int, default=500)
    m.add_argument("--per-page", type=int, default=1000)
    m.add_argument("--server", required=True, choices=[k for k, _ in SERVERS])
    m.add_argument("--round", default="1")
    m.add_argument("--timeout", type=int, default=3600, help="seconds for the whole measure run")
    m.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--meta", required=True)
    r.add_argument("--json", action="store_true")
    r.add_argument("results", nargs="+")
    v = sub.add_parser("versions")
    v.add_argument("--meta", required=True)
    args = parser.parse_args()
    if args.command == "measure":
        if bool(args.token_file) == bool(args.basic_auth):
            parser.error("give --token-file or --basic-auth")
        if args.batch < 1 or args.per_page < 1:
            parser.error("--batch and --per-page are at least 1")
    logging.basicConfig(level=logging.WARNING, format="note: %(name)s: %(message)s", stream=sys.stderr)
    try:
        return {"generate": generate, "measure": measure, "report": report, "versions": versions}[args.command](args)
    except BenchError as error:
        print("taxii-bench: FAIL: %s" % error, file=sys.stderr, flush=True)
        return 1
    except requests.exceptions.RequestException as error:
        response = getattr(error, "response", None)
        body = response.text[:300] if response is not None else ""
        print("taxii-bench: FAIL: %s: %s %s" % (type(error).__name__, error, body), file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
