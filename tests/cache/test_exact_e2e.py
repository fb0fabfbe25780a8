"""The exact cache end to end: real SDKs, the real app, a fake upstream that counts what reaches it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest

from support import Gateway
from support.ledgers import make_store
from upstreams import FakeOpenAI, drop_mid_stream, reply, tool_call, trickle

MASTER = "sk-master-cache-test"
PRICES = {"input": 1.0, "output": 2.0}


def config(up: FakeOpenAI, ledger: Path, **cache: Any) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER},
        "ledger": {"path": str(ledger), "flush_interval": 0.05},
        "providers": {
            "main": {"type": "openai_compatible", "base_url": up.url, "models": [{"name": "m1", "pricing": PRICES}]}
        },
        "routing": {
            "exact_matches": {
                "chat": {"provider": "main", "model": "m1"},
                "short": {"provider": "main", "model": "m1"},
                "plain": {"provider": "main", "model": "m1"},
            }
        },
        "routing_strategy": {
            "routes": {
                "chat": {"cache": {"mode": "exact", **cache}},
                "short": {"cache": {"ttl": 2}},
            }
        },
    }


@pytest.fixture
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def gw(up: FakeOpenAI, tmp_path: Path) -> Iterator[Gateway]:
    with Gateway(config(up, tmp_path / "ledger.db")) as gateway:
        yield gateway


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "chat", "messages": [{"role": "user", "content": text}], **extra}


def post(gw: Gateway, body: dict[str, Any], key: str = MASTER, **headers: str) -> httpx.Response:
    return httpx.post(gw.url + "/chat/completions", json=body, headers={"authorization": f"Bearer {key}", **headers})


def settle(gw: Gateway) -> None:
    """Wait (bounded) for background cache writes to land."""
    cache = gw.router.cache
    assert cache is not None
    deadline = time.monotonic() + 5
    while cache._pending and time.monotonic() < deadline:
        time.sleep(0.01)


def test_openai_sdk_second_request_never_reaches_the_upstream(gw: Gateway, up: FakeOpenAI) -> None:
    with openai.OpenAI(base_url=gw.url, api_key=MASTER, max_retries=0) as sdk:
        first = sdk.chat.completions.with_raw_response.create(model="chat", messages=ask("hi")["messages"])
        settle(gw)
        second = sdk.chat.completions.with_raw_response.create(model="chat", messages=ask("hi")["messages"])
    assert len(up.requests) == 1
    assert (first.headers["x-llmmux-cache"], second.headers["x-llmmux-cache"]) == ("miss", "hit")
    assert second.http_response.content == first.http_response.content  # byte for byte
    assert second.parse().choices[0].message.content == "echo: hi"


def test_openai_sdk_stream_hit_replays_the_same_events(gw: Gateway, up: FakeOpenAI) -> None:
    bodies = []
    for _ in range(2):
        with httpx.stream(
            "POST",
            gw.url + "/chat/completions",
            json=ask("stream me", stream=True),
            headers={"authorization": f"Bearer {MASTER}"},
        ) as response:
            bodies.append((response.headers["x-llmmux-cache"], response.read()))
        settle(gw)
    assert len(up.requests) == 1
    assert [b[0] for b in bodies] == ["miss", "hit"]
    assert bodies[1][1] == bodies[0][1] and bodies[1][1].endswith(b"data: [DONE]\n\n")
    with openai.OpenAI(base_url=gw.url, api_key=MASTER, max_retries=0) as sdk:
        chunks = list(sdk.chat.completions.create(model="chat", messages=ask("stream me")["messages"], stream=True))
        whole = sdk.chat.completions.create(
            model="chat", messages=ask("stream me")["messages"]
        )  # a stream fills a non-stream hit
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: stream me"
    assert whole.choices[0].message.content == "echo: stream me" and whole.choices[0].finish_reason == "stop"
    assert len(up.requests) == 1


def test_a_non_streamed_answer_replays_as_a_stream(gw: Gateway, up: FakeOpenAI) -> None:
    assert post(gw, ask("once")).headers["x-llmmux-cache"] == "miss"
    settle(gw)
    with openai.OpenAI(base_url=gw.url, api_key=MASTER, max_retries=0) as sdk:
        stream = sdk.chat.completions.with_raw_response.create(
            model="chat", messages=ask("once")["messages"], stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream.parse())
    assert stream.headers["x-llmmux-cache"] == "hit"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: once"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2
    assert len(up.requests) == 1


def test_what_changes_the_answer_misses(gw: Gateway, up: FakeOpenAI) -> None:
    post(gw, ask("q"))
    settle(gw)
    variants = [
        ask("q", temperature=0.2),
        ask("q", max_tokens=5),
        ask("q", seed=7),
        ask("q", tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]),
        {"model": "chat", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "q"}]},
        {**ask("q"), "model": "plain"},  # another public model
    ]
    for body in variants:
        post(gw, body)
    assert len(up.requests) == 1 + len(variants)
    # What does not change the answer still hits: stream flags, user, metadata.
    assert post(gw, ask("q", user="alice", stream_options={"include_usage": True})).headers["x-llmmux-cache"] == "hit"
    assert "x-llmmux-cache" not in post(gw, {**ask("q"), "model": "plain"}).headers  # a route without a cache


def test_client_directives(gw: Gateway, up: FakeOpenAI) -> None:
    assert post(gw, ask("d"), **{"cache-control": "no-store"}).headers["x-llmmux-cache"] == "miss"
    settle(gw)
    assert post(gw, ask("d")).headers["x-llmmux-cache"] == "miss"  # no-store: nothing was kept
    settle(gw)
    assert post(gw, ask("d")).headers["x-llmmux-cache"] == "hit"
    assert post(gw, ask("d"), **{"cache-control": "no-cache"}).headers["x-llmmux-cache"] == "refresh"
    assert post(gw, ask("d"), **{"x-llmmux-cache": "skip"}).headers["x-llmmux-cache"] == "bypass"
    assert post(gw, ask("d"), **{"x-llmmux-cache": "refresh"}).headers["x-llmmux-cache"] == "refresh"
    assert len(up.requests) == 5
    bad = post(gw, ask("d"), **{"x-llmmux-cache": "sometimes"})
    assert bad.status_code == 400 and "x-llmmux-cache" in bad.json()["error"]["message"]


def test_expired_entries_miss(gw: Gateway, up: FakeOpenAI) -> None:
    body = {**ask("ttl"), "model": "short"}
    post(gw, body)
    settle(gw)
    assert post(gw, body).headers["x-llmmux-cache"] == "hit"
    deadline = time.monotonic() + 15
    while post(gw, body).headers["x-llmmux-cache"] == "hit":
        assert time.monotonic() < deadline, "the entry never expired"
        time.sleep(0.1)
    assert len(up.requests) == 2


def test_cut_and_failed_streams_are_not_stored(gw: Gateway, up: FakeOpenAI) -> None:
    up.script(drop_mid_stream(after_chunks=1))
    with httpx.stream(
        "POST",
        gw.url + "/chat/completions",
        json=ask("cut", stream=True),
        headers={"authorization": f"Bearer {MASTER}"},
    ) as r:
        assert b'"error"' in r.read()  # the failure travels in-band, after the first chunk
    # A client that leaves mid-stream does not store what it saw either.
    up.script(trickle(0.2, content="one two three four five six", chunks=6))
    with httpx.stream(
        "POST",
        gw.url + "/chat/completions",
        json=ask("left", stream=True),
        headers={"authorization": f"Bearer {MASTER}"},
    ) as r:
        next(r.iter_bytes())
    deadline = time.monotonic() + 15  # until the gateway has seen the client leave (a 499 record)
    while 'status="499"' not in httpx.get(gw.root_url + "/metrics", headers={"authorization": f"Bearer {MASTER}"}).text:
        assert time.monotonic() < deadline, "the abandoned stream was never recorded"
        time.sleep(0.05)
    settle(gw)
    assert post(gw, ask("cut")).headers["x-llmmux-cache"] == "miss"
    assert post(gw, ask("left")).headers["x-llmmux-cache"] == "miss"


def test_tool_calls_and_errors_are_not_cached(gw: Gateway, up: FakeOpenAI) -> None:
    tools = [{"type": "function", "function": {"name": "charge_card", "parameters": {"type": "object"}}}]
    up.script(reply(tool_calls=[tool_call("charge_card", '{"usd": 5}')]))
    first = post(gw, ask("pay", tools=tools))
    assert first.json()["choices"][0]["message"]["tool_calls"], first.text
    settle(gw)
    assert post(gw, ask("pay", tools=tools)).headers["x-llmmux-cache"] == "miss"
    assert len(up.requests) == 2


def test_each_key_has_its_own_namespace(gw: Gateway, up: FakeOpenAI) -> None:
    keys = []
    for name in ("team-a", "team-b"):
        made = httpx.post(
            gw.root_url + "/admin/keys", json={"name": name}, headers={"authorization": f"Bearer {MASTER}"}
        )
        keys.append(made.json()["key"])
    assert post(gw, ask("secret plan"), keys[0]).headers["x-llmmux-cache"] == "miss"
    settle(gw)
    assert post(gw, ask("secret plan"), keys[1]).headers["x-llmmux-cache"] == "miss"
    settle(gw)
    assert post(gw, ask("secret plan"), keys[0]).headers["x-llmmux-cache"] == "hit"
    assert post(gw, ask("secret plan"), keys[1]).headers["x-llmmux-cache"] == "hit"
    assert len(up.requests) == 2


def test_a_global_scope_is_shared_across_keys(up: FakeOpenAI, tmp_path: Path) -> None:
    with Gateway(config(up, tmp_path / "ledger.db", scope="global")) as gw:
        keys = [
            httpx.post(
                gw.root_url + "/admin/keys", json={"name": n}, headers={"authorization": f"Bearer {MASTER}"}
            ).json()["key"]
            for n in ("a", "b")
        ]
        post(gw, ask("shared"), keys[0])
        settle(gw)
        assert post(gw, ask("shared"), keys[1]).headers["x-llmmux-cache"] == "hit"
    assert len(up.requests) == 1


def test_anthropic_sdk_hits_streaming_and_not(gw: Gateway, up: FakeOpenAI) -> None:
    client = anthropic.Anthropic(base_url=gw.root_url, api_key=MASTER, max_retries=0)
    messages: Any = [{"role": "user", "content": "bonjour"}]
    first = client.messages.with_raw_response.create(model="chat", max_tokens=50, messages=messages)
    settle(gw)
    second = client.messages.with_raw_response.create(model="chat", max_tokens=50, messages=messages)
    assert (first.headers["x-llmmux-cache"], second.headers["x-llmmux-cache"]) == ("miss", "hit")
    assert second.parse().content[0].text == first.parse().content[0].text == "echo: bonjour"  # type: ignore[union-attr]
    with client.messages.stream(model="chat", max_tokens=50, messages=messages) as stream:
        events = [e.type for e in stream]
        text = stream.get_final_message().content[0].text  # type: ignore[union-attr]
    assert text == "echo: bonjour"
    assert events[0] == "message_start" and events[-1] == "message_stop" and "content_block_delta" in events
    assert len(up.requests) == 1
    client.close()


def test_ollama_sdk_hits_streaming_and_not(gw: Gateway, up: FakeOpenAI) -> None:
    client = ollama.Client(host=gw.root_url, headers={"authorization": f"Bearer {MASTER}"})
    messages = [{"role": "user", "content": "hallo"}]
    try:
        parts = list(client.chat(model="chat", messages=messages, stream=True))
        settle(gw)
        again = list(client.chat(model="chat", messages=messages, stream=True))
        whole = client.chat(model="chat", messages=messages)
    finally:
        client._client.close()
    assert (
        "".join(p.message.content or "" for p in again)
        == "".join(p.message.content or "" for p in parts)
        == "echo: hallo"
    )
    assert again[-1].done and whole.message.content == "echo: hallo"
    assert len(up.requests) == 1


async def test_a_hit_is_a_ledger_row_that_cost_nothing(up: FakeOpenAI, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    with Gateway(config(up, ledger)) as gw:
        first = post(gw, ask("bill me"))
        settle(gw)
        second = post(gw, ask("bill me"))
        usage = httpx.get(gw.root_url + "/admin/usage?since=1d", headers={"authorization": f"Bearer {MASTER}"})
        deadline = time.monotonic() + 5
        while usage.json()["totals"]["requests"] < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            usage = httpx.get(gw.root_url + "/admin/usage?since=1d", headers={"authorization": f"Bearer {MASTER}"})
    store = make_store(str(ledger))
    await store.open()
    try:
        rows = {r["request_id"]: r for r in await store.page_requests(limit=10)}
    finally:
        await store.close()
    filled, hit = rows[first.headers["x-request-id"]], rows[second.headers["x-request-id"]]
    assert filled["cache"] == "miss" and filled["cost_usd"] > 0 and filled["cache_source"] is None
    assert hit["cache"] == "hit" and hit["cost_usd"] == 0 and hit["cache_source"] == filled["request_id"]
    assert hit["saved_usd"] == pytest.approx(filled["cost_usd"]) and hit["total_tokens"] == 0
    assert hit["provider"] == "main" and hit["model"] == "m1" and hit["attempts"] == 0
    totals = usage.json()["totals"]
    assert totals["cache_hits"] == 1 and totals["saved_usd"] == pytest.approx(filled["cost_usd"])


def test_only_keys_allowed_to_bypass_can(up: FakeOpenAI, tmp_path: Path) -> None:
    cfg = {**config(up, tmp_path / "ledger.db", scope="global"), "cache": {"allow_bypass": ["trusted"]}}
    with Gateway(cfg) as gw:
        trusted, other = (
            httpx.post(
                gw.root_url + "/admin/keys", json={"name": n}, headers={"authorization": f"Bearer {MASTER}"}
            ).json()["key"]
            for n in ("trusted", "other")
        )
        post(gw, ask("policy"), trusted)
        settle(gw)
        assert post(gw, ask("policy"), other, **{"x-llmmux-cache": "skip"}).headers["x-llmmux-cache"] == "hit"
        assert post(gw, ask("policy"), other, **{"cache-control": "no-cache"}).headers["x-llmmux-cache"] == "hit"
        assert post(gw, ask("policy"), trusted, **{"x-llmmux-cache": "skip"}).headers["x-llmmux-cache"] == "bypass"
    assert len(up.requests) == 2


def test_responses_door_hits_streaming_and_not(gw: Gateway, up: FakeOpenAI) -> None:
    with openai.OpenAI(base_url=gw.url, api_key=MASTER, max_retries=0) as sdk:
        first = sdk.responses.with_raw_response.create(model="chat", input="codex asks")
        settle(gw)
        second = sdk.responses.with_raw_response.create(model="chat", input="codex asks")
        with sdk.responses.with_streaming_response.create(model="chat", input="codex asks", stream=True) as streamed:
            events = list(streamed.parse())
    assert (first.headers["x-llmmux-cache"], second.headers["x-llmmux-cache"]) == ("miss", "hit")
    assert second.parse().output_text == first.parse().output_text == "echo: codex asks"
    assert second.parse().id != first.parse().id  # each answer is its own stored response
    assert streamed.headers["x-llmmux-cache"] == "hit"
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert events[-1].response.output_text == "echo: codex asks"  # type: ignore[union-attr]
    assert len(up.requests) == 1
