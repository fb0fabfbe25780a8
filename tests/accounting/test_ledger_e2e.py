"""Every request the gateway accepts ends up in the ledger, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import openai
import pytest

from llmmux.ledger import Store
from support import Gateway
from support.ledgers import ledger_config, make_store
from upstreams import FakeOpenAI, closed_port_url

USER = [{"role": "user", "content": "hello there"}]
PRICES = {"input": 1.0, "output": 2.0}  # USD per million: 2 prompt + 3 completion tokens = 8e-6


def gateway_config(up: FakeOpenAI, url: str, **ledger: Any) -> dict[str, Any]:
    return {
        "ledger": ledger_config(url, **{"flush_interval": 0.05, **ledger}),
        "providers": {
            "main": {"type": "openai_compatible", "base_url": up.url, "models": [{"name": "m1", "pricing": PRICES}]},
            "quiet": {"type": "openai_compatible", "base_url": up.url, "stream_usage": False, "models": ["m1"]},
            "gone": {"type": "openai_compatible", "base_url": closed_port_url()},
        },
        "routing": {
            "exact_matches": {
                "chat": {"provider": "main", "model": "m1"},
                "fallback": {"provider": "gone", "model": "x", "fallback": ["chat"]},
                "dead": {"provider": "gone", "model": "x", "fallback": "none"},
                "quiet": {"provider": "quiet", "model": "m1"},
            }
        },
    }


async def rows_by_id(url: str) -> dict[str, dict[str, Any]]:
    store: Store = make_store(url)
    await store.open()
    try:
        return {r["request_id"]: r for r in await store.page_requests(limit=1000)}
    finally:
        await store.close()


def test_each_kind_of_request_is_recorded_with_its_details(ledger_url: str) -> None:
    with (
        FakeOpenAI() as up,
        Gateway(gateway_config(up, ledger_url)) as gw,
        openai.OpenAI(base_url=gw.url, api_key="x", max_retries=0) as sdk,
    ):
        ok = sdk.chat.completions.with_raw_response.create(model="chat", messages=USER)
        stream = sdk.chat.completions.with_raw_response.create(model="fallback", messages=USER, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices) == "echo: hello there"
        quiet = sdk.chat.completions.with_raw_response.create(model="quiet", messages=USER, stream=True)
        list(quiet.parse())
        with pytest.raises(openai.APIStatusError) as dead:
            sdk.chat.completions.create(model="dead", messages=USER)
        bad = gw.post_raw("/v1/chat/completions", b"{not json")
        ids = [
            ok.headers["x-request-id"],
            stream.headers["x-request-id"],
            quiet.headers["x-request-id"],
            dead.value.response.headers["x-request-id"],
            bad.headers["x-request-id"],
        ]
    rows = asyncio.run(rows_by_id(ledger_url))
    assert set(rows) == set(ids)
    done, streamed, estimated, failed, rejected = (rows[i] for i in ids)
    assert _pick(
        done,
        "client_api",
        "public_model",
        "provider",
        "model",
        "stream",
        "status",
        "attempts",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "estimated",
    ) == ("openai", "chat", "main", "m1", False, 200, 1, 2, 3, 5, False)
    assert done["cost_usd"] == pytest.approx(8e-6) and done["latency_ms"] > 0 and done["ttft_ms"] is None
    assert _pick(streamed, "stream", "provider", "attempts", "fallbacks", "retries", "status") == (
        True,
        "main",
        2,
        1,
        0,
        200,
    )
    assert streamed["ttft_ms"] is not None and 0 < streamed["ttft_ms"] <= streamed["latency_ms"]
    assert streamed["failed_attempts"][0]["provider"] == "gone" and streamed["cost_usd"] == pytest.approx(8e-6)
    # The quiet upstream sent no usage: estimated locally (3 + 3 + 11 bytes / 4; 17 bytes / 4) and marked so.
    assert _pick(estimated, "provider", "estimated", "prompt_tokens", "completion_tokens") == ("quiet", True, 9, 5)
    assert _pick(failed, "status", "error_kind", "provider", "attempts", "cost_usd") == (
        dead.value.status_code,
        "all_providers_failed",
        None,
        1,
        0.0,
    )
    assert _pick(rejected, "status", "public_model", "attempts") == (400, "", 0)


@pytest.mark.parametrize("stream", [False, True])
def test_each_prompt_of_a_completions_list_is_its_own_priced_row(ledger_url: str, stream: bool) -> None:
    with (
        FakeOpenAI() as up,
        Gateway(gateway_config(up, ledger_url)) as gw,
        openai.OpenAI(base_url=gw.url, api_key="x", max_retries=0) as sdk,
    ):
        reply = sdk.completions.with_raw_response.create(model="chat", prompt=["one", "two", "three"], stream=stream)
        parent = reply.headers["x-request-id"]
        if stream:
            list(reply.parse())
    rows = asyncio.run(rows_by_id(ledger_url))
    assert set(rows) == {f"{parent}-1", f"{parent}-2", f"{parent}-3"}  # one row per routed call, none dropped
    assert {r["parent_id"] for r in rows.values()} == {parent}
    assert all(r["cost_usd"] > 0 and r["status"] == 200 for r in rows.values())


def _pick(row: dict[str, Any], *names: str) -> tuple[Any, ...]:
    return tuple(row[n] for n in names)


async def _one(session: aiohttp.ClientSession, url: str, i: int) -> str | None:
    body = {"model": "chat", "messages": [{"role": "user", "content": f"request {i}"}], "stream": i % 4 == 0}
    try:
        async with session.post(url, json=body) as response:
            await response.read()
            return response.headers.get("x-request-id")
    except (TimeoutError, aiohttp.ClientError):
        return None  # refused or cut: the gateway had stopped accepting; it owes no record


async def _load(gw: Gateway, count: int, stop_after: int) -> list[str]:
    connector = aiohttp.TCPConnector(limit=count, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        tasks = [asyncio.create_task(_one(session, gw.url + "/chat/completions", i)) for i in range(count)]
        for finished, next_done in enumerate(asyncio.as_completed(tasks), 1):
            await next_done
            if finished == stop_after:
                gw.request_stop()  # graceful shutdown, mid-load
        results = [t.result() for t in tasks]
    return [r for r in results if r]


def test_no_record_is_lost_under_1000_concurrent_requests_and_a_shutdown_mid_load(ledger_url: str) -> None:
    with FakeOpenAI() as up:
        # Nothing is written until shutdown, so the shutdown's flush has to write every record.
        gw = Gateway(gateway_config(up, ledger_url, flush_interval=3600, batch_size=100_000))
        with gw:
            answered = asyncio.run(_load(gw, 1000, stop_after=400))
            gw.wait_stopped(timeout=60)
    rows = asyncio.run(rows_by_id(ledger_url))
    assert len(answered) >= 400
    missing = set(answered) - set(rows)
    assert not missing, f"{len(missing)} answered requests have no ledger record"
    assert len(rows) == len(answered)  # and nothing recorded that no client saw answered
    assert {r["status"] for r in rows.values()} == {200}
