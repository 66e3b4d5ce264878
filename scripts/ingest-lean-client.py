#!/usr/bin/env python3
"""Bulk ingest into a running node with a lean HTTP client, to read the node's own rate.

`liaison bench ingest` drives the node through Foundation's URLSession, which on Linux costs
the bench process most of a core beside the node (BENCHMARKS.md, session 18). This client
builds its request bodies first and then posts them with Python's http.client, one
keep-alive connection per thread, so nearly all the CPU left is the node's.

    # topo.yaml: the bench's pair topology (BenchReplicationCommands.swift) with real ports
    liaison topology render topo.yaml --out out && liaison run --dir out/alpha &
    scripts/ingest-lean-client.py --api 127.0.0.1:17002 --token-file out/alpha/api-writer.token

The node must have a partner named by --rel-to in its federation (the bench's pair topology:
alpha and bravo). Prints items/s; exits non-zero on any answer other than 201.
"""
import argparse
import http.client
import json
import sys
import threading
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--api", required=True, help="host:port of the node's API")
    parser.add_argument("--token-file", required=True, help="a writer token")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--size", type=int, default=1024, help="bytes of field value per item")
    parser.add_argument("--rel-to", default="bravo")
    args = parser.parse_args()
    if args.items < 1 or not 1 <= args.batch <= 10_000 or args.clients < 1 or args.size < 3:
        sys.exit("--items and --clients must be positive, --batch 1 to 10000, --size at least 3")
    host, _, port = args.api.rpartition(":")
    try:
        token = open(args.token_file).read().strip()
    except OSError as error:
        sys.exit(f"cannot read the token file: {error}; give a writer token (api-writer.token in the node's directory)")
    filler = "x" * (args.size - 2)
    bodies = [
        json.dumps([
            {"collection": "bench", "relTo": [args.rel_to], "fields": {"n": i, "body": filler}}
            for i in range(first, min(args.items, first + args.batch))
        ]).encode()
        for first in range(0, args.items, args.batch)
    ]
    lock = threading.Lock()
    state = {"next": 0, "error": None}

    def worker():
        connection = http.client.HTTPConnection(host, int(port), timeout=300)
        headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
        while True:
            with lock:
                if state["next"] >= len(bodies) or state["error"]:
                    return
                body = bodies[state["next"]]
                state["next"] += 1
            try:
                connection.request("POST", "/v1/items", body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
            except OSError as error:
                with lock:
                    state["error"] = f"the node's API at {args.api} did not answer ({error}); is 'liaison run' up?"
                return
            if answer.status != 201:
                with lock:
                    state["error"] = f"HTTP {answer.status}: {data[:300]!r}"
                return

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if state["error"]:
        sys.exit(state["error"])
    print(f"{args.items} items in {seconds:.2f} s: {args.items / seconds:.0f} items/s")


if __name__ == "__main__":
    main()
