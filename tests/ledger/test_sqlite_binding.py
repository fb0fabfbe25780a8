"""The SQLite ledger binds a row's NULLs, booleans and blobs through registered adapters: sqlite3
otherwise looks each one up as an object to adapt (two AttributeErrors formatted per value)."""

from __future__ import annotations

import sqlite3

import llmmux.ledger.sqlite  # noqa: F401  (registers the adapters)


def test_nulls_booleans_and_blobs_bind_as_before_through_registered_adapters() -> None:
    for kind in (type(None), bool, bytes):
        assert (kind, sqlite3.PrepareProtocol) in sqlite3.adapters
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (a, b, c, d)")
    db.execute("INSERT INTO t VALUES (?, ?, ?, ?)", (None, True, b"\x00raw", False))
    row = db.execute("SELECT a, typeof(a), b, typeof(b), c, typeof(c), d FROM t").fetchone()
    assert row == (None, "null", 1, "integer", b"\x00raw", "blob", 0)
