"""Request bodies beside the ledger: stored redacted and cut, found by their words, removed by retention."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from llmmux.config.model import BodyStoreConfig
from llmmux.events import CallContext, RequestRecord
from llmmux.ledger import Store
from llmmux.ledger import bodies as module
from llmmux.ledger.bodies import INDEX_SLICE, MAX_UNINDEXED, QUIET_ROWS, BodyLog, index_plan
from llmmux.ledger.body_rows import cut
from llmmux.ledger.schema import MIGRATIONS
from llmmux.ledger.sqlite import INSERT_CHUNKS, PAGE_SIZE
from llmmux.ledger.store import RequestFilters
from llmmux.logs import Masker
from llmmux.types import ChatRequest, ChatResponse, Choice, Message
from support.ledgers import ledger_row, make_store

SECRET = "sk-provider-secret-0123456789"


def record(request_id: str, prompt: str, reply: str | None, *, ts: float = 1_790_000_000.0) -> RequestRecord:
    context = CallContext(
        request_id,
        "openai",
        started=ts,
        headers=[(b"authorization", f"Bearer {SECRET}".encode()), (b"user-agent", b"pytest")],
    )
    done = RequestRecord(context, "chat", stream=reply is None, provider="p", model="m")
    done.request = ChatRequest(model="chat", messages=[Message(role="user", content=prompt)])
    if reply is not None:
        done.response = ChatResponse(
            id="r", model="m", created=0, choices=[Choice(message=Message(role="assistant", content=reply))]
        )
    else:
        done.output = ["streamed ", "walrus ", "text"]
    return done


def body_log(store: Store, **settings: object) -> BodyLog:
    config = BodyStoreConfig(**settings)  # type: ignore[arg-type]
    return BodyLog(store, config, Masker([SECRET]))


# SQLite's FTS5 index is built apart from the INSERT (deferred while busy, no word positions);
# PostgreSQL's is a generated column, indexed with each row, so these run on SQLite alone.
SQLITE_ONLY = pytest.mark.parametrize("ledger_url", ["sqlite"], indirect=True)


async def write(store: Store, bodies: BodyLog, *records: RequestRecord) -> None:
    await store.insert_requests([ledger_row(request_id=r.context.request_id, ts=r.context.started) for r in records])
    for r in records:
        bodies.add(r)
    await bodies.flush()
    await bodies.index()  # a handful of bodies: the gateway is quiet, they are indexed at once


async def search(store: Store, text: str) -> list[str]:
    return [r["request_id"] for r in await store.page_requests(50, filters=RequestFilters(text=text))]


async def test_words_of_prompts_and_replies_find_their_requests(store: Store) -> None:
    bodies = body_log(store)
    await write(
        store,
        bodies,
        record("a", "tell me about walruses", "Walruses live in the Arctic"),
        record("b", "and penguins?", "Penguins live in the south"),
        record("c", "and a stream", None),
    )
    assert await search(store, "arctic") == ["a"]
    assert await search(store, "penguins south") == ["b"]
    assert await search(store, "walrus") == ["c"]  # whole words, as both engines index them
    assert sorted(await search(store, "live")) == ["a", "b"]
    assert await search(store, "penguins arctic") == []
    # Search syntax in a user's words is taken literally, never as an error.
    assert await search(store, 'NEAR("x" OR *) column:') == []
    await bodies.aclose()


async def test_stored_bodies_are_redacted_cut_and_their_headers_masked(store: Store) -> None:
    bodies = body_log(store, max_bytes=300, redact=[r"\b\d{4}-\d{4}-\d{4}-\d{4}\b"])
    long_reply = "word " * 200
    await write(store, bodies, record("a", f"card 4111-1111-1111-1111 key {SECRET}", long_reply))
    found = await bodies.get("a")
    assert found is not None
    assert "4111" not in found["request"] and "[redacted]" in found["request"]
    assert SECRET not in found["request"] and "sk-****" in found["request"]
    assert found["response"].endswith("[... cut at 300 bytes]") and len(found["response"].encode()) < 400
    assert found["headers"]["user-agent"] == "pytest"
    assert SECRET not in found["headers"]["authorization"]
    assert await bodies.get("missing") is None
    await bodies.aclose()


async def test_retention_removes_old_bodies_then_the_oldest_over_the_size_limit(store: Store) -> None:
    now = [1_790_000_000.0]
    bodies = BodyLog(store, BodyStoreConfig(max_age_s=3600, max_total_bytes=10**9), Masker(), clock=lambda: now[0])
    await write(store, bodies, *(record(f"old{i}", "ancient walrus", "yes", ts=now[0] - 7200) for i in range(3)))
    await write(store, bodies, *(record(f"new{i}", "recent walrus", "yes", ts=now[0] - 60) for i in range(4)))
    assert await bodies.enforce_retention() == 3
    assert await search(store, "ancient") == []
    assert len(await search(store, "recent")) == 4
    sizes = [int(r[0]) for r in await store.fetch("SELECT bytes FROM request_bodies ORDER BY id")]
    bodies.config.max_total_bytes = sum(sizes[-2:])  # room for the newest two
    assert await bodies.enforce_retention() == 2
    assert sorted(await search(store, "recent")) == ["new2", "new3"]
    bodies.config.max_total_bytes = 1  # smaller than any body: none is kept
    assert await bodies.enforce_retention() == 2
    assert await bodies.count() == 0
    await write(store, bodies, record("after", "fresh walrus", "yes", ts=now[0]))
    assert await search(store, "fresh") == ["after"]
    await bodies.aclose()


async def test_the_size_check_reads_only_new_bodies_and_sees_what_other_workers_removed(store: Store) -> None:
    now = [1_790_000_000.0]
    config = BodyStoreConfig(max_age_s=3600, max_total_bytes=10**9)
    one, two = (BodyLog(store, config, Masker(), clock=lambda: now[0]) for _ in range(2))  # two workers
    await write(store, one, *(record(f"a{i}", "walrus", "yes", ts=now[0]) for i in range(5)))
    assert await one.enforce_retention() == 0 and await two.enforce_retention() == 0
    read: list[tuple[str, tuple[object, ...]]] = []
    fetch = store.fetch

    async def recording(sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        read.append((sql, args))
        return await fetch(sql, args)

    store.fetch = recording  # type: ignore[method-assign]
    await write(store, two, *(record(f"b{i}", "walrus", "yes", ts=now[0]) for i in range(3)))
    assert await one.enforce_retention() == 0
    first_new = min(int(args[0]) for sql, args in read if sql == module._BYTES_FROM)  # type: ignore[call-overload]
    stored = [int(r[0]) for r in await fetch("SELECT id FROM request_bodies ORDER BY id")]
    assert first_new > stored[0]  # the bodies counted a minute ago are not read again
    assert all("OVER" not in sql for sql, _ in read)
    sizes = [int(r[0]) for r in await fetch("SELECT bytes FROM request_bodies ORDER BY id")]
    config.max_total_bytes = sum(sizes[-4:])
    assert await one.enforce_retention() == 4  # worker one removes the oldest four...
    assert await two.enforce_retention() == 0  # ...and worker two counts what is left, not what it saw before
    assert await two.stored_bytes.total() == sum(sizes[-4:])
    config.max_total_bytes = sum(sizes[-1:])
    assert await two.enforce_retention() == 3
    assert [r["request_id"] for r in await store.page_requests(50, filters=RequestFilters(text="walrus"))] == ["b2"]
    store.fetch = fetch  # type: ignore[method-assign]
    await one.aclose()
    await two.aclose()


def test_cut_keeps_whole_characters() -> None:
    assert cut("héllo", 100) == "héllo"
    assert cut("ééééé", 3) == "é\n[... cut at 3 bytes]"


async def test_a_secret_the_masker_learns_later_is_masked_from_then_on(store: Store) -> None:
    """A config reload refills the masker; the next batch is redacted with the new secrets."""
    bodies = body_log(store)
    bodies.masker.add("walrus-provider-token-42")
    await write(store, bodies, record("b", "the walrus-provider-token-42 leaked", "ok"))
    found = await bodies.get("b")
    assert found is not None and "walrus-provider-token-42" not in found["request"]
    assert found["headers"]["authorization"] == "Bearer ****"
    await bodies.aclose()


async def test_a_header_learnt_as_a_secret_is_masked_though_its_piece_was_cached(store: Store) -> None:
    """Header pieces are redacted once and cached: a secret learnt later drops the cache."""
    bodies = body_log(store)
    sent = record("a", "hello", "ok")
    sent.context.headers = [(b"x-team", b"team-credential-77")]  # no credential word: kept as is
    await write(store, bodies, sent)
    first = await bodies.get("a")
    assert first is not None and first["headers"]["x-team"] == "team-credential-77"
    bodies.masker.add("team-credential-77")
    again = record("b", "hello", "ok")
    again.context.headers = sent.context.headers
    await write(store, bodies, again)
    found = await bodies.get("b")
    assert found is not None and found["headers"]["x-team"] == "tea****"
    await bodies.aclose()


def test_indexing_waits_while_busy_unless_the_backlog_is_past_its_bound() -> None:
    assert index_plan(unindexed=50, arrived=QUIET_ROWS) == 50  # quiet: all of it
    assert index_plan(unindexed=10 * INDEX_SLICE, arrived=0) == INDEX_SLICE  # quiet: a slice a tick
    assert index_plan(unindexed=MAX_UNINDEXED, arrived=QUIET_ROWS + 1) == 0  # busy: none yet
    assert index_plan(unindexed=MAX_UNINDEXED + 700, arrived=5000) == 700  # busy: the excess only


@SQLITE_ONLY
async def test_bodies_stored_while_busy_are_found_before_and_after_they_are_indexed(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "QUIET_ROWS", 1)  # two bodies in a tick: busy
    bodies = body_log(store)
    await write(store, bodies, record("a", "a walrus_50% prompt", "Walruses reply"), record("b", "penguin", "cold"))
    assert bodies.unindexed == 2
    assert await search(store, "WALRUS_50%") == ["a"]  # found by the scan, case folded, LIKE's wildcards literal
    assert await search(store, "walrus 5") == ["a"]
    assert await search(store, "walrus_5%") == [] and await search(store, "penguin walrus") == []
    await bodies.index()  # nothing arrived since: quiet, the backlog is indexed
    assert bodies.unindexed == 0
    assert (await store.fetch("SELECT up_to FROM request_bodies_indexed"))[0][0] == 2
    assert await search(store, "WALRUS_50%") == ["a"] and await search(store, "penguin") == ["b"]
    await bodies.aclose()


@SQLITE_ONLY
async def test_retention_of_bodies_not_yet_indexed_keeps_the_index_whole(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1_790_000_000.0]
    bodies = BodyLog(store, BodyStoreConfig(max_age_s=3600), Masker(), clock=lambda: now[0])
    await write(store, bodies, *(record(f"old{i}", "ancient walrus", "yes", ts=now[0] - 7200) for i in range(2)))
    monkeypatch.setattr(module, "QUIET_ROWS", 0)
    await write(store, bodies, *(record(f"mid{i}", "ancient penguin", "yes", ts=now[0] - 7000) for i in range(2)))
    await write(store, bodies, record("new", "recent walrus", "yes", ts=now[0]))
    assert bodies.unindexed == 3
    assert await bodies.enforce_retention() == 4  # two indexed, two not: each forgotten as it must be
    await bodies.index(everything=True)
    assert await store.fetch("INSERT INTO request_bodies_fts (request_bodies_fts) VALUES ('integrity-check')") == []
    assert await search(store, "walrus") == ["new"] and await search(store, "ancient") == []
    await bodies.aclose()


async def test_a_full_queue_drops_and_counts_bodies_instead_of_waiting(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = body_log(store)
    monkeypatch.setattr(module, "MAX_PENDING_BYTES", 2000)
    records = [record(f"r{i}", "walrus", "reply") for i in range(4)]
    for r in records:
        r.context.body = b'{"messages": "walrus"}' + b" " * 1000
        bodies.add(r)
    assert bodies.dropped == 2  # two fit the byte bound; the rest are counted, not queued
    assert (bodies.state()["queued"], bodies.state()["dropped"]) == (2, 2)
    await store.insert_requests([ledger_row(request_id=r.context.request_id) for r in records])
    await bodies.flush()
    assert await bodies.count() == 2
    bodies.add(records[2])  # written out: the queue has room again
    assert bodies.dropped == 2
    await bodies.aclose()


async def test_rows_a_failed_write_gives_back_are_written_next_time(store: Store) -> None:
    bodies = body_log(store)
    await store.insert_requests([ledger_row(request_id="a")])
    bodies.add(record("a", "walrus", "reply"))
    real = store.transaction
    calls: list[object] = []

    async def failing(steps: object) -> None:
        calls.append(steps)
        raise OSError("disk full")

    store.transaction = failing  # type: ignore[method-assign]
    with pytest.raises(OSError):
        await bodies.flush()
    store.transaction = real  # type: ignore[method-assign]
    assert calls and await bodies.count() == 0
    await bodies.flush()
    await bodies.index()
    assert await bodies.count() == 1 and await search(store, "walrus") == ["a"]
    await bodies.aclose()


async def test_a_flush_cancelled_mid_batch_loses_nothing(store: Store) -> None:
    """The server stopping cancels the body log's task; its last flush still writes that batch, correctly."""
    bodies = body_log(store)
    await store.insert_requests([ledger_row(request_id=i) for i in ("a", "b")])
    bodies.add(record("a", "first walrus", "one"))
    flushing = asyncio.create_task(bodies.flush())
    await asyncio.sleep(0)  # the batch is being redacted on the body log's thread
    flushing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await flushing
    bodies.add(record("b", "second walrus", "two"))
    await bodies.flush()
    await bodies.index()
    assert sorted(await search(store, "walrus")) == ["a", "b"]
    found = await bodies.get("b")
    assert found is not None and "second walrus" in found["request"]  # no stale reply read as this batch's
    await bodies.aclose()


def test_batches_of_every_size_share_a_few_compiled_inserts() -> None:
    """Each distinct statement stays compiled in the writer's cache: one per batch size would hold megabytes."""
    statements: set[str] = set()
    for size in range(1, 700):
        steps = module._sqlite_steps([(f"r{i}", 0.0, "{}", "q", "a", 3) for i in range(size)])
        assert sum(len(args[0]) for _, args in steps) == size * 6  # every row's six values, once
        statements |= {sql for sql, _ in steps}
    assert len(statements) <= len(INSERT_CHUNKS)


@SQLITE_ONLY
async def test_the_index_keeps_no_word_positions_and_finds_words_that_fts5_splits(store: Store) -> None:
    (sql,) = (await store.fetch("SELECT sql FROM sqlite_master WHERE name = 'request_bodies_fts'"))[0]
    assert "detail=none" in sql and "columnsize=0" in sql
    assert await store.fetch("SELECT v FROM request_bodies_fts_config WHERE k = 'automerge'") == [(16,)]
    bodies = body_log(store)
    await write(store, bodies, record("a", "ask gpt-4o about naïve café", "हैलो वर्ल्ड"), record("b", "gpt 3", "4 o"))
    assert bodies.unindexed == 0
    assert await search(store, "GPT-4o") == ["a"]  # a body with every token: "gpt" and "4o"
    assert await search(store, "naïve CAFÉ") == ["a"] and await search(store, "वर्ल्ड") == ["a"]
    assert sorted(await search(store, "gpt")) == ["a", "b"]
    assert await search(store, '("4o" gpt*)') == ["a"]  # FTS5's syntax is taken as words
    await bodies.aclose()


OLD_INDEX = "INSERT INTO request_bodies_fts (rowid, request, response) SELECT id, request, response FROM request_bodies"


@SQLITE_ONLY
@pytest.mark.parametrize("version", [8, 9])  # the index with positions; without, but with row sizes
async def test_a_ledger_indexed_by_an_older_llmmux_is_searched_and_reindexed_after_the_upgrade(
    ledger_url: str, version: int
) -> None:
    old = make_store(ledger_url)
    await old.open(MIGRATIONS[:version])  # as an older llmmux built it
    sent = record("a", "an old walrus", "yes")
    await old.insert_requests([ledger_row(request_id="a", ts=sent.context.started)])
    bodies = body_log(old)
    bodies.add(sent)
    await bodies.aclose()
    await old.transaction([(OLD_INDEX, [()])])
    await old.close()
    upgraded = make_store(ledger_url)
    await upgraded.open()
    try:
        bodies = body_log(upgraded)
        index = await upgraded.fetch("SELECT sql FROM sqlite_master WHERE name = 'request_bodies_fts'")
        assert "detail=none" in index[0][0] and "columnsize=0" in index[0][0]
        assert await search(upgraded, "walrus") == ["a"]  # not indexed again yet: found by the scan
        assert await bodies.index(everything=True) == 1
        assert await search(upgraded, "old walrus") == ["a"]
        check = "INSERT INTO request_bodies_fts (request_bodies_fts) VALUES ('integrity-check')"
        assert await upgraded.fetch(check) == []
        await bodies.aclose()
    finally:
        await upgraded.close()


@SQLITE_ONLY
async def test_a_new_ledger_takes_16_kb_pages_and_an_old_one_keeps_its_own(ledger_url: str) -> None:
    """Bodies of a few KB cost a third less to INSERT into 16 KB pages; an existing file keeps 4 KB."""
    old_path = ledger_url.replace("llmmux.db", "old.db")
    Path(old_path).parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(old_path)) as db:
        db.execute("CREATE TABLE before_llmmux (x)")  # a file SQLite made with its default pages
    for path, pages in ((ledger_url, PAGE_SIZE), (old_path, 4096)):
        store = make_store(path)
        await store.open()
        try:
            assert (await store.fetch("PRAGMA page_size"))[0][0] == pages
            bodies = body_log(store)
            await write(store, bodies, record("a", "pages of walruses", "ok"))
            assert await search(store, "walruses") == ["a"]
            await bodies.aclose()
        finally:
            await store.close()
