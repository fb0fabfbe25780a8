"""Tests of the fake OpenAI upstream itself: wire format, faults, recording."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionMessageParam

from upstreams import (
    FakeOpenAI,
    closed_port_url,
    count_tokens,
    drop,
    drop_mid_stream,
    fake_embedding,
    hang,
    malformed,
    reply,
    split_text,
    stall_mid_stream,
    status,
    tool_call,
    trickle,
)

pytestmark = pytest.mark.timeout(20)

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there world"}]
CHAT: dict[str, Any] = {"model": "gpt-4o-mini", "messages": USER}
TOOLS: list[ChatCompletionFunctionToolParam] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
]

keyed_upstream = FakeOpenAI.fixture(name="keyed_upstream", api_key="sk-test-123456789", models=["gpt-4o-mini"])


def post(url: str, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, Message, bytes]:
    """POST JSON (or raw bytes) with urllib; errors are returned, not raised."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers, err.read()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()


def sse_data(raw: bytes) -> list[str]:
    """The `data:` payloads of an SSE body, in order."""
    events = raw.decode().split("\n\n")
    assert events[-1] == "", "stream must end with a blank line"
    return [e.removeprefix("data: ") for e in events[:-1]]


def stream_chunks(url: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
    code, headers, body = post(url, {**payload, "stream": True})
    assert code == 200 and headers["Content-Type"] == "text/event-stream; charset=utf-8"
    data = sse_data(body)
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


def error_of(body: bytes) -> dict[str, Any]:
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return dict(error)


# --------------------------------------------------------------------------
# Lifecycle
# --------------------------------------------------------------------------


def test_serves_on_loopback_and_stops_cleanly() -> None:
    before = set(threading.enumerate())
    with FakeOpenAI() as up:
        assert up.url == f"http://127.0.0.1:{up.port}/v1"
        assert get(up.url + "/models")[0] == 200
    assert set(threading.enumerate()) == before
    with pytest.raises(urllib.error.URLError):
        get(up.url + "/models")


def test_stop_cuts_hanging_and_idle_connections() -> None:
    up = FakeOpenAI().start()
    up.script(hang())
    client = socket.create_connection(("127.0.0.1", up.port))
    client.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.monotonic() + 5
    while not up.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    up.stop()
    assert time.monotonic() - started < 2
    assert client.recv(100) == b""
    client.close()


def test_start_twice_is_an_error(openai_upstream: FakeOpenAI) -> None:
    with pytest.raises(RuntimeError):
        openai_upstream.start()


def test_closed_port_url_refuses() -> None:
    url = closed_port_url()
    assert url.endswith("/v1")
    with pytest.raises(urllib.error.URLError) as info:
        get(url + "/models")
    assert isinstance(info.value.reason, ConnectionRefusedError)


# --------------------------------------------------------------------------
# Chat completions
# --------------------------------------------------------------------------


def test_chat_completion_shape(openai_upstream: FakeOpenAI) -> None:
    code, headers, body = post(openai_upstream.url + "/chat/completions", CHAT)
    assert code == 200 and headers["Content-Type"] == "application/json"
    assert headers["x-request-id"].startswith("req_")
    data = json.loads(body)
    assert data["id"].startswith("chatcmpl-") and isinstance(data["created"], int)
    assert {k: data[k] for k in ("object", "model", "service_tier")} == {
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "service_tier": "default",
    }
    assert data["system_fingerprint"].startswith("fp_")
    assert data["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "echo: hello there world", "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    usage = data["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (3, 4, 7)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


def test_chat_stream_shape(openai_upstream: FakeOpenAI) -> None:
    chunks = stream_chunks(openai_upstream.url + "/chat/completions", CHAT)
    assert all(c["object"] == "chat.completion.chunk" and "usage" not in c for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {"role": "assistant", "content": "", "refusal": None}
    assert [d["content"] for d in deltas[1:-1]] == split_text("echo: hello there world", 4)
    assert deltas[-1] == {} and chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_chat_stream_include_usage(openai_upstream: FakeOpenAI) -> None:
    payload = {**CHAT, "stream_options": {"include_usage": True}}
    chunks = stream_chunks(openai_upstream.url + "/chat/completions", payload)
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 7


def test_chat_stream_chunk_count_is_configurable() -> None:
    with FakeOpenAI(stream_chunks=2) as up:
        assert len(stream_chunks(up.url + "/chat/completions", CHAT)) == 1 + 2 + 1
        up.script(reply("a b c d e f", chunks=6))
        assert len(stream_chunks(up.url + "/chat/completions", CHAT)) == 1 + 6 + 1


def test_chat_n_choices(openai_upstream: FakeOpenAI) -> None:
    url = openai_upstream.url + "/chat/completions"
    data = json.loads(post(url, {**CHAT, "n": 2})[2])
    assert [c["index"] for c in data["choices"]] == [0, 1]
    assert data["usage"]["completion_tokens"] == 8
    chunks = stream_chunks(url, {**CHAT, "n": 2})
    assert {c["choices"][0]["index"] for c in chunks} == {0, 1}


def test_chat_content_parts_and_max_tokens(openai_upstream: FakeOpenAI) -> None:
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "one two"}, {"type": "text", "text": "three"}]},
    ]
    data = json.loads(
        post(openai_upstream.url + "/chat/completions", {"model": "m", "messages": messages, "max_tokens": 2})[2]
    )
    assert data["choices"][0]["message"]["content"] == "echo: one"
    assert data["choices"][0]["finish_reason"] == "length"
    assert data["usage"]["prompt_tokens"] == 5


def test_scripted_reply(openai_upstream: FakeOpenAI) -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    openai_upstream.script(reply("scripted", finish_reason="content_filter", usage=usage, headers={"x-extra": "1"}))
    code, headers, body = post(openai_upstream.url + "/chat/completions", CHAT)
    data = json.loads(body)
    assert data["choices"][0]["message"]["content"] == "scripted"
    assert data["choices"][0]["finish_reason"] == "content_filter"
    assert data["usage"] == usage and headers["x-extra"] == "1"


def test_tool_calls(openai_upstream: FakeOpenAI) -> None:
    url = openai_upstream.url + "/chat/completions"
    calls = [tool_call("get_weather", {"city": "Paris"}, id="call_1"), tool_call("get_time", "{}")]
    openai_upstream.script(reply(tool_calls=calls))
    message = json.loads(post(url, {**CHAT, "tools": TOOLS})[2])["choices"][0]
    assert message["finish_reason"] == "tool_calls"
    assert message["message"]["content"] is None
    assert message["message"]["tool_calls"][0] == {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
    }
    assert message["message"]["tool_calls"][1]["id"].startswith("call_")


def test_tool_calls_stream(openai_upstream: FakeOpenAI) -> None:
    calls = [tool_call("get_weather", {"city": "Paris"}, id="call_1"), tool_call("get_time", "{}", id="call_2")]
    openai_upstream.script(reply(tool_calls=calls))
    chunks = stream_chunks(openai_upstream.url + "/chat/completions", {**CHAT, "tools": TOOLS})
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
        ],
    }
    fragments: dict[int, str] = {0: "", 1: ""}
    for delta in deltas[1:-1]:
        (call,) = delta["tool_calls"]
        fragments[call["index"]] += call["function"]["arguments"]
    assert fragments == {0: '{"city": "Paris"}', 1: "{}"}
    assert deltas[-1] == {} and chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_tool_calls_need_tools_in_the_request(openai_upstream: FakeOpenAI) -> None:
    openai_upstream.script(reply(tool_calls=[tool_call("get_weather")]))
    choice = json.loads(post(openai_upstream.url + "/chat/completions", CHAT)[2])["choices"][0]
    assert "tool_calls" not in choice["message"] and choice["finish_reason"] == "stop"


# --------------------------------------------------------------------------
# Legacy completions, embeddings, models
# --------------------------------------------------------------------------


def test_legacy_completion(openai_upstream: FakeOpenAI) -> None:
    url = openai_upstream.url + "/completions"
    data = json.loads(post(url, {"model": "m", "prompt": "say hi", "echo": True})[2])
    assert data["object"] == "text_completion" and data["id"].startswith("cmpl-")
    assert data["choices"] == [{"text": "say hiecho: say hi", "index": 0, "logprobs": None, "finish_reason": "stop"}]
    assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    data = json.loads(post(url, {"model": "m", "prompt": ["a", "b"], "n": 2})[2])
    assert [c["text"] for c in data["choices"]] == ["echo: a", "echo: a", "echo: b", "echo: b"]


def test_legacy_completion_stream(openai_upstream: FakeOpenAI) -> None:
    payload = {"model": "m", "prompt": "say hi", "stream_options": {"include_usage": True}}
    chunks = stream_chunks(openai_upstream.url + "/completions", payload)
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == "echo: say hi"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


def test_embeddings(openai_upstream: FakeOpenAI) -> None:
    url = openai_upstream.url + "/embeddings"
    data = json.loads(post(url, {"model": "e", "input": ["one two", "three"]})[2])
    assert data["object"] == "list" and data["model"] == "e"
    assert data["data"][1] == {"object": "embedding", "index": 1, "embedding": fake_embedding("three", 8)}
    assert data["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    data = json.loads(post(url, {"model": "e", "input": "x", "encoding_format": "base64", "dimensions": 40})[2])
    raw = base64.b64decode(data["data"][0]["embedding"])
    assert list(struct.unpack("<40f", raw)) == fake_embedding("x", 40)


def test_models(openai_upstream: FakeOpenAI) -> None:
    code, body = get(openai_upstream.url + "/models")
    data = json.loads(body)
    assert code == 200 and data["object"] == "list"
    assert all(set(m) == {"id", "object", "created", "owned_by"} and m["object"] == "model" for m in data["data"])
    assert json.loads(get(openai_upstream.url + "/models/any-model")[1])["id"] == "any-model"


# --------------------------------------------------------------------------
# OpenAI errors
# --------------------------------------------------------------------------


def test_api_key(keyed_upstream: FakeOpenAI) -> None:
    url = keyed_upstream.url + "/chat/completions"
    code, _, body = post(url, CHAT)
    assert code == 401 and error_of(body)["code"] is None
    code, _, body = post(url, CHAT, {"Authorization": "Bearer sk-wrong-key-000"})
    error = error_of(body)
    assert code == 401 and error["code"] == "invalid_api_key" and "sk-wrong" not in error["message"]
    assert post(url, CHAT, {"Authorization": "Bearer sk-test-123456789"})[0] == 200


def test_unknown_model(keyed_upstream: FakeOpenAI) -> None:
    auth = {"Authorization": "Bearer sk-test-123456789"}
    code, _, body = post(keyed_upstream.url + "/chat/completions", {**CHAT, "model": "gpt-9"}, auth)
    assert code == 404 and error_of(body)["code"] == "model_not_found"
    assert [m["id"] for m in json.loads(get(keyed_upstream.url + "/models", auth)[1])["data"]] == ["gpt-4o-mini"]


def test_bad_requests(openai_upstream: FakeOpenAI) -> None:
    url = openai_upstream.url
    code, _, body = post(url + "/chat/completions", b"{not json")
    assert code == 400 and error_of(body)["type"] == "invalid_request_error"
    code, _, body = post(url + "/chat/completions", {"model": "m"})
    assert code == 400 and error_of(body)["param"] == "messages"
    code, _, body = post(url + "/chat/completions", {"model": "m", "messages": "hi"})
    assert code == 400 and error_of(body)["code"] == "invalid_type"
    code, _, body = post(url + "/nope", {})
    assert code == 404 and error_of(body)["message"] == "Invalid URL (POST /v1/nope)"


# --------------------------------------------------------------------------
# Scripting and faults
# --------------------------------------------------------------------------


def test_script_is_consumed_in_order_then_default(openai_upstream: FakeOpenAI) -> None:
    url = openai_upstream.url + "/chat/completions"
    openai_upstream.script([status(503), status(429, headers={"Retry-After": "2"})])
    code, _, body = post(url, CHAT)
    assert code == 503 and error_of(body)["type"] == "server_error"
    code, headers, body = post(url, CHAT)
    assert code == 429 and headers["Retry-After"] == "2" and error_of(body)["code"] == "rate_limit_exceeded"
    assert post(url, CHAT)[0] == 200 and openai_upstream.pending == 0


def test_script_for_one_path(openai_upstream: FakeOpenAI) -> None:
    openai_upstream.script(status(500), path="/chat/completions")
    assert get(openai_upstream.url + "/models")[0] == 200
    assert post(openai_upstream.url + "/chat/completions", CHAT)[0] == 500


def test_set_default_and_reset(openai_upstream: FakeOpenAI) -> None:
    openai_upstream.set_default(status(502, "<html>bad gateway</html>", {"Content-Type": "text/html"}))
    code, headers, body = post(openai_upstream.url + "/chat/completions", CHAT)
    assert (code, headers["Content-Type"], body) == (502, "text/html", b"<html>bad gateway</html>")
    openai_upstream.reset()
    assert openai_upstream.requests == [] and post(openai_upstream.url + "/chat/completions", CHAT)[0] == 200


def test_malformed_json_body(openai_upstream: FakeOpenAI) -> None:
    openai_upstream.script(malformed())
    code, _, body = post(openai_upstream.url + "/chat/completions", CHAT)
    assert code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


def test_malformed_stream_event(openai_upstream: FakeOpenAI) -> None:
    openai_upstream.script(malformed(after_chunks=2))
    code, _, body = post(openai_upstream.url + "/chat/completions", {**CHAT, "stream": True})
    data = sse_data(body)
    json.loads(data[1])
    with pytest.raises(json.JSONDecodeError):
        json.loads(data[2])
    assert data[-1] == "[DONE]"


async def test_drop_before_response(openai_upstream: FakeOpenAI) -> None:
    openai_upstream.script(drop(), drop(reset=True))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.post(openai_upstream.url + "/chat/completions", json=CHAT)
        with pytest.raises(aiohttp.ClientOSError):
            await session.post(openai_upstream.url + "/chat/completions", json=CHAT)
    assert len(openai_upstream.requests) == 2


async def test_drop_mid_stream(openai_upstream: FakeOpenAI) -> None:
    openai_upstream.script(drop_mid_stream(after_chunks=2))
    received: list[bytes] = []
    async with aiohttp.ClientSession() as session:
        async with session.post(openai_upstream.url + "/chat/completions", json={**CHAT, "stream": True}) as resp:
            assert resp.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                async for line in resp.content:
                    received.append(line)
    assert [line for line in received if line.startswith(b"data: ")] == received[::2]
    assert len(received[::2]) == 2 and b"[DONE]" not in b"".join(received)


async def test_drop_mid_non_stream_body(openai_upstream: FakeOpenAI) -> None:
    openai_upstream.script(drop_mid_stream())
    async with aiohttp.ClientSession() as session:
        async with session.post(openai_upstream.url + "/chat/completions", json=CHAT) as resp:
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()


async def test_hang(openai_upstream: FakeOpenAI) -> None:
    openai_upstream.script(hang(5))
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(asyncio.TimeoutError):
            await session.post(openai_upstream.url + "/chat/completions", json=CHAT)
    assert openai_upstream.last_request.json == CHAT


async def test_trickle_and_stall(openai_upstream: FakeOpenAI) -> None:
    openai_upstream.script(trickle(0.05), stall_mid_stream(after_chunks=1, seconds=0.3))
    async with aiohttp.ClientSession() as session:
        for minimum in (0.05 * 6, 0.3):
            started = time.monotonic()
            async with session.post(openai_upstream.url + "/chat/completions", json={**CHAT, "stream": True}) as resp:
                body = await resp.read()
            assert time.monotonic() - started >= minimum
            assert body.endswith(b"data: [DONE]\n\n")


async def test_keep_alive_and_recording(openai_upstream: FakeOpenAI) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.post(
                openai_upstream.url + "/chat/completions?x=1", json=CHAT, headers={"X-Trace": "t1"}
            ) as resp:
                await resp.read()
    first, second = openai_upstream.requests
    assert first.peer == second.peer, "the second request should reuse the connection"
    assert (first.method, first.path, first.query, first.json) == ("POST", "/v1/chat/completions", {"x": "1"}, CHAT)
    assert first.headers["x-trace"] == "t1" and json.loads(first.body) == CHAT
    assert openai_upstream.requests_to("/chat/completions") == [first, second]


# --------------------------------------------------------------------------
# The official SDK against the fake
# --------------------------------------------------------------------------


@pytest.fixture
def client(keyed_upstream: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=keyed_upstream.url, api_key="sk-test-123456789", max_retries=0) as sdk:
        yield sdk


def test_sdk_chat(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert completion.choices[0].message.content == "echo: hello there world"
    assert completion.usage is not None and completion.usage.total_tokens == 7


def test_sdk_chat_stream(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hello there world"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == count_tokens(text)


def test_sdk_tool_call_stream_accumulates(client: openai.OpenAI, keyed_upstream: FakeOpenAI) -> None:
    keyed_upstream.script(reply(tool_calls=[tool_call("get_weather", {"city": "Paris"})]))
    with client.chat.completions.stream(model="gpt-4o-mini", messages=USER, tools=TOOLS) as stream:
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}


def test_sdk_embeddings_models_completions(client: openai.OpenAI) -> None:
    embedding = client.embeddings.create(model="gpt-4o-mini", input="hi")  # SDK asks for base64
    assert embedding.data[0].embedding == fake_embedding("hi", 8)
    assert [m.id for m in client.models.list()] == ["gpt-4o-mini"]
    assert client.completions.create(model="gpt-4o-mini", prompt="yo").choices[0].text == "echo: yo"


def test_sdk_errors(client: openai.OpenAI, keyed_upstream: FakeOpenAI) -> None:
    keyed_upstream.script(status(429, headers={"Retry-After": "1"}), status(500))
    with pytest.raises(openai.RateLimitError):
        client.models.list()
    with pytest.raises(openai.InternalServerError):
        client.models.list()
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("gpt-9")
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        client.with_options(api_key="sk-nope").models.list()


def test_sdk_retries_then_succeeds(keyed_upstream: FakeOpenAI) -> None:
    keyed_upstream.script(status(503, headers={"retry-after-ms": "10"}))
    with openai.OpenAI(base_url=keyed_upstream.url, api_key="sk-test-123456789", max_retries=1) as sdk:
        assert sdk.models.list().data
    assert len(keyed_upstream.requests) == 2


async def test_async_sdk_faults(openai_upstream: FakeOpenAI) -> None:
    openai_upstream.script(hang(), drop_mid_stream(after_chunks=3))
    async with openai.AsyncOpenAI(base_url=openai_upstream.url, api_key="k", max_retries=0, timeout=0.3) as sdk:
        with pytest.raises(openai.APITimeoutError):
            await sdk.chat.completions.create(model="m", messages=USER)
        stream = await sdk.chat.completions.create(model="m", messages=USER, stream=True)
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass
    async with openai.AsyncOpenAI(base_url=closed_port_url(), api_key="k", max_retries=0) as sdk:
        with pytest.raises(openai.APIConnectionError):
            await sdk.models.list()
