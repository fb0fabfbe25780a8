"""Tags and end users end to end: named on every door, recorded, reported, routed and limited."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from llmmux.ledger import Store
from support import Gateway
from support.ledgers import ledger_config, make_store
from upstreams import FakeOpenAI

MASTER = "sk-master-0123456789abcdef"
USER = [{"role": "user", "content": "hello there"}]
# 2 prompt tokens * $1000/M + 3 completion tokens * $2000/M = $0.008 a request.
PRICES = {"input": 1000, "output": 2000}
COST = 0.008


def config(main: FakeOpenAI, url: str, cheap: FakeOpenAI | None = None, **extra: Any) -> dict[str, Any]:
    providers: dict[str, Any] = {
        "main": {"type": "openai_compatible", "base_url": main.url, "models": [{"name": "m1", "pricing": PRICES}]},
    }
    routes = {"chat": {"provider": "main", "model": "m1"}}
    if cheap is not None:
        providers["cheap"] = {"type": "openai_compatible", "base_url": cheap.url, "models": ["small"]}
        routes["cheap-tier"] = {"provider": "cheap", "model": "small"}
    return {
        "server": {"master_key": MASTER},
        "ledger": ledger_config(url, flush_interval=0.05),
        "providers": providers,
        "routing": {"exact_matches": routes},
        **extra,
    }


def create_key(gw: Gateway, **fields: Any) -> dict[str, Any]:
    response = gw.post_json("/admin/keys", fields, MASTER)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def rows(url: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        store: Store = make_store(url)
        await store.open()
        try:
            return await store.page_requests(limit=1000)
        finally:
            await store.close()

    return asyncio.run(read())


def test_tags_from_every_door_and_the_key_are_recorded_and_reported(ledger_url: str) -> None:
    with FakeOpenAI() as up, Gateway(config(up, ledger_url)) as gw:
        key = create_key(gw, name="app", tags="env:prod")
        with openai.OpenAI(base_url=gw.url, api_key=key["key"], max_retries=0) as sdk:
            sdk.chat.completions.create(model="chat", messages=USER, extra_headers={"x-llmmux-tags": "search, beta"})
            sdk.chat.completions.create(model="chat", messages=USER, metadata={"tags": "search"})
            sdk.embeddings.create(model="chat", input="hi", extra_headers={"x-llmmux-tags": "embed"})
        with anthropic.Anthropic(base_url=gw.root_url, api_key=key["key"], max_retries=0) as claude:
            claude.messages.create(
                model="chat", max_tokens=16, messages=USER, extra_body={"metadata": {"tags": ["agent", "search"]}}
            )
        ollama = httpx.post(
            gw.root_url + "/api/chat",
            json={"model": "chat", "messages": USER, "stream": False},
            headers={"authorization": f"Bearer {key['key']}", "x-llmmux-tags": "local-ui"},
            timeout=10,
        )
        assert ollama.status_code == 200, ollama.text
        gw.wait_for_ledger(5)
        # Tags are for the gateway: no upstream receives them (OpenAI and Anthropic refuse them).
        sent = [r.json for r in up.requests]
        assert len(sent) == 5 and not any("tags" in (body.get("metadata") or {}) for body in sent)
        by_tag = gw.get("/admin/usage?by=tag", MASTER).json()
        search = gw.get("/admin/usage?by=model&tag=search", MASTER).json()
    counts = {r["group"]: r["requests"] for r in by_tag["rows"]}
    assert counts == {"env:prod": 5, "search": 3, "beta": 1, "embed": 1, "agent": 1, "local-ui": 1}
    assert by_tag["totals"]["requests"] == 5  # each request once in the totals
    assert search["tag"] == "search" and search["totals"]["requests"] == 3
    assert search["totals"]["cost_usd"] == pytest.approx(3 * COST)
    recorded = sorted(r["tags"] for r in rows(ledger_url))
    assert '["search","beta","env:prod"]' in recorded and '["agent","search","env:prod"]' in recorded


def test_bad_tags_are_a_400_in_each_doors_own_shape(tmp_path: Path) -> None:
    with FakeOpenAI() as up, Gateway(config(up, str(tmp_path / "l.db"))) as gw:
        with openai.OpenAI(base_url=gw.url, api_key=MASTER, max_retries=0) as sdk:
            with pytest.raises(openai.BadRequestError, match="invalid tag"):
                sdk.chat.completions.create(model="chat", messages=USER, extra_headers={"x-llmmux-tags": "a b"})
            with pytest.raises(openai.BadRequestError, match="at most 16 tags"):
                many = ",".join(f"t{i}" for i in range(17))
                sdk.chat.completions.create(model="chat", messages=USER, extra_headers={"x-llmmux-tags": many})
        with anthropic.Anthropic(base_url=gw.root_url, api_key=MASTER, max_retries=0) as claude:
            with pytest.raises(anthropic.BadRequestError) as refused:
                claude.messages.create(
                    model="chat", max_tokens=16, messages=USER, extra_body={"metadata": {"tags": ["x" * 65]}}
                )
        assert isinstance(refused.value.body, dict) and refused.value.body["type"] == "error"
        assert "invalid tag" in refused.value.body["error"]["message"]


def test_a_tag_route_sends_tagged_requests_to_the_other_backend(tmp_path: Path) -> None:
    rules = {"tag_routes": [{"tag": "batch", "to": "cheap-tier", "models": ["chat*"]}]}
    url = str(tmp_path / "l.db")
    with FakeOpenAI() as main, FakeOpenAI() as cheap, Gateway(config(main, url, cheap, **rules)) as gw:
        with openai.OpenAI(base_url=gw.url, api_key=MASTER, max_retries=0) as sdk:
            plain = sdk.chat.completions.with_raw_response.create(model="chat", messages=USER)
            tagged = sdk.chat.completions.with_raw_response.create(
                model="chat", messages=USER, extra_headers={"x-llmmux-tags": "nightly,batch"}
            )
            streamed = sdk.chat.completions.with_raw_response.create(
                model="chat", messages=USER, stream=True, metadata={"tags": "batch"}
            )
            list(streamed.parse())
        gw.wait_for_ledger(3)
    assert plain.headers["x-llmmux-provider"] == "main"
    assert tagged.headers["x-llmmux-provider"] == "cheap" and tagged.headers["x-llmmux-model"] == "small"
    assert streamed.headers["x-llmmux-provider"] == "cheap"
    assert len(main.requests) == 1 and len(cheap.requests) == 2
    assert sorted((r["public_model"], r["provider"]) for r in rows(url)) == [
        ("chat", "cheap"),
        ("chat", "cheap"),
        ("chat", "main"),
    ]


def test_two_end_users_behind_one_key_are_limited_separately(tmp_path: Path) -> None:
    url = str(tmp_path / "l.db")
    with FakeOpenAI() as up, Gateway(config(up, url)) as gw:
        key = create_key(gw, name="app", end_user_limits={"rpm": 1})
        with openai.OpenAI(base_url=gw.url, api_key=key["key"], max_retries=0) as sdk:
            sdk.chat.completions.create(model="chat", messages=USER, user="alice")
            with pytest.raises(openai.RateLimitError) as limited:
                sdk.chat.completions.create(model="chat", messages=USER, user="alice")
            sdk.chat.completions.create(model="chat", messages=USER, extra_headers={"x-llmmux-end-user": "bob"})
            sdk.chat.completions.create(model="chat", messages=USER)  # no end user: the key's limits only
        with anthropic.Anthropic(base_url=gw.root_url, api_key=key["key"], max_retries=0) as claude:
            claude.messages.create(model="chat", max_tokens=16, messages=USER, metadata={"user_id": "carol"})
            with pytest.raises(anthropic.RateLimitError):
                claude.messages.create(model="chat", max_tokens=16, messages=USER, metadata={"user_id": "carol"})
        assert "end user 'alice' of API key 'app': 1 requests per minute" in str(limited.value)
        assert limited.value.response.headers.get("retry-after")
        gw.wait_for_ledger(6)
        by_user = gw.get("/admin/usage?by=user", MASTER).json()
    assert {r["group"]: r["requests"] for r in by_user["rows"]} == {"alice": 2, "bob": 1, "": 1, "carol": 2}


def test_an_end_user_budget_stops_that_end_user_only(ledger_url: str) -> None:
    with FakeOpenAI() as up, Gateway(config(up, ledger_url)) as gw:
        key = create_key(gw, name="app", end_user_limits={"budget": 0.01}, budget_period="daily")
        with openai.OpenAI(base_url=gw.url, api_key=key["key"], max_retries=0) as sdk:
            answered = 0
            with pytest.raises(openai.RateLimitError) as refused:
                for _ in range(5):
                    sdk.chat.completions.create(model="chat", messages=USER, user="alice")
                    answered += 1
            sdk.chat.completions.create(model="chat", messages=USER, user="bob")
        gw.wait_for_ledger(4)
    assert answered == 2  # 0.008 (under), 0.016 (crossed it): the third is refused
    message = str(refused.value)
    assert "Budget exceeded for end user 'alice' of API key 'app': spent $0.0160 of $0.01 this day" in message
    assert "it resets at" in message
    # The end user's spend is in the ledger: a restarted gateway still refuses alice.
    with FakeOpenAI() as up, Gateway(config(up, ledger_url)) as gw:
        with openai.OpenAI(base_url=gw.url, api_key=key["key"], max_retries=0) as sdk:
            with pytest.raises(openai.RateLimitError, match="end user 'alice'"):
                sdk.chat.completions.create(model="chat", messages=USER, user="alice")
            sdk.chat.completions.create(model="chat", messages=USER, user="bob")


def test_hashed_end_users_leave_no_raw_id_anywhere(tmp_path: Path) -> None:
    url = str(tmp_path / "l.db")
    raw_id = "alice@example.com"
    with FakeOpenAI() as up, Gateway(config(up, url, privacy={"hash_end_users": True})) as gw:
        key = create_key(gw, name="app", end_user_limits={"rpm": 1})
        with openai.OpenAI(base_url=gw.url, api_key=key["key"], max_retries=0) as sdk:
            sdk.chat.completions.create(model="chat", messages=USER, user=raw_id)
            with pytest.raises(openai.RateLimitError) as limited:
                sdk.chat.completions.create(model="chat", messages=USER, extra_headers={"x-llmmux-end-user": raw_id})
            sdk.chat.completions.create(model="chat", messages=USER, user="bob@example.com")
        gw.wait_for_ledger(3)
        report = gw.get("/admin/usage?by=user", MASTER).text
    assert raw_id not in str(limited.value)
    recorded = [r["end_user"] for r in rows(url)]
    assert len(recorded) == 3 and all(u.startswith("eu_") and len(u) == 35 for u in recorded)
    assert len(set(recorded)) == 2  # the same person hashes the same, header or body
    assert raw_id not in report
    for file in tmp_path.iterdir():  # the database, its WAL and anything else the ledger wrote
        assert raw_id.encode() not in file.read_bytes()
