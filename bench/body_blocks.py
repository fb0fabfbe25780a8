"""Bodies stored one row and one full-text document each (as built) against one block a batch.

Issue 16's next design: store a flush's bodies as ONE row of a blocks table (their texts
concatenated, each body's request id and offsets in the block's header or in a small row of
its own) and index each block as ONE FTS5 document, so a batch costs one INSERT and a word
common to its bodies is posted once. Before building it into the body log, this measures
what it can save, on the ledger's own SQLite settings and index definition
(`schema.SQLITE_BODIES_FTS`, 16 KB pages, WAL), with the rows the body log really writes
(`body_rows.item_rows` over `body_log_cpu.py`'s records), CPU per body, one process:

    PYTHONPATH=src python bench/body_blocks.py                 # 20,000 bodies, batches of 500
    PYTHONPATH=src python bench/body_blocks.py --prose         # prompts of distinct words (Zipf)
    PYTHONPATH=src python bench/body_blocks.py --batch 64

Layouts: `rows` (as built: a row and an FTS document per body), `blocks+spans` (a block row a
batch and a span row per body: request id to block and offsets, what `get` needs),
`blocks` (a block row a batch, the spans in its header only: `get` would have to find the
block some other way), and `blocks+zstd` (that, its text compressed; `zstandard` if
installed). Search: the median time to find the bodies holding a rare word (one body) and a
common one (every body), confirming candidate blocks' bodies in Python as the design asks.

`body_log_cpu.py`'s bench prompts are one filler sentence repeated with a number in front,
so a block of them compresses and indexes unrealistically well; `--prose` draws each prompt's
170 words from a 20,000-word vocabulary by Zipf's law, as text in a language does.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sqlite3
import statistics
import string
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

import body_log_cpu
from llmmux.ledger.bodies import _sqlite_steps
from llmmux.ledger.body_rows import body_item, item_rows
from llmmux.ledger.schema import SQLITE_BODIES_FTS, SQLITE_BODIES_FTS_MERGE, _bodies_table
from llmmux.ledger.sqlite import PAGE_SIZE, fts_query
from llmmux.ledger.store import Row
from llmmux.masking import Masker

try:
    import zstandard
except ImportError:  # measured only where installed
    zstandard = None

RARE = "zqxjrarewordzqxj"


def connect(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA journal_mode = WAL")
    return db


def prose_filler(rng: random.Random, vocabulary: list[str], weights: list[float]) -> str:
    return " ".join(rng.choices(vocabulary, weights, k=170))[:1000]


def make_rows(count: int, prose: bool) -> list[Row]:
    rng = random.Random(16)
    vocabulary = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 10))) for _ in range(20_000)]
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(vocabulary))]
    masker = Masker(["provider-key-0123456789", "master-key-abcdef"])
    records = []
    for i in range(count):
        if prose:
            body_log_cpu.FILLER = prose_filler(rng, vocabulary, weights)
        if i == count // 2:
            body_log_cpu.FILLER = f"{RARE} {body_log_cpu.FILLER}"
        records.append(body_log_cpu.record(i))
        if i == count // 2 and not prose:
            body_log_cpu.FILLER = body_log_cpu.FILLER.removeprefix(f"{RARE} ")
    items = [body_item(r, 65_536) for r in records]
    return item_rows(items, masker.scrub, 65_536, word_starts=masker.ascii_word_starts)


class Rows:
    """As built: one row and one FTS5 document (request, response) per body."""

    name = "rows"

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        db.execute(_bodies_table("INTEGER PRIMARY KEY", "REAL"))
        db.execute(SQLITE_BODIES_FTS)
        db.execute(SQLITE_BODIES_FTS_MERGE)

    def store(self, batch: list[Row]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        for sql, values in _sqlite_steps(batch):
            self.db.executemany(sql, values)
        self.db.execute("COMMIT")

    def index(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute(
            "INSERT INTO request_bodies_fts (rowid, request, response) SELECT id, request, response FROM request_bodies"
        )
        self.db.execute("COMMIT")

    def search(self, word: str) -> set[str]:
        sql = (
            "SELECT b.request_id FROM request_bodies b JOIN request_bodies_fts f ON f.rowid = b.id "
            "WHERE request_bodies_fts MATCH ?"
        )
        return {r[0] for r in self.db.execute(sql, (fts_query([word]),))}


class Blocks:
    """One row a batch: the bodies' texts concatenated, their spans in its header (and, with
    `spans`, one small row per body as well, so `get` finds a request's block by its id)."""

    def __init__(self, db: sqlite3.Connection, *, spans: bool, compress: Callable[[bytes], bytes] | None) -> None:
        self.db, self.spans, self.compress = db, spans, compress
        self.decompress = zstandard.ZstdDecompressor().decompress if compress else None
        self.name = "blocks" + ("+spans" if spans else "") + ("+zstd" if compress else "")
        db.execute(
            "CREATE TABLE body_blocks (id INTEGER PRIMARY KEY, ts REAL NOT NULL, "
            "header BLOB NOT NULL, content BLOB NOT NULL, bytes INTEGER NOT NULL)"
        )
        if spans:
            db.execute(
                "CREATE TABLE body_spans (request_id TEXT PRIMARY KEY, block INTEGER NOT NULL, at INTEGER NOT NULL) "
                "WITHOUT ROWID"
            )
        # The index reads the block's text, not its stored (maybe compressed) bytes.
        db.execute("CREATE VIRTUAL TABLE body_blocks_fts USING fts5(text, content='', detail=none, columnsize=0)")
        db.execute("INSERT INTO body_blocks_fts (body_blocks_fts, rank) VALUES ('automerge', 16)")
        self.unindexed: list[tuple[int, str]] = []

    def store(self, batch: list[Row]) -> None:
        header, parts, at = [], [], 0
        for request_id, ts, headers, request, response, _ in batch:
            lengths = [len(headers.encode()), len((request or "").encode()), len((response or "").encode())]
            header.append((request_id, ts, at, *lengths))
            parts += [headers, request or "", response or ""]
            at += sum(lengths)
        text = "".join(parts)
        data = text.encode()
        stored = self.compress(data) if self.compress else data
        self.db.execute("BEGIN IMMEDIATE")
        block = self.db.execute(
            "INSERT INTO body_blocks (ts, header, content, bytes) VALUES (?, ?, ?, ?)",
            (batch[0][1], msgspec.json.encode(header), stored, len(data)),
        ).lastrowid
        if self.spans:
            self.db.executemany(
                "INSERT INTO body_spans (request_id, block, at) VALUES (?, ?, ?)",
                [(h[0], block, h[2]) for h in header],
            )
        self.db.execute("COMMIT")
        assert block is not None
        self.unindexed.append((block, text))

    def index(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany("INSERT INTO body_blocks_fts (rowid, text) VALUES (?, ?)", self.unindexed)
        self.db.execute("COMMIT")
        self.unindexed = []

    def search(self, word: str) -> set[str]:
        """Candidate blocks by the index, then the bodies of each that hold the word, confirmed in Python."""
        pattern = re.compile(rf"(?<![^\W_]){re.escape(word)}(?![^\W_])", re.IGNORECASE)
        found = set()
        sql = (
            "SELECT header, content FROM body_blocks WHERE id IN "
            "(SELECT rowid FROM body_blocks_fts WHERE body_blocks_fts MATCH ?)"
        )
        for header, content in self.db.execute(sql, (fts_query([word]),)):
            data = self.decompress(content) if self.decompress else content
            for request_id, _, at, h, q, r in msgspec.json.decode(header):
                if pattern.search(data[at + h : at + h + q + r].decode()):
                    found.add(request_id)
        return found


def measure(layout: Any, rows: list[Row], batch: int, found: dict[str, set[str]]) -> dict[str, float]:
    """CPU a body to store and to index, and search times; each search's hits into `found`."""
    start = time.process_time()
    for first in range(0, len(rows), batch):
        layout.store(rows[first : first + batch])
    stored = time.process_time()
    layout.index()
    indexed = time.process_time()
    layout.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    times = {}
    for word in (RARE, "role"):
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            hits = layout.search(word)
            runs.append(time.perf_counter() - t)
        times[word] = statistics.median(runs) * 1e3
        times[word + " hits"] = len(hits)
        found[word] = hits
    n = len(rows)
    return {
        "insert": (stored - start) / n * 1e6,
        "index": (indexed - stored) / n * 1e6,
        "rare_ms": times[RARE],
        "rare_hits": times[RARE + " hits"],
        "common_ms": times["role"],
        "common_hits": times["role hits"],
    }


def run(args: argparse.Namespace) -> None:
    rows = make_rows(args.bodies, args.prose)
    size = sum(r[5] for r in rows) / len(rows)
    print(f"{len(rows)} bodies of {size:,.0f} characters on average, batches of {args.batch}")
    makers: list[Callable[[sqlite3.Connection], Any]] = [
        Rows,
        lambda db: Blocks(db, spans=True, compress=None),
        lambda db: Blocks(db, spans=False, compress=None),
    ]
    if zstandard is not None:
        makers.append(lambda db: Blocks(db, spans=False, compress=zstandard.ZstdCompressor(level=1).compress))
    expected: dict[str, set[str]] = {}
    for repeat in range(args.repeats):
        for make in makers:
            with tempfile.TemporaryDirectory() as folder:
                path = str(Path(folder) / "ledger.db")
                db = connect(path)
                layout = make(db)
                found: dict[str, set[str]] = {}
                got = measure(layout, rows, args.batch, found)
                # Every layout must answer what the per-body index answers, or its times mean nothing.
                expected = expected if layout.name != "rows" else found
                if found != expected:
                    raise SystemExit(f"{layout.name} found other bodies than rows did")
                on_disk = os.path.getsize(path) / len(rows)
                db.close()
            print(
                f"[{repeat}] {layout.name:18} CPU us a body: INSERT {got['insert']:5.2f}, index {got['index']:5.2f}, "
                f"both {got['insert'] + got['index']:5.2f}; {on_disk:6,.0f} bytes a body on disk; "
                f"search: rare {got['rare_ms']:7.2f} ms ({got['rare_hits']:.0f} hit), "
                f"common {got['common_ms']:8.1f} ms ({got['common_hits']:.0f} hits)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bodies", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500, help="bodies a flush writes (a block)")
    parser.add_argument("--prose", action="store_true", help="prompts of distinct words (see above)")
    parser.add_argument("--repeats", type=int, default=2)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
