#!/usr/bin/env python3
"""How zlib's levels trade time for size on batches shaped like Liaison's.

A batch of 1,024 ops is modelled as, per op, 480 random bytes (ids, hashes, signature and
proof siblings, which do not compress) and 1 KiB of JSON text cut from the files given.
Prints, per level, the compression ratio and the time per batch (median of the batches).

    scripts/zlib-levels.py FILE.json [FILE.json.gz ...]
"""
import gzip
import os
import statistics
import sys
import time
import zlib


def main(paths):
    if not paths:
        sys.exit("usage: zlib-levels.py FILE.json [FILE.json ...] (JSON text to cut field values from)")
    text = b"".join(
        gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read() for path in paths)
    if len(text) < 1024:
        sys.exit("give at least 1 KiB of JSON text")
    values = [text[i:i + 1024] for i in range(0, len(text) - 1023, 1024)]
    batches = [
        b"".join(os.urandom(480) + values[(k * 1024 + j) % len(values)] for j in range(1024))
        for k in range(6)
    ]
    print(f"{len(values)} values of 1 KiB from {len(paths)} files; batches of 1,024 ops")
    for level in (1, 2, 3, 6):
        times, ratios = [], []
        for batch in batches:
            start = time.perf_counter()
            compressed = zlib.compress(batch, level)
            times.append(time.perf_counter() - start)
            ratios.append(len(batch) / len(compressed))
        print(f"level {level}: ratio {statistics.median(ratios):.2f}, "
              f"{statistics.median(times) * 1000:.1f} ms per batch")


if __name__ == "__main__":
    main(sys.argv[1:])
