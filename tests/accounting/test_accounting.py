"""Accounting through the library: records for abandoned streams, bodies only where asked, key lookups."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmmux import key_service as accounting_module
from llmmux.accounting import Accounting
from llmmux.config import config_from_dict
from llmmux.events import RequestRecord, new_request_id
from llmmux.ledger import SQLiteStore, ledger_path, open_store
from llmmux.ledger.keyops import create_key
from llmmux.router import Router
from upstreams import FakeOpenAI

USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as up:
        yield up


def router(up: FakeOpenAI, **sections: Any) -> Router:
    return Router.from_config(
        {
            **sections,
            "providers": {
                "main": {
                    "type": "openai_compatible",
                    "base_url": up.url,
                    "models": [{"name": "m1", "pricing": {"input": 1, "output": 2}}],
                }
            },
            "routing": {
                "exact_matches": {
                    "chat": {"provider": "main", "model": "m1"},
                    "debug": {"provider": "main", "model": "m1"},
                }
            },
        }
    )


async def test_a_stream_the_client_abandons_is_recorded_as_499_with_estimated_tokens(upstream: FakeOpenAI) -> None:
    records: list[RequestRecord] = []
    async with router(upstream) as r:
        Accounting(r)
        r.events.subscribe(records.append)
        stream = await r.open_stream(model="chat", messages=USER)
        first = await stream.__anext__()
        await stream.aclose()
    (record,) = records
    assert (record.status, record.error_kind, record.provider) == (499, "client_closed", "main")
    assert record.usage is not None and record.usage.estimated
    assert record.usage.completion_tokens == -(-len(first.choices[0].delta.content or "") // 4)
    assert record.cost_usd == pytest.approx((record.usage.prompt_tokens + 2 * record.usage.completion_tokens) / 1e6)


async def test_stream_text_is_kept_only_for_models_that_log_bodies(upstream: FakeOpenAI) -> None:
    records: list[RequestRecord] = []
    async with router(upstream, logging={"bodies": ["debug"]}) as r:
        Accounting(r)
        r.events.subscribe(records.append)
        for model in ("chat", "debug"):
            async for _ in r.stream(model=model, messages=USER):
                pass
    plain, debug = records
    assert plain.output is None and plain.output_chars == len("echo: hello there")
    assert debug.output is not None and "".join(debug.output) == "echo: hello there"


async def test_metrics_disabled_counts_nothing(upstream: FakeOpenAI) -> None:
    async with router(upstream, metrics={"enabled": False}) as r:
        accounting = Accounting(r)
        await r.chat(model="chat", messages=USER)
    assert accounting.metrics.requests.values == {} and accounting.metrics.in_flight.values == {}


async def test_an_unknown_key_is_looked_up_once_then_remembered(
    tmp_path: Path, upstream: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "l.db")
    accounting = Accounting(router(upstream), store=store)
    await store.open()
    lookups: list[str] = []
    real = store.key_by_hash

    async def counted(digest: str) -> Any:
        lookups.append(digest)
        return await real(digest)

    monkeypatch.setattr(store, "key_by_hash", counted)
    try:
        for _ in range(5):
            assert await accounting.authenticate(b"sk-llmmux-nobody") is None
        assert len(lookups) == 1  # the miss is remembered
        _, secret = await create_key(store, "late")
        found = await accounting.authenticate(secret.encode())
        assert found is not None and found.name == "late" and len(lookups) == 2
        assert await accounting.authenticate(secret.encode()) is found and len(lookups) == 2  # now from memory
        monkeypatch.setattr(accounting_module, "LOOKUPS_PER_S", 0)
        assert await accounting.authenticate(b"sk-llmmux-other") is None and len(lookups) == 2  # capped
    finally:
        await store.close()


def test_request_ids_are_unique_and_sort_by_time() -> None:
    ids = [new_request_id() for _ in range(2000)]
    assert len(set(ids)) == 2000 and all(len(i) == 24 for i in ids)
    assert [i[:12] for i in ids] == sorted(i[:12] for i in ids)


def test_where_the_ledger_lives(tmp_path: Path) -> None:
    (tmp_path / "providers.yaml").write_text("providers: {}\n")
    from llmmux.config import load_config

    folder_config, _ = load_config(tmp_path)
    assert ledger_path(folder_config) == tmp_path / "llmmux.db"
    single = tmp_path / "llmmux.yaml"
    single.write_text("ledger: {path: data/usage.db}\n")
    file_config, _ = load_config(single)
    assert ledger_path(file_config) == tmp_path / "data" / "usage.db"
    library, _ = config_from_dict({})
    assert ledger_path(library) is None and open_store(library) is None
    off, _ = config_from_dict({"ledger": {"enabled": False, "path": "/tmp/x.db"}})
    assert open_store(off) is None


async def test_key_checks_and_prices_survive_a_config_reload(upstream: FakeOpenAI) -> None:
    records: list[RequestRecord] = []
    async with router(upstream) as r:
        accounting = Accounting(r)
        r.events.subscribe(records.append)
        await r.chat(model="chat", messages=USER)
        reloaded, problems = config_from_dict(
            {
                "providers": {
                    "main": {
                        "type": "openai_compatible",
                        "base_url": upstream.url,
                        "models": [{"name": "m1", "pricing": {"input": 100, "output": 200}}],
                    }
                },
                "routing": {"exact_matches": {"chat": {"provider": "main", "model": "m1"}}},
            }
        )
        assert not problems.errors
        r.reload(reloaded)
        assert r.events.admit == accounting.admission.admit  # the new pipeline still asks the keys
        await r.chat(model="chat", messages=USER)
    before, after = records
    assert before.cost_usd == pytest.approx(8e-6) and after.cost_usd == pytest.approx(800e-6)
