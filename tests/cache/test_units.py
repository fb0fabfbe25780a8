"""The cache's pure parts: key, entries, the LRU, the vector index, settings and directives."""

from __future__ import annotations

import msgspec
import pytest

from llmmux.cache.entry import CacheEntry, cacheable, decode, encode, fold, unfold
from llmmux.cache.key import exact_key, guard_key, prompt_text
from llmmux.cache.store import MemoryStore
from llmmux.cache.vectors import VectorIndex
from llmmux.config.cache_settings import CachePolicy, parse_config, parse_policy
from llmmux.config.fields import FieldReader
from llmmux.config.problems import Problems
from llmmux.events import CallContext, RequestRecord
from llmmux.loading import load
from llmmux.logs import request_line
from llmmux.server.http import cache_directive
from llmmux.types import ChatRequest, ChatResponse, Choice, Message, Tool, ToolCall, Usage
from llmmux.wire import openai as wire


def chat(**body: object) -> ChatRequest:
    return wire.decode_chat_request({"model": "m", "messages": [{"role": "user", "content": "hi"}], **body})


POLICY = CachePolicy()


def test_the_key_ignores_delivery_and_follows_the_answer() -> None:
    base = exact_key(chat(), POLICY, "k1")
    assert exact_key(chat(stream=True, stream_options={"include_usage": True}), POLICY, "k1") == base
    assert exact_key(chat(user="alice", metadata={"a": "b"}), POLICY, "k1") == base
    for changed in ({"temperature": 0.1}, {"max_tokens": 9}, {"stop": ["x"]}, {"reasoning_effort": "high"}, {"n": 2}):
        assert exact_key(chat(**changed), POLICY, "k1") != base, changed
    assert exact_key(chat(), POLICY, "k2") != base  # another key's namespace
    shared = CachePolicy(scope="global")
    assert exact_key(chat(), shared, "k1") == exact_key(chat(), shared, "k2")
    assert exact_key(chat(user="a"), CachePolicy(include_user=True), "k1") != exact_key(
        chat(user="b"), CachePolicy(include_user=True), "k1"
    )


def test_the_semantic_guard_is_everything_but_the_last_question() -> None:
    def with_system(system: str, question: str) -> ChatRequest:
        return chat(messages=[{"role": "system", "content": system}, {"role": "user", "content": question}])

    assert guard_key(with_system("s", "a"), POLICY, None) == guard_key(with_system("s", "b"), POLICY, None)
    assert guard_key(with_system("s", "a"), POLICY, None) != guard_key(with_system("t", "a"), POLICY, None)
    assert guard_key(chat(temperature=1), POLICY, None) != guard_key(chat(), POLICY, None)
    assert prompt_text(with_system("s", "the question")) == "the question"


def response(content: str | None = "hello world", **choice: object) -> ChatResponse:
    message = Message(role="assistant", content=content, tool_calls=choice.pop("tool_calls", None))  # type: ignore[arg-type]
    usage = Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)
    return ChatResponse(
        id="r1",
        model="m",
        created=1,
        choices=[Choice(message=message, finish_reason=choice.get("finish", "stop"))],
        usage=usage,  # type: ignore[arg-type]
    )


def test_a_response_unfolds_into_chunks_and_folds_back() -> None:
    calls = [ToolCall(id="c1", name="f", arguments='{"a": 1}'), ToolCall(id="c2", name="g", arguments="{}")]
    for original in (response(), response(None, tool_calls=calls, finish="tool_calls")):
        chunks = unfold(original)
        assert chunks[-1].usage == original.usage and not chunks[-1].choices
        again = fold(chunks)
        assert again.choices[0].message.content == original.choices[0].message.content
        assert again.choices[0].message.tool_calls == original.choices[0].message.tool_calls
        assert again.choices[0].finish_reason == original.choices[0].finish_reason
        assert again.usage == original.usage


def test_entries_round_trip_and_unknown_bytes_decode_to_none() -> None:
    entry = CacheEntry(
        public="m", namespace="", provider="p", model="x", request_id="r", created=1, expires=2, response=response()
    )
    assert decode(encode(entry)) == entry
    assert decode(b"\x00not an entry") is None


def test_what_is_worth_caching() -> None:
    assert cacheable(response(), tool_calls=False, refusals=False)
    calls = [ToolCall(id="c", name="f", arguments="{}")]
    assert not cacheable(response(None, tool_calls=calls, finish="tool_calls"), tool_calls=False, refusals=False)
    assert cacheable(response(None, tool_calls=calls, finish="tool_calls"), tool_calls=True, refusals=False)
    assert not cacheable(response(finish="content_filter"), tool_calls=False, refusals=False)
    assert cacheable(response(finish="content_filter"), tool_calls=False, refusals=True)
    refused = response()
    refused.raw = b'{"choices":[{"message":{"refusal": "I cannot help"}}]}'
    assert not cacheable(refused, tool_calls=False, refusals=False)
    assert not cacheable(response(finish=None), tool_calls=False, refusals=False)  # cut off


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_memory_store_is_an_lru_bounded_by_bytes() -> None:
    clock = Clock()
    store = MemoryStore(max_bytes=300, clock=clock)
    for name in "abc":
        await store.put(f"e:{name}", bytes(100), 60, "m", "")
    assert await store.get("e:a") is not None  # a is now the most recent
    await store.put("e:d", bytes(100), 60, "m", "")
    assert await store.get("e:b") is None and await store.get("e:a") is not None
    assert (await store.stats()).bytes == 300
    await store.put("e:huge", bytes(301), 60, "m", "")  # bigger than the whole store: not kept
    assert await store.get("e:huge") is None and (await store.stats()).entries == 3
    clock.now += 61
    assert await store.get("e:a") is None


async def test_the_memory_store_clears_by_model_and_namespace() -> None:
    store = MemoryStore(max_bytes=10_000)
    await store.put("e:1", b"x", 60, "m1", "k1")
    await store.put("e:2", b"x", 60, "m1", "k2")
    await store.put("e:3", b"x", 60, "m2", "k1")
    assert await store.clear(namespace="k1") == 2
    assert await store.clear(public="m1") == 1
    assert (await store.stats()).entries == 0


def test_the_vector_index_searches_within_a_guard() -> None:
    index = VectorIndex()
    far = 10**10
    index.add("s:a", [1.0, 0.0, 0.0], "g1", far)
    index.add("s:b", [0.0, 1.0, 0.0], "g1", far)
    index.add("s:c", [1.0, 0.0, 0.0], "g2", far)
    index.add("s:old", [1.0, 0.01, 0.0], "g1", 0)  # expired
    found = index.nearest([0.9, 0.1, 0.0], "g1", 0.9)
    assert [k for k, _ in found] == ["s:a"] and found[0][1] == pytest.approx(0.9939, abs=1e-3)
    assert index.nearest([0.0, 0.0, 1.0], "g1", 0.5) == []
    index.remove("s:a")
    assert index.nearest([1.0, 0.0, 0.0], "g1", 0.9) == []
    assert [k for k, _ in index.nearest([1.0, 0.0, 0.0], "g2", 0.9)] == ["s:c"]
    for i in range(100):  # growth keeps earlier rows
        index.add(f"s:{i}", [float(i), 1.0, 0.0], "g3", far)
    assert index.nearest([99.0, 1.0, 0.0], "g3", 0.9999)[0][0] == "s:99"
    assert len(index) == 103


def test_settings_name_what_is_wrong() -> None:
    problems = Problems()
    reader = FieldReader("llmmux.yaml", problems)
    assert parse_policy({"mode": "fuzzy"}, "routing_strategy.routes.x.cache", reader) == CachePolicy()
    assert parse_policy({"mode": "semantic"}, "routing_strategy.routes.y.cache", reader) is None
    assert parse_policy(False, "p", reader) is None and parse_policy(True, "p", reader) == CachePolicy()
    assert parse_config({"store": "redis"}, None, reader).store == "memory"
    assert parse_config({"store": "redis"}, "redis://h:1/0", reader).url == "redis://h:1/0"  # state.url
    messages = [str(p) for p in problems]
    assert any("routes.x.cache.mode" in m and "exact, semantic" in m for m in messages)
    assert any("routes.y.cache.embedding" in m for m in messages)
    assert any("cache.url" in m for m in messages)


@pytest.mark.parametrize(
    ("ours", "standard", "expected"),
    [
        (None, None, None),
        (None, b"no-cache", "refresh"),
        (None, b"max-age=0", "refresh"),
        (None, b"no-store", "no-store"),
        (None, b"no-cache, no-store", "skip"),
        (b"SKIP", b"no-store", "skip"),
        (b"refresh", None, "refresh"),
        (b"sometimes", None, "invalid"),
        (None, b"public", None),
    ],
)
def test_cache_directives(ours: bytes | None, standard: bytes | None, expected: str | None) -> None:
    assert cache_directive(ours, standard) == expected


def test_tools_are_part_of_the_key() -> None:
    plain = chat()
    tooled = chat()
    tooled.tools = [Tool(name="f")]
    assert exact_key(plain, POLICY, None) != exact_key(tooled, POLICY, None)


def test_a_request_line_says_what_the_cache_did() -> None:
    record = RequestRecord(CallContext("r1"), "chat", stream=False, provider="p", model="m")
    record.cache, record.saved_usd = "hit", 0.25
    line = msgspec.json.decode(msgspec.json.encode(request_line(record)))
    assert (line["cache"], line["saved_usd"]) == ("hit", 0.25)
    plain = msgspec.json.decode(
        msgspec.json.encode(request_line(RequestRecord(CallContext("r2"), "chat", stream=False)))
    )
    assert "cache" not in plain and "saved_usd" not in plain  # routes without a cache: lines as before


def test_a_redis_cache_without_a_url_uses_the_state_sections_redis() -> None:
    # `state:` is parsed into config.state, never kept among the routing sections, so the
    # cache must read it from there (valkey:// spelled as the Redis client understands it).
    loaded = load(
        {
            "providers": {"up": {"type": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"}},
            "state": {"url": "valkey://cache-host:6379/2"},
            "cache": {"store": "redis"},
        }
    )
    assert loaded.problems.errors == []
    assert (loaded.config.routing.settings.cache.store, loaded.config.routing.settings.cache.url) == (
        "redis",
        "redis://cache-host:6379/2",
    )
