#!/usr/bin/env python3
"""Acceptance check of Liaison's TAXII 2.1 server with the real Python clients.

Run by scripts/taxii-check.sh (which starts two nodes, alpha and bravo, and passes their
base URLs and token files). Only the OASIS clients talk to the servers: taxii2-client
(taxii2client.v21 Server, ApiRoot, Collection, Status, as_pages) reads and writes, stix2
builds and parses the STIX objects, stix2-validator validates what comes back. One line
per check (`ok: ...`, `FAIL: ...`, `skip: ...`); the exit status is 1 when any check
failed, 2 for bad arguments.

    taxii_clients_check.py --alpha-url http://127.0.0.1:PORT --bravo-url http://127.0.0.1:PORT \
        --alpha-writer-token-file alpha/api-writer.token --alpha-reader-token-file alpha/api-reader.token \
        [--alpha-operator-token-file alpha/api.token] [--alpha-auditor-token-file alpha/api-auditor.token] \
        --bravo-reader-token-file bravo/api-reader.token

    # the same checks against one plain TAXII server (medallion), without federation or markings:
    taxii_clients_check.py --alpha-url http://127.0.0.1:PORT --basic-auth admin:Password0 \
        --api-root-path /api1/ --single-server-no-markings

What it checks (sections run in this order; the federation section runs last so that it
also covers the objects the later sections posted or had refused):
  discovery    Server -> discovery, default and api_roots, the api root, collections; `stix`
               found by alias; can_read/can_write per role (writer, reader, and operator and
               auditor when their tokens are given; an auditor reads no content); a token of no role gets 401 with
               WWW-Authenticate (with tokens only); the same collection id at bravo.
  add          add_objects of an envelope built with stix2 (25 indicators and 5 malware
               TLP:GREEN/CLEAR, 6 restricted: TLP:AMBER, AMBER+STRICT, RED or no marking, and
               1 with an unknown marking definition) with the writer token; the 202's status
               already complete, wait_until_final, the counts, the refused object among the
               failures with a message, and nothing of it stored.
  read         as_pages(get_objects, per_request=7): every accepted object exactly once and as
               posted (its TLP level kept, TLP 1.0 and 2.0 ids alike; marking refs of the
               server's own that the collection does not serve are a `note:`); the manifest
               likewise; match[type], match[id], match[spec_version]; a new version of one
               indicator, then object_versions lists both, get_object gives the latest by
               default and first/all/<timestamp> on request; everything parsed with stix2.parse
               and validated as a bundle with stix2-validator; an object posted back exactly
               as served is accepted as a duplicate, not a new version.
  reader       the reader token: the client refuses add_objects itself (can_write false); a
               POST forced past that check gets 403 with a TAXII error, nothing stored.
  negotiation  406 for an Accept the server cannot serve, 415 for a POST of another media type.
  added_after  X-TAXII-Date-Added-Last of a full read as added_after returns nothing; after one
               more POST it returns exactly that object.
  federation   bravo (reader token), polled for at most --federation-timeout seconds every
               0.5 s: every GREEN/CLEAR object arrives (the new version too) as posted; no
               restricted or refused object ever shows there.
  content-type every response the clients received (errors too) had Content-Type
               application/taxii+json;version=2.1, judged as taxii2-client judges a GET's
               (that type and version=2.1; spaces and other parameters such as charset allowed).

Medallion run (2026-12-01; taxii2-client 2.3.0, stix2 3.0.2, stix2-validator 3.3.2,
medallion 3.0.0 with its memory backend, HTTP Basic, a collection with alias `stix`, api root
/api1/; `scripts/taxii-check.sh --medallion` repeats it):
  * 61 ok, 0 FAIL, 6 skip (reader/operator/auditor roles, the reader's POST, the federation:
    medallion has no roles or partners; the post-back: medallion counts an exact duplicate as
    a failure, against TAXII 2.1 §5.5; in --single-server-no-markings mode the unknown-marking
    object is left out of the envelope and the restricted objects are just more objects).
  * So the checks agree with an independent TAXII 2.1 server: 36 objects paged with
    per_request=7 came in 6 pages (7,7,7,7,7,1) with more/next; the 202's status was already
    complete and ApiRoot.get_status gave it again; object_versions, match[version] first/all/
    <timestamp>, match[type] (a comma list too), match[id], match[spec_version]=2.0 (nothing);
    X-TAXII-Date-Added-* on every page, versions and object; the added_after round trip; 406
    for Accept application/xml; 415 for Content-Type application/json; every object back as
    posted; stix2.parse needed no allow_custom; the validator found the bundles valid.
  * The sections medallion cannot pass (federation, reader, unknown marking, 401, post-back) were run
    against two medallions (alpha read/write, a "bravo" whose collection is read-only) to see
    that they run and that they catch what they should: bravo = alpha's own server (every
    restricted object visible) -> the need-to-know check FAILs naming them; an empty bravo ->
    the arrival check FAILs at the deadline; the forced POST to a can_write:false collection
    -> 403 with a TAXII error, seen; a Bearer token at medallion -> 401 with WWW-Authenticate.
  * Where medallion differs from Liaison's contract the checks do not depend on it: it lists
    versions newest first (compared as sets), answers an empty result `{}` without X-TAXII
    headers (not checked on empty results), stamps a whole POST with one date_added, and sends
    its 401 as text/html (the 401 check runs only with tokens, i.e. against Liaison).
"""

import argparse
import collections
import datetime
import json
import logging
import re
import signal
import sys
import time
import traceback
import uuid

import requests
import stix2
from stix2validator import ValidationOptions, validate_instance
from taxii2client.exceptions import AccessError
from taxii2client.v21 import Collection, Server, as_pages

TAXII_21 = "application/taxii+json;version=2.1"
STIX_21 = "application/stix+json;version=2.1"

# Marking definitions. TLP 1.0 ids are the ones stix2 ships (stix2.TLP_*); TLP 2.0 ids are
# those of the OASIS TLP 2.0 marking definitions for STIX 2.1 (stix2 3.0.2 has no constants).
TLP1_WHITE = stix2.TLP_WHITE.id
TLP1_GREEN = stix2.TLP_GREEN.id
TLP1_AMBER = stix2.TLP_AMBER.id
TLP1_RED = stix2.TLP_RED.id
TLP2_CLEAR = "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487"
TLP2_GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
TLP2_AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
TLP2_AMBER_STRICT = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
TLP2_RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"

# A TLP marking's level, whichever TLP version's id names it (TLP 1.0 WHITE is CLEAR's forebear).
TLP_LEVEL = {TLP1_WHITE: "clear", TLP2_CLEAR: "clear", TLP1_GREEN: "green", TLP2_GREEN: "green",
             TLP1_AMBER: "amber", TLP2_AMBER: "amber", TLP2_AMBER_STRICT: "amber+strict",
             TLP1_RED: "red", TLP2_RED: "red"}

# Released to every partner (the contract: TLP:CLEAR or TLP:GREEN, TLP 2.0 or 1.0 ids).
# TLP 1.0 WHITE is left out: the contract does not say whether it counts as CLEAR.
RELEASED_MARKINGS = [TLP1_GREEN, TLP2_GREEN, TLP2_CLEAR]
# Kept at the node they were posted to: AMBER, AMBER+STRICT, RED (both TLP versions) or none.
RESTRICTED_MARKINGS = [[TLP1_AMBER], [TLP2_AMBER], [TLP2_AMBER_STRICT], [TLP1_RED], [TLP2_RED], []]

PAGE = 7                 # per_request of the paged reads (the brief's)
MAX_PAGES = 500          # a paged read that goes past this is looping (a server bug)
REQUEST_TIMEOUT = 30     # seconds, every HTTP request
POLL_INTERVAL = 0.5      # seconds between two polls of bravo


class CheckError(Exception):
    """A section cannot go on (what it needs from the server is not there)."""


# --- reporting ---------------------------------------------------------------------------
failed = 0


def check(condition, what, detail=""):
    """One check: prints `ok: WHAT` or `FAIL: WHAT (DETAIL)`; returns the condition."""
    global failed
    if condition:
        print("ok: " + what, flush=True)
    else:
        failed += 1
        print("FAIL: " + what + (" -- " + detail if detail else ""), flush=True)
    return bool(condition)


def skip(what, why):
    print("skip: %s (%s)" % (what, why), flush=True)


def short(values, n=3):
    values = sorted(values)
    return ", ".join(values[:n]) + (" and %d more" % (len(values) - n) if len(values) > n else "")


# --- what the clients sent and received ------------------------------------------------------
# taxii2-client returns only parsed bodies. The credentials below put a requests response
# hook on every request the clients make, so the checks can read what the client does not
# expose: the status code and Content-Type of POSTs and errors, and X-TAXII-Date-Added-*.
responses = []   # (method, url, status, headers), in order


def record(response, *args, **kwargs):
    responses.append((response.request.method, response.url, response.status_code, response.headers))


class Credentials(requests.auth.AuthBase):
    """`Authorization: Bearer TOKEN` (Liaison) or HTTP Basic (medallion), and the hook above."""

    def __init__(self, role, token=None, basic=None):
        self.role = role
        self.token = token
        self.basic = requests.auth.HTTPBasicAuth(*basic) if basic else None

    def __call__(self, request):
        if self.token is not None:
            request.headers["Authorization"] = "Bearer " + self.token
        else:
            request = self.basic(request)
        request.register_hook("response", record)
        return request


class TimeoutAdapter(requests.adapters.HTTPAdapter):
    """taxii2-client sets no timeout; a request to a server that hangs would wait forever."""

    def send(self, request, **kwargs):
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = REQUEST_TIMEOUT
        return super().send(request, **kwargs)


def bounded(endpoint):
    """Gives the endpoint's requests session (taxii2-client's `_conn.session`) the timeout."""
    endpoint._conn.session.mount("http://", TimeoutAdapter())
    endpoint._conn.session.mount("https://", TimeoutAdapter())
    return endpoint


def last_response(method):
    for response in reversed(responses):
        if response[0] == method:
            return response
    raise CheckError("no %s response recorded" % method)


def taxii_type(value):
    """Content-Type is TAXII 2.1 as taxii2-client judges it (common.py valid_content_type): the
    type exactly `application/taxii+json` and a `version=2.1` parameter, spaces ignored, other
    parameters (charset) allowed. The client checks only GETs; the checks apply it to every
    response (the contract: on every response)."""
    tokens = (value or "").replace(" ", "").split(";")
    return tokens[0] == "application/taxii+json" and "version=2.1" in tokens[1:]


def date_headers(what):
    """The last GET carried both X-TAXII-Date-Added headers (the client never reads them)."""
    _, url, code, headers = last_response("GET")
    first, last = headers.get("X-TAXII-Date-Added-First"), headers.get("X-TAXII-Date-Added-Last")
    check(code == 200 and bool(first and last), "%s: X-TAXII-Date-Added-First and -Last present" % what,
          "%s gave %s, First %r Last %r" % (url, code, first, last))


def http_status(error):
    return error.response.status_code if getattr(error, "response", None) is not None else None


# --- STIX helpers -----------------------------------------------------------------------------
def as_dict(obj):
    """A stix2 object as the JSON the server receives."""
    return json.loads(obj.serialize())


def stamp(value):
    """A STIX or TAXII timestamp (any number of fraction digits) as an aware datetime."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", value)
    if not m:
        raise ValueError("not an RFC 3339 UTC timestamp: %r" % value)
    micros = int(((m.group(2) or "") + "000000")[:6])
    return datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(
        microsecond=micros, tzinfo=datetime.timezone.utc)


def same_object(returned, posted):
    """The returned object is the posted one: parsed by stix2, every property equal (dates by
    value, so a server that re-formats a timestamp is not faulted for that alone) except
    object_marking_refs, which tlp_levels judges (a server may name a TLP level by the other
    TLP version's id, and add marking refs of its own)."""
    returned = {k: v for k, v in returned.items() if k != "object_marking_refs"}
    posted = {k: v for k, v in posted.items() if k != "object_marking_refs"}
    # allow_custom=False: the objects posted are standard STIX 2.1, so the server must give
    # them back without custom properties of its own; stix2.parse raises if it adds any (the
    # read section's parse check then says which).
    try:
        return stix2.parse(returned, allow_custom=False) == stix2.parse(posted, allow_custom=False)
    except Exception:   # noqa: BLE001 -- not parseable as posted: not the same object
        return False


def tlp_levels(obj):
    """The TLP levels an object's object_marking_refs name."""
    return sorted({TLP_LEVEL[r] for r in obj.get("object_marking_refs", []) if r in TLP_LEVEL})


def markings_checks(what, col, objs, posted):
    """The TLP level of every object comes back as posted; marking refs that are not TLP and
    that the collection does not serve are reported (a note: STIX does not require them to
    resolve, but a consumer cannot tell what they mean)."""
    byid = {o["id"]: o for o in objs}
    moved = [i for i in posted if i in byid and tlp_levels(byid[i]) != tlp_levels(posted[i])]
    check(not moved, "%s: every object's TLP level comes back as posted" % what,
          "%d differ, e.g. %s: %s, posted %s" % (len(moved), moved[0], tlp_levels(byid[moved[0]]),
                                                 tlp_levels(posted[moved[0]])) if moved else "")
    others = sorted({r for i in posted if i in byid for r in byid[i].get("object_marking_refs", [])
                     if r not in TLP_LEVEL and r not in posted[i].get("object_marking_refs", [])})
    unserved = [r for r in others[:20] if not object_or_none(col, r)]
    if others:
        print("note: %s: objects come back with %d marking refs of the server's own, %d of the first %d not "
              "served by the collection (e.g. %s)" % (what, len(others), len(unserved), min(len(others), 20),
                                                      unserved[0] if unserved else "-"), flush=True)


def difference(returned, posted):
    """What differs between a returned object and the posted one, for a FAIL line."""
    keys = sorted(set(returned) | set(posted))
    parts = []
    for key in keys:
        if key not in returned:
            parts.append("%s missing" % key)
        elif key not in posted:
            parts.append("%s added (%r)" % (key, returned[key]))
        elif returned[key] != posted[key]:
            parts.append("%s %r, posted %r" % (key, returned[key], posted[key]))
    return "%s: %s" % (posted.get("id"), "; ".join(parts) or "equal as JSON, not as STIX")


def validate_bundle(objects, what):
    """stix2-validator on a bundle of the returned objects (an envelope is not a bundle)."""
    bundle = {"type": "bundle", "id": "bundle--%s" % uuid.uuid4(), "objects": objects}
    result = validate_instance(bundle, ValidationOptions(version="2.1"))
    errors = [str(e) for e in result.errors]
    check(result.is_valid, "%s: stix2-validator finds the %d objects valid as a bundle" % (what, len(objects)),
          "; ".join(errors[:5]))


# --- paged reads --------------------------------------------------------------------------------
def read_pages(func, per_request, what, **filters):
    """Every envelope as_pages(func, per_request, **filters) yields. Stops (CheckError) when a
    page says `more` without a `next` (as_pages would then ask for the first page forever) or
    the pages never end."""
    pages = []
    for envelope in as_pages(func, per_request, **filters):
        pages.append(envelope)
        if envelope.get("more") and not envelope.get("next"):
            raise CheckError("%s: page %d has more:true and no next" % (what, len(pages)))
        if len(pages) > MAX_PAGES:
            raise CheckError("%s: more than %d pages" % (what, MAX_PAGES))
    return pages


def objects_of(pages):
    return [obj for page in pages for obj in page.get("objects", [])]


def object_or_none(col, obj_id, **filters):
    """The objects get_object gives for obj_id; [] when the server answers 404."""
    try:
        return col.get_object(obj_id, **filters).get("objects", [])
    except requests.exceptions.HTTPError as error:
        if http_status(error) == 404:
            return []
        raise


# --- the connection to one server ---------------------------------------------------------------
def open_server(base_url, creds, args):
    """Server -> default api root -> the collection whose alias is args.collection_alias."""
    server = bounded(Server(base_url.rstrip("/") + "/taxii2/", auth=creds))
    server.refresh()
    for root in server.api_roots:
        bounded(root)
    root = server.default or (server.api_roots[0] if server.api_roots else None)
    if root is None:
        raise CheckError("%s: discovery lists no api root" % base_url)
    stix = [c for c in root.collections if c.alias == args.collection_alias]
    if not stix:
        raise CheckError("%s (%s token): no collection with alias %r among %s" % (
            base_url, creds.role, args.collection_alias, [c.alias for c in root.collections]))
    return server, root, stix[0]


def post(col, objects):
    """add_objects of an envelope with these objects; returns (initial status, final status)."""
    envelope = {"objects": [as_dict(o) if not isinstance(o, dict) else o for o in objects]}
    status = col.add_objects(envelope, wait_for_completion=False)
    initial = (status.status, status.total_count, status.success_count, status.failure_count, status.pending_count)
    status.wait_until_final(poll_interval=0.5, timeout=30)
    return initial, status


def indicator(name, address, markings):
    kwargs = {"object_marking_refs": markings} if markings else {}
    return stix2.Indicator(name=name, description="taxii-check: " + name, indicator_types=["malicious-activity"],
                           pattern="[ipv4-addr:value = '%s']" % address, pattern_type="stix", **kwargs)


# --- the sections ----------------------------------------------------------------------------------
class Run:
    """What the sections share."""

    def __init__(self, args):
        self.args = args
        self.federated = not args.single_server_no_markings
        basic = tuple(args.basic_auth.split(":", 1)) if args.basic_auth else None
        reader_basic = tuple(args.reader_basic_auth.split(":", 1)) if args.reader_basic_auth else None

        def token(path):
            with open(path) as f:
                return f.read().strip()

        self.writer = Credentials("writer", token(args.alpha_writer_token_file)) if not basic \
            else Credentials("writer", basic=basic)
        self.reader = Credentials("reader", token(args.alpha_reader_token_file)) if args.alpha_reader_token_file \
            else Credentials("reader", basic=reader_basic) if reader_basic else None
        self.operator = Credentials("operator", token(args.alpha_operator_token_file)) \
            if args.alpha_operator_token_file else None
        self.auditor = Credentials("auditor", token(args.alpha_auditor_token_file)) \
            if args.alpha_auditor_token_file else None
        self.bravo_reader = Credentials("bravo reader", token(args.bravo_reader_token_file)) \
            if args.bravo_reader_token_file else None
        self.col = None          # alpha's stix collection, writer token
        self.root = None
        self.reader_col = None   # alpha's stix collection, reader token
        self.bravo_col = None    # bravo's stix collection, bravo's reader token
        self.posted = {}         # id -> the latest posted version (dict)
        self.released = []       # ids that must reach bravo
        self.restricted = []     # ids that must stay at alpha
        self.refused = []        # ids that must be nowhere
        self.revised = None      # (id, first modified, latest modified)

    # 1. discovery, api root, collections, roles --------------------------------------------------
    def discovery(self):
        a = self.args
        server, root, col = open_server(a.alpha_url, self.writer, a)
        self.root, self.col = root, col
        expected_root = a.alpha_url.rstrip("/") + a.api_root_path
        check(bool(server.title), "discovery: title %r" % server.title)
        check(bool(server.description), "discovery: description present")
        check([r.url for r in server.api_roots] == [expected_root], "discovery: api_roots is [%s]" % expected_root,
              "got %s" % [r.url for r in server.api_roots])
        check(server.default is not None and server.default.url == expected_root, "discovery: default is the api root")
        check(TAXII_21 in root.versions, "api root: versions include %s" % TAXII_21, "got %s" % root.versions)
        check(isinstance(root.max_content_length, int) and root.max_content_length > 0,
              "api root: max_content_length %r" % root.max_content_length)
        cols = root.collections
        ids = [c.id for c in cols]
        check(len(set(ids)) == len(ids) and all(is_uuid(i) for i in ids),
              "collections: %d listed, ids distinct UUIDs" % len(cols), "ids %s" % ids)
        if self.federated:
            # Liaison's contract: alias and title are the Liaison collection's name.
            check(all(c.alias and c.title == c.alias for c in cols), "collections: each alias is its title",
                  "%s" % [(c.alias, c.title) for c in cols])
        check(col.title == a.collection_alias, "collections: %r found by alias (id %s)" % (a.collection_alias, col.id),
              "title %r" % col.title)
        check(STIX_21 in (col.media_types or []), "collections: media_types include %s" % STIX_21,
              "got %s" % col.media_types)
        check(col.can_read and col.can_write, "roles: writer token can_read and can_write",
              "can_read %s can_write %s" % (col.can_read, col.can_write))
        # The other roles see the same collection with their own rights: reader, writer and
        # operator read; only writer and operator write; an auditor sees no content
        # (docs/taxii.md, "Roles"), so its can_read is false.
        for name, creds, can_read, can_write in (("reader", self.reader, True, False),
                                                 ("operator", self.operator, True, True),
                                                 ("auditor", self.auditor, False, False)):
            if creds is None:
                skip("roles: %s token" % name, "no credentials for it given")
                continue
            try:
                _, _, other = open_server(a.alpha_url, creds, a)
            except Exception as error:   # noqa: BLE001 -- reported; the other sections go on
                check(False, "roles: %s token can_read %s, can_write %s"
                      % (name, str(can_read).lower(), str(can_write).lower()),
                      "%s: %s" % (type(error).__name__, error))
                continue
            check(other.id == col.id and other.can_read is can_read and other.can_write is can_write,
                  "roles: %s token can_read %s, can_write %s" % (name, str(can_read).lower(), str(can_write).lower()),
                  "id %s can_read %s can_write %s" % (other.id, other.can_read, other.can_write))
            if creds is self.reader:
                self.reader_col = other
        if self.writer.token is not None:
            # A token of no role: 401 with WWW-Authenticate (TAXII 2.1 §1.6.9), nothing served.
            try:
                bounded(Server(a.alpha_url.rstrip("/") + "/taxii2/", auth=Credentials("nobody", "x" * 64))).refresh()
                check(False, "roles: a token of no role is refused with 401", "discovery was served")
            except requests.exceptions.HTTPError as error:
                check(http_status(error) == 401, "roles: a token of no role is refused with 401",
                      "got %s" % http_status(error))
                check(bool(error.response.headers.get("WWW-Authenticate")), "roles: the 401 has WWW-Authenticate")
        if self.federated:
            try:
                _, _, bravo_col = open_server(a.bravo_url, self.bravo_reader, a)
            except Exception as error:   # noqa: BLE001 -- reported; the federation section says so again
                check(False, "collections: bravo's %r opened with bravo's reader token" % a.collection_alias,
                      "%s: %s" % (type(error).__name__, error))
                return
            check(bravo_col.id == col.id, "collections: bravo's %r has alpha's id (derived from the name)"
                  % a.collection_alias, "bravo %s, alpha %s" % (bravo_col.id, col.id))
            check(bravo_col.can_read is True and bravo_col.can_write is False,
                  "roles: bravo's reader token can_read true, can_write false")
            self.bravo_col = bravo_col

    # 2. add_objects --------------------------------------------------------------------------------
    def add(self):
        released = [indicator("green %d" % i, "198.51.100.%d" % (i + 1), [RELEASED_MARKINGS[i % 3]]) for i in range(25)]
        released += [stix2.Malware(name="taxii-check malware %d" % i, is_family=False, malware_types=["trojan"],
                                   object_marking_refs=[RELEASED_MARKINGS[i % 3]]) for i in range(5)]
        restricted = [indicator("restricted %d" % i, "203.0.113.%d" % (i + 1), m)
                      for i, m in enumerate(RESTRICTED_MARKINGS)]
        unknown = indicator("unknown marking", "192.0.2.1", ["marking-definition--%s" % uuid.uuid4()])
        objects = released + restricted + ([unknown] if self.federated else [])
        # Interleaved, so that a server which stops at the refused object is caught.
        objects = objects[:20] + objects[-1:] + objects[20:-1] if self.federated else objects

        initial, status = post(self.col, objects)
        code, ctype = last_response("POST")[2], last_response("POST")[3].get("Content-Type")
        check(code == 202, "add: POST objects answered 202", "got %s" % code)
        check(taxii_type(ctype), "add: the 202 has Content-Type %s" % TAXII_21, "got %r" % ctype)
        check(initial[0] == "complete", "add: the status in the 202 is already complete", "got %r" % initial[0])
        accepted = released + restricted
        want = (len(objects), len(accepted), len(objects) - len(accepted), 0)
        got = (status.total_count, status.success_count, status.failure_count, status.pending_count)
        check(status.status == "complete" and got == want,
              "add: after wait_until_final: complete, total %d, %d successes, %d failures, %d pending" % want,
              "status %s, got total/success/failure/pending %s" % (status.status, got))
        if status.successes:
            ok_ids = {s["id"] for s in status.successes}
            check(ok_ids == {o.id for o in accepted}, "add: the successes are exactly the accepted objects",
                  "missing %s, extra %s" % (short({o.id for o in accepted} - ok_ids), short(ok_ids - {o.id for o in accepted})))
        again = self.root.get_status(status.id)   # Status through the api root, as a client would poll it
        check((again.status, again.total_count, again.success_count, again.failure_count) ==
              (status.status, status.total_count, status.success_count, status.failure_count),
              "add: ApiRoot.get_status(%s) gives the same status" % status.id)
        if self.federated:
            # The unknown marking: refused with a message, and nothing of it stored.
            failures = {f["id"]: f for f in (status.failures or [])}
            check(unknown.id in failures and bool(failures[unknown.id].get("message")),
                  "add: the unknown-marking object is among the failures, with a message (%r)"
                  % failures.get(unknown.id, {}).get("message"), "failures %s" % list(failures))
            check(object_or_none(self.col, unknown.id) == [], "add: nothing of the refused object is stored at alpha")
            check(self.col.get_manifest(id=unknown.id).get("objects", []) == [],
                  "add: the manifest does not list the refused object")
            self.refused.append(unknown.id)
        self.posted = {o.id: as_dict(o) for o in accepted}
        self.released = [o.id for o in released]
        self.restricted = [o.id for o in restricted]
        self.indicators = [o.id for o in accepted if o.type == "indicator"]
        self.malware = [o.id for o in accepted if o.type == "malware"]
        self.original = {o.id: o for o in released}

    # 3. paged reads, filters, versions, parse and validate ---------------------------------------------
    def read(self):
        col = self.col
        self.read_all_once("read")

        # match[type]
        pages = read_pages(col.get_objects, PAGE, "match[type]=indicator", type="indicator")
        objs = objects_of(pages)
        got = {o["id"] for o in objs}
        check(all(o["type"] == "indicator" for o in objs) and set(self.indicators) <= got,
              "read: match[type]=indicator gives every indicator posted and only indicators",
              "types %s, missing %s" % (sorted({o["type"] for o in objs}), short(set(self.indicators) - got)))
        objs = objects_of(read_pages(col.get_objects, PAGE, "match[type]=malware,tool", type=["malware", "tool"]))
        check({o["id"] for o in objs} >= set(self.malware) and all(o["type"] == "malware" for o in objs),
              "read: match[type]=malware,tool gives the %d malware objects" % len(self.malware),
              "got %d objects of types %s" % (len(objs), sorted({o["type"] for o in objs})))
        # match[id], match[spec_version]
        two = self.released[:2]
        got = sorted(o["id"] for o in col.get_objects(id=two).get("objects", []))
        check(got == sorted(two), "read: match[id] with two ids gives exactly those two", "got %s" % got)
        got = [o["id"] for o in col.get_objects(id=two[0], spec_version="2.1").get("objects", [])]
        check(got == [two[0]], "read: match[spec_version]=2.1 finds a 2.1 object", "got %s" % got)
        got = col.get_objects(id=two[0], spec_version="2.0").get("objects", [])
        check(got == [], "read: match[spec_version]=2.0 finds no 2.1 object", "got %d objects" % len(got))

        # A new version of one indicator: same id, later `modified`.
        first = self.original[self.released[0]]
        second = first.new_version(name=first.name + " (revised)")
        initial, status = post(col, [second])
        check(status.success_count == 1 and status.failure_count == 0,
              "versions: the new version of %s is accepted" % first.id,
              "success %s failure %s %s" % (status.success_count, status.failure_count, status.failures))
        self.posted[first.id] = as_dict(second)
        self.revised = (first.id, first.modified, second.modified)

        versions = col.object_versions(first.id).get("versions", [])
        date_headers("versions: object_versions")
        check(sorted(stamp(v) for v in versions) == [first.modified, second.modified],
              "versions: object_versions lists both versions", "got %s" % versions)
        latest = col.get_object(first.id).get("objects", [])
        date_headers("versions: get_object")
        check(len(latest) == 1 and same_object(latest[0], as_dict(second)),
              "versions: get_object gives the latest version by default",
              "got %s" % ([o.get("modified") for o in latest] if len(latest) != 1 else difference(latest[0], as_dict(second))))
        old = col.get_object(first.id, version="first").get("objects", [])
        check(len(old) == 1 and same_object(old[0], as_dict(first)), "versions: match[version]=first gives the first",
              "got %s" % ([o.get("modified") for o in old] if len(old) != 1 else difference(old[0], as_dict(first))))
        both = col.get_object(first.id, version="all").get("objects", [])
        check(sorted(stamp(o["modified"]) for o in both) == [first.modified, second.modified],
              "versions: match[version]=all gives both", "got %s" % [o.get("modified") for o in both])
        exact = col.get_object(first.id, version=as_dict(first)["modified"]).get("objects", [])
        check(len(exact) == 1 and stamp(exact[0]["modified"]) == first.modified,
              "versions: match[version]=<first's modified> gives the first", "got %s" % [o.get("modified") for o in exact])
        got = col.get_objects(id=first.id).get("objects", [])
        check([stamp(o["modified"]) for o in got] == [second.modified],
              "versions: get_objects (match[version] last by default) gives only the latest",
              "got %s" % [o.get("modified") for o in got])
        validate_bundle(both, "versions")

        # Again the whole collection: each object once, the revised one at its new version.
        objs = self.read_all_once("read after the new version")
        # Everything returned is STIX 2.1 that stix2 parses without allow_custom and the
        # validator accepts as a bundle.
        unparsed = []
        for o in objs:
            try:
                stix2.parse(o, allow_custom=False)
            except Exception as error:   # noqa: BLE001 -- any parse error is the finding
                unparsed.append("%s: %s" % (o.get("id"), error))
        check(not unparsed, "read: stix2.parse (allow_custom=False) parses all %d objects" % len(objs),
              "; ".join(unparsed[:3]))
        validate_bundle(objs, "read")

        # What a client read can be posted back as it is (a sync between two TAXII servers
        # does exactly this): an exact duplicate is a success, not a new version (TAXII 2.1
        # §5.5). Needs a server that keeps to that: medallion counts a duplicate as a failure.
        if not self.federated:
            skip("read: an object posted back as served is accepted", "medallion counts a duplicate as a failure")
            return
        again = {o["id"]: o for o in objs}[self.released[1]]
        _, status = post(col, [again])
        check(status.success_count == 1 and status.failure_count == 0,
              "read: an object posted back exactly as served is accepted (a duplicate is a success)",
              "failures %s" % status.failures)
        versions = col.object_versions(again["id"]).get("versions", [])
        check(len(versions) == 1, "read: and it is no new version", "versions %s" % versions)

    def read_all_once(self, what):
        """A full paged read of objects and manifest: every accepted object exactly once, as posted."""
        pages = read_pages(self.col.get_objects, PAGE, what)
        objs = objects_of(pages)
        counts = collections.Counter(o["id"] for o in objs)
        sizes = [len(p.get("objects", [])) for p in pages]
        check(all(s <= PAGE for s in sizes) and len(pages) >= -(-len(self.posted) // PAGE),
              "%s: as_pages(get_objects, per_request=%d): %d pages of at most %d (sizes %s)"
              % (what, PAGE, len(pages), PAGE, sizes))
        check(all(p.get("more") for p in pages[:-1]) and not pages[-1].get("more"),
              "%s: more true on every page but the last" % what, "more %s" % [p.get("more") for p in pages])
        missing = set(self.posted) - set(counts)
        twice = {i for i, n in counts.items() if n > 1}
        check(not missing and not twice, "%s: each of the %d accepted objects seen exactly once" % (what, len(self.posted)),
              "missing %s; more than once %s" % (short(missing), short(twice)))
        refused = set(self.refused) & set(counts)
        check(not refused, "%s: no refused object listed" % what, short(refused))
        byid = {o["id"]: o for o in objs}
        changed = [i for i in self.posted if i in byid and not same_object(byid[i], self.posted[i])]
        check(not changed, "%s: every object comes back as posted (object_marking_refs apart)" % what,
              "%d differ, e.g. %s" % (len(changed), difference(byid[changed[0]], self.posted[changed[0]])) if changed else "")
        markings_checks(what, self.col, objs, self.posted)
        records = objects_of(read_pages(self.col.get_manifest, PAGE, what + " manifest"))
        date_headers(what + ": get_manifest (its last page)")
        mcount = collections.Counter(r["id"] for r in records)
        bad = [r for r in records if r["id"] in self.posted and
               (stamp(r["version"]) != stamp(self.posted[r["id"]]["modified"]) or not r.get("date_added"))]
        check(set(self.posted) <= set(mcount) and all(mcount[i] == 1 for i in self.posted) and not bad,
              "%s: the manifest lists each once with version = modified and a date_added" % what,
              "missing %s, wrong %s" % (short(set(self.posted) - set(mcount)), [r["id"] for r in bad][:3]))
        return objs

    # 5. the reader token cannot write -------------------------------------------------------------------
    def reader_refused(self):
        if self.reader_col is None:
            skip("reader: add_objects refused", "no reader credentials given")
            return
        probe = indicator("reader probe", "198.51.100.250", [TLP2_GREEN])
        try:
            self.reader_col.add_objects({"objects": [as_dict(probe)]})
            check(False, "reader: taxii2-client refuses add_objects (can_write false)", "it posted")
        except AccessError:
            check(True, "reader: taxii2-client refuses add_objects itself (AccessError: can_write is false)")
        # Past the client's own check: a Collection told can_write is true, so the POST is sent
        # and the server must refuse it.
        forced = bounded(Collection(self.reader_col.url, auth=self.reader,
                                    collection_info=dict(self.reader_col._raw, can_write=True)))
        try:
            forced.add_objects({"objects": [as_dict(probe)]})
            check(False, "reader: a POST with the reader token is refused with 403", "it was accepted")
        except requests.exceptions.HTTPError as error:
            body = error.response.json() if error.response.content else {}
            check(http_status(error) == 403, "reader: a POST with the reader token is refused with 403",
                  "got %s" % http_status(error))
            check(taxii_type(error.response.headers.get("Content-Type")) and bool(body.get("title")),
                  "reader: the 403 is a TAXII error (%r)" % body.get("title"),
                  "Content-Type %r body %s" % (error.response.headers.get("Content-Type"), body))
        check(object_or_none(self.col, probe.id) == [], "reader: nothing of the refused POST is stored")
        self.refused.append(probe.id)
        got = self.reader_col.get_objects(id=self.released[1]).get("objects", [])
        check([o["id"] for o in got] == [self.released[1]], "reader: the reader token reads objects")

    # 7. content negotiation ----------------------------------------------------------------------------------
    def negotiation(self):
        logging.disable(logging.ERROR)   # taxii2-client logs a hint about TAXII 2.0 on every 406
        try:
            self.col.get_objects(accept="application/xml")
            check(False, "negotiation: GET objects with Accept application/xml gets 406", "got 200")
        except requests.exceptions.HTTPError as error:
            check(http_status(error) == 406, "negotiation: GET objects with Accept application/xml gets 406",
                  "got %s" % http_status(error))
        finally:
            logging.disable(logging.NOTSET)
        probe = indicator("media type probe", "198.51.100.251", [TLP2_GREEN])
        try:
            self.col.add_objects({"objects": [as_dict(probe)]}, content_type="application/json")
            check(False, "negotiation: POST with Content-Type application/json gets 415", "it was accepted")
        except requests.exceptions.HTTPError as error:
            check(http_status(error) == 415, "negotiation: POST with Content-Type application/json gets 415",
                  "got %s" % http_status(error))
        check(object_or_none(self.col, probe.id) == [], "negotiation: nothing of the refused POST is stored")
        self.refused.append(probe.id)

    # 6. added_after ---------------------------------------------------------------------------------------------
    def added_after(self):
        col = self.col
        start = len(responses)
        pages = read_pages(col.get_objects, PAGE, "added_after: full read")
        gets = [r for r in responses[start:] if r[0] == "GET" and "/objects/" in r[1] and r[2] == 200]
        heads = [(h.get("X-TAXII-Date-Added-First"), h.get("X-TAXII-Date-Added-Last")) for _, _, _, h in gets]
        check(len(gets) == len(pages) and all(f and l for f, l in heads),
              "added_after: every page has X-TAXII-Date-Added-First and -Last", "headers %s" % heads)
        order = [stamp(x) for pair in heads for x in pair]
        check(order == sorted(order), "added_after: pages come in date_added order (First <= Last, page by page)",
              "%s" % heads)
        last = heads[-1][1]
        records = objects_of(read_pages(col.get_manifest, 100, "added_after: manifest"))
        newest = max(stamp(r["date_added"]) for r in records)
        check(stamp(last) == newest, "added_after: the last page's X-TAXII-Date-Added-Last %s is the newest date_added"
              % last, "manifest's newest %s" % newest.isoformat())

        got = col.get_objects(added_after=last).get("objects", [])
        check(got == [], "added_after: added_after=<that Last> gives nothing", "got %s" % short(o["id"] for o in got))
        late = indicator("late", "198.51.100.252", [TLP2_CLEAR])
        _, status = post(col, [late])
        check(status.success_count == 1, "added_after: one more object posted")
        got = col.get_objects(added_after=last).get("objects", [])
        check([o["id"] for o in got] == [late.id], "added_after: added_after=<that Last> now gives exactly that object",
              "got %s" % [o["id"] for o in got])
        first, newlast = (last_response("GET")[3].get("X-TAXII-Date-Added-" + k) for k in ("First", "Last"))
        check(first and newlast and stamp(first) > stamp(last) and first == newlast,
              "added_after: its X-TAXII-Date-Added-First = -Last, later than the earlier Last",
              "First %s Last %s" % (first, newlast))
        got = [r["id"] for r in col.get_manifest(added_after=last).get("objects", [])]
        check(got == [late.id], "added_after: the manifest with added_after lists exactly that object", "got %s" % got)
        self.posted[late.id] = as_dict(late)
        self.released.append(late.id)

    # 4. need-to-know across the federation ------------------------------------------------------------------------
    def federation(self):
        if not self.federated:
            skip("federation: GREEN/CLEAR objects reach bravo, restricted ones never", "--single-server-no-markings")
            return
        bravo = self.bravo_col
        if bravo is None:
            check(False, "federation: bravo's collection could not be opened (see above)")
            return
        must = set(self.released)
        never = set(self.restricted) | set(self.refused)
        revised_id, _, revised_modified = self.revised
        seen_never = set()
        deadline = time.monotonic() + self.args.federation_timeout
        polls = 0
        while True:
            polls += 1
            records = objects_of(read_pages(bravo.get_manifest, 100, "federation: bravo's manifest"))
            there = {r["id"]: r for r in records}
            seen_never |= never & set(there)
            arrived = must <= set(there) and revised_id in there and \
                stamp(there[revised_id]["version"]) == revised_modified
            if arrived or time.monotonic() >= deadline:
                break
            time.sleep(POLL_INTERVAL)   # the poll interval of a bounded wait, not a wait of its own
        check(arrived, "federation: every GREEN/CLEAR object (%d) reached bravo, the revised one at its new version "
              "(%d polls)" % (len(must), polls),
              "after %ss: missing %s" % (self.args.federation_timeout, short(must - set(there))))
        # What bravo serves is what alpha was given: same objects, valid STIX.
        objs = objects_of(read_pages(bravo.get_objects, PAGE, "federation: bravo's objects"))
        byid = {o["id"]: o for o in objs}
        seen_never |= never & set(byid)
        changed = [i for i in must if i in byid and not same_object(byid[i], self.posted[i])]
        check(not changed, "federation: bravo serves each object as posted at alpha (object_marking_refs apart)",
              "%d differ, e.g. %s" % (len(changed), difference(byid[changed[0]], self.posted[changed[0]])) if changed else "")
        markings_checks("federation", bravo, objs, {i: self.posted[i] for i in must})
        if objs:
            validate_bundle(objs, "federation")
        # Need-to-know: no restricted or refused object, in any poll or read, nor by id.
        shown = [i for i in never if object_or_none(bravo, i)]
        check(not seen_never and not shown,
              "federation: no AMBER/AMBER+STRICT/RED/unmarked (%d) or refused (%d) object ever shown at bravo"
              % (len(self.restricted), len(self.refused)),
              "listed %s; by id %s" % (short(seen_never), short(shown)))

    # every response --------------------------------------------------------------------------------------------
    def content_types(self):
        wrong = ["%s %s -> %s %r" % (m, u, s, h.get("Content-Type")) for m, u, s, h in responses
                 if not taxii_type(h.get("Content-Type"))]
        check(not wrong, "content-type: all %d responses had Content-Type %s" % (len(responses), TAXII_21),
              "; ".join(wrong[:5]))


def is_uuid(value):
    try:
        uuid.UUID(value)
        return True
    except (ValueError, TypeError, AttributeError):
        return False


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--alpha-url", required=True, help="alpha's API base URL, http://HOST:PORT")
    p.add_argument("--bravo-url", help="bravo's API base URL (not with --single-server-no-markings)")
    p.add_argument("--alpha-writer-token-file", help="alpha's api-writer.token")
    p.add_argument("--alpha-reader-token-file", help="alpha's api-reader.token")
    p.add_argument("--alpha-operator-token-file", help="alpha's api.token (optional: its can_write is checked)")
    p.add_argument("--alpha-auditor-token-file", help="alpha's api-auditor.token (optional: its can_read is checked)")
    p.add_argument("--bravo-reader-token-file", help="bravo's api-reader.token")
    p.add_argument("--basic-auth", metavar="USER:PASS", help="HTTP Basic instead of the writer token (medallion)")
    p.add_argument("--reader-basic-auth", metavar="USER:PASS", help="HTTP Basic of a read-only user, if there is one")
    p.add_argument("--api-root-path", default="/taxii2/liaison/", help="the api root's path (default %(default)s)")
    p.add_argument("--collection-alias", default="stix", help="the collection's alias (default %(default)s)")
    p.add_argument("--single-server-no-markings", action="store_true",
                   help="one plain TAXII server: no bravo, no roles, no need-to-know (the unknown marking is not posted)")
    p.add_argument("--federation-timeout", type=float, default=60, help="seconds bravo may take (default %(default)s)")
    p.add_argument("--overall-timeout", type=int, default=540, help="seconds for the whole run (default %(default)s)")
    args = p.parse_args()
    if not args.basic_auth and not args.alpha_writer_token_file:
        p.error("give --alpha-writer-token-file or --basic-auth")
    if not args.single_server_no_markings and not (args.bravo_url and args.bravo_reader_token_file):
        p.error("give --bravo-url and --bravo-reader-token-file, or --single-server-no-markings")
    if not args.api_root_path.startswith("/") or not args.api_root_path.endswith("/"):
        p.error("--api-root-path starts and ends with /")

    # taxii2-client's warnings (as_pages adopting a smaller page size) are worth seeing.
    logging.basicConfig(level=logging.WARNING, format="note: %(name)s: %(message)s", stream=sys.stdout)

    # The whole run is bounded too (each request is, but a server could keep answering slowly).
    def out_of_time(signum, frame):
        raise CheckError("the run took longer than %d s" % args.overall_timeout)
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.overall_timeout)

    run = Run(args)
    sections = [run.discovery, run.add, run.read, run.reader_refused, run.negotiation, run.added_after,
                run.federation]
    for section in sections:
        try:
            section()
        except Exception as error:   # noqa: BLE001 -- a section that cannot go on ends the run
            check(False, "%s: %s: %s" % (section.__name__, type(error).__name__, error))
            traceback.print_exc(file=sys.stderr)
            break
    signal.alarm(0)
    run.content_types()
    print("taxii-check: %s" % ("all checks passed" if failed == 0 else "%d check(s) failed" % failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
