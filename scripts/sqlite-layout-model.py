#!/usr/bin/env python3
"""A model of the store's commit path in Python's sqlite3, to compare table layouts before
changing SQLiteStore (docs/store.md, "Schema"). Each op is a new item: one op row of 1.3 KB
and one item state of STATE bytes (default 1,400), committed in batches with a custody row
and a metadata update, in WAL mode with synchronous = FULL, as the node does.

    scripts/sqlite-layout-model.py LAYOUT OPS [BATCH]

LAYOUT: s0 (schema v2: op_id unique, ops(item_id), items keyed by id), s2 (schema v3:
local item numbers, 8-byte id prefixes), s3 (v3 without a global op-id index).
Prints ops/s and the bytes written to storage per op (/proc/self/io).
"""
import os, sqlite3, struct, sys, time

variant = sys.argv[1]; N = int(sys.argv[2]); B = int(sys.argv[3]) if len(sys.argv) > 3 else 512
path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"liaison-layout-{variant}.db")
for s in ("", "-wal", "-shm"):
    try: os.remove(path + s)
    except FileNotFoundError: pass
db = sqlite3.connect(path, isolation_level=None)
if variant.endswith("p1k"): db.execute("PRAGMA page_size=1024")
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
db.execute("PRAGMA cache_size=-65536"); db.execute("PRAGMA wal_autocheckpoint=8192")
v = variant.split("_")[0]
common = """CREATE TABLE custody(seq INTEGER PRIMARY KEY, d BLOB); CREATE TABLE meta(key TEXT PRIMARY KEY, value BLOB);"""
if v == "s0":
    db.executescript(common + """
    CREATE TABLE ops(seq INTEGER PRIMARY KEY AUTOINCREMENT, op_id BLOB NOT NULL UNIQUE, item_id BLOB NOT NULL, author BLOB, hlc INTEGER, redacted INTEGER, received_from BLOB, encoded BLOB, reshapes INTEGER);
    CREATE INDEX ops_item ON ops(item_id);
    CREATE TABLE items(id BLOB PRIMARY KEY, collection TEXT, withdrawn INTEGER, last_change INTEGER, state BLOB);
    CREATE INDEX items_collection ON items(collection, last_change); CREATE INDEX items_recent ON items(last_change);""")
elif v in ("s1", "s2"):
    keytype = "BLOB NOT NULL UNIQUE" if v == "s1" else "INTEGER NOT NULL"
    db.executescript(common + f"""
    CREATE TABLE ops(seq INTEGER PRIMARY KEY AUTOINCREMENT, op_key {keytype}, item_local INTEGER NOT NULL, op_id BLOB, author BLOB, hlc INTEGER, redacted INTEGER, received_from BLOB, encoded BLOB, reshapes INTEGER);
    CREATE INDEX ops_item ON ops(item_local);
    CREATE TABLE items(local INTEGER PRIMARY KEY, key {keytype}, id BLOB, collection TEXT, withdrawn INTEGER, last_change INTEGER, state BLOB);
    CREATE INDEX items_collection ON items(collection, last_change); CREATE INDEX items_recent ON items(last_change);""")
    if v == "s2": db.executescript("CREATE INDEX ops_key ON ops(op_key); CREATE INDEX items_key ON items(key);")
elif v == "s3":  # no global op index: dedupe via (item_local, op_key)
    db.executescript(common + """
    CREATE TABLE ops(seq INTEGER PRIMARY KEY AUTOINCREMENT, item_local INTEGER NOT NULL, op_key INTEGER NOT NULL, op_id BLOB, author BLOB, hlc INTEGER, redacted INTEGER, received_from BLOB, encoded BLOB, reshapes INTEGER);
    CREATE INDEX ops_item ON ops(item_local, op_key);
    CREATE TABLE items(local INTEGER PRIMARY KEY, key INTEGER NOT NULL, id BLOB, collection TEXT, withdrawn INTEGER, last_change INTEGER, state BLOB);
    CREATE INDEX items_key ON items(key);
    CREATE INDEX items_collection ON items(collection, last_change); CREATE INDEX items_recent ON items(last_change);""")
def wb():
    for l in open("/proc/self/io"):
        if l.startswith("write_bytes"): return int(l.split()[1])
enc = os.urandom(1300); state = os.urandom(int(os.environ.get("STATE", "1400")))
w0 = wb(); t0 = time.time(); hlc = 1 << 40; seq = 0
def k(b): return struct.unpack("<q", b[:8])[0]
for start in range(0, N, B):
    db.execute("BEGIN IMMEDIATE")
    for i in range(start, min(N, start + B)):
        op = os.urandom(32); item = os.urandom(32); hlc += 1
        if v == "s0":
            db.execute("SELECT seq FROM ops WHERE op_id=?", (op,)).fetchone()
            db.execute("SELECT state FROM items WHERE id=?", (item,)).fetchone()
            db.execute("INSERT INTO ops(op_id,item_id,author,hlc,redacted,received_from,encoded,reshapes) VALUES(?,?,?,?,0,?,?,1)", (op, item, b"a"*32, hlc, b"p"*32, enc))
            db.execute("INSERT INTO items(id,collection,withdrawn,last_change,state) VALUES(?,?,0,?,?) ON CONFLICT(id) DO UPDATE SET state=excluded.state", (item, "bench", hlc, state))
        else:
            ik = item if v == "s1" else k(item); ok = op if v == "s1" else k(op)
            if v == "s3":
                r = db.execute("SELECT local FROM items WHERE key=? AND id=?", (ik, item)).fetchone()
                if r: db.execute("SELECT seq FROM ops WHERE item_local=? AND op_key=?", (r[0], ok)).fetchone()
            else:
                db.execute("SELECT seq FROM ops WHERE op_key=?", (ok,)).fetchone()
                r = db.execute("SELECT local FROM items WHERE key=?", (ik,)).fetchone()
            cur = db.execute("INSERT INTO items(key,id,collection,withdrawn,last_change,state) VALUES(?,?,?,0,?,?)", (ik, item, "bench", hlc, state))
            local = cur.lastrowid
            if v == "s3":
                db.execute("INSERT INTO ops(item_local,op_key,op_id,author,hlc,redacted,received_from,encoded,reshapes) VALUES(?,?,?,?,?,0,?,?,1)", (local, ok, op, b"a"*32, hlc, b"p"*32, enc))
            else:
                db.execute("INSERT INTO ops(op_key,item_local,op_id,author,hlc,redacted,received_from,encoded,reshapes) VALUES(?,?,?,?,?,0,?,?,1)", (ok, local, op, b"a"*32, hlc, b"p"*32, enc))
    db.execute("INSERT INTO custody(d) VALUES(?)", (os.urandom(200),))
    db.execute("INSERT INTO meta VALUES('h',?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (hlc,))
    db.execute("COMMIT")
dt = time.time() - t0; w = wb() - w0
print(f"{variant} N={N} B={B}: {N/dt:,.0f} ops/s, {w/N/1000:.1f} KB written/op, {dt:.1f}s")
db.close()
for s in ("", "-wal", "-shm"):
    try: os.remove(path + s)
    except FileNotFoundError: pass
