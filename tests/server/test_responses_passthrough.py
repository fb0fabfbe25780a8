"""The Responses door in front of an OpenAI backend's own `/v1/responses`, and hosted tools elsewhere.

`type: openai` serves the door natively: the body reaches the fake OpenAI as the `openai` SDK
sent it, model aside, and its bytes come back with the public model name, streamed or not,
with usage accounted. A chat backend gets the hosted tools dropped and named; a strict route
refuses them. Namespaced tools round-trip through a chat backend with their namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from metrics.test_metrics import parse
from support import Gateway
from upstreams import FakeOpenAI, reply, tool_call

KEY = "sk-upstream-secret"
TOOLS: Any = [
    {"type": "web_search", "external_web_access": False},
    {
        "type": "namespace",
        "name": "crm",
        "description": "Customer records.",
        "tools": [
            {"type": "function", "name": "lookup", "description": "Find a customer", "parameters": {"type": "object"}},
            {"type": "custom", "name": "note", "description": "Write a free-text note"},
        ],
    },
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=KEY, models=["gpt-up", "chat-up"]) as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI) -> Iterator[Gateway]:
    config = {
        "providers": {
            "openai": {"type": "openai", "base_url": upstream.url, "api_key": KEY, "models": ["gpt-up"]},
            "chat": {"type": "openai_compatible", "base_url": upstream.url, "api_key": KEY, "models": ["chat-up"]},
        },
        "routing": {
            "exact_matches": {
                "gpt-pub": {"provider": "openai", "model": "gpt-up"},
                "chat-pub": {"provider": "chat", "model": "chat-up"},
                "chat-strict": {"provider": "chat", "model": "chat-up", "strict": True, "fallback": "none"},
            }
        },
    }
    with Gateway(config) as gw:
        yield gw


@pytest.fixture
def client(gateway: Gateway, upstream: FakeOpenAI) -> Iterator[openai.OpenAI]:
    upstream.reset()
    with openai.OpenAI(base_url=gateway.url, api_key="unused", max_retries=0, timeout=10) as sdk:
        yield sdk


def test_the_body_reaches_openai_as_sent_and_its_bytes_come_back(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    extra = {"include": ["reasoning.encrypted_content"], "prompt_cache_key": "k1", "client_metadata": {"a": "b"}}
    raw = client.responses.with_raw_response.create(
        model="gpt-pub", input="hi there", tools=TOOLS, store=False, extra_body=extra
    )
    sent = upstream.requests_to("/v1/responses")[-1]
    assert sent.json == {"model": "gpt-up", "input": "hi there", "tools": TOOLS, "store": False, **extra}
    assert sent.headers["Authorization"] == f"Bearer {KEY}"
    assert "x-llmmux-dropped-params" not in raw.headers
    body = json.loads(raw.content)
    assert body["id"] == f"resp_fake{sent.seq:06d}" and body["model"] == "gpt-pub"
    assert body["tools"] == TOOLS  # OpenAI's own echo, untouched
    assert raw.parse().output_text == "echo: hi there"


def test_a_stream_passes_through_event_for_event_with_usage_accounted(
    client: openai.OpenAI, gateway: Gateway, upstream: FakeOpenAI
) -> None:
    before = parse(gateway.get("/metrics").text).get(
        'llmmux_tokens_total{model="gpt-pub",provider="openai",kind="prompt"}', 0
    )
    with client.responses.stream(model="gpt-pub", input="stream me please", tools=TOOLS) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))  # the upstream's own numbering
    assert final.model == "gpt-pub" and final.output_text == "echo: stream me please"
    assert upstream.requests_to("/v1/responses")[-1].json["stream"] is True
    kept = client.responses.retrieve(final.id)  # stored under OpenAI's own id, for previous_response_id
    assert (kept.model, kept.output_text) == ("gpt-pub", "echo: stream me please")
    samples = parse(gateway.get("/metrics").text)
    prompt = samples['llmmux_tokens_total{model="gpt-pub",provider="openai",kind="prompt"}'] - before
    assert prompt == final.usage.input_tokens > 0  # type: ignore[union-attr]


def test_a_namespaced_call_from_openai_passes_through(client: openai.OpenAI, upstream: FakeOpenAI) -> None:
    upstream.script(reply(tool_calls=[tool_call("crm.lookup", {"id": 7}, id="call_1")]))
    response = client.responses.create(model="gpt-pub", input="who is 7?", tools=TOOLS)
    call = response.output[0]
    assert (call.type, call.name, call.namespace) == ("function_call", "lookup", "crm")  # type: ignore[union-attr]


def test_hosted_tools_are_dropped_for_a_chat_backend_and_namespaces_flattened(
    client: openai.OpenAI, upstream: FakeOpenAI
) -> None:
    upstream.script(
        reply(tool_calls=[tool_call("crm__lookup", {"id": 7}, id="call_1")]),
        reply(tool_calls=[tool_call("crm__note", {"input": "call back *Friday*"}, id="call_2")]),
    )
    raw = client.responses.with_raw_response.create(model="chat-pub", input="who is 7?", tools=TOOLS)
    assert raw.headers["x-llmmux-dropped-params"] == "web_search"
    sent = upstream.requests_to("/v1/chat/completions")[-1].json
    functions = [t["function"] for t in sent["tools"]]
    assert [f["name"] for f in functions] == ["crm__lookup", "crm__note"]
    assert functions[0]["description"] == "Customer records.\n\nFind a customer"
    assert functions[1]["parameters"]["required"] == ["input"]
    call = raw.parse().output[0]
    assert (call.type, call.name, call.namespace, call.arguments) == ("function_call", "lookup", "crm", '{"id": 7}')  # type: ignore[union-attr]
    with client.responses.stream(model="chat-pub", input="note it", tools=TOOLS) as stream:
        final = stream.get_final_response()
    note = final.output[0]
    assert (note.type, note.name, note.namespace, note.input) == (
        "custom_tool_call",
        "note",
        "crm",
        "call back *Friday*",
    )  # type: ignore[union-attr]
    # The calls and their outputs go back to the chat backend under the flat names.
    client.responses.create(
        model="chat-pub",
        tools=TOOLS,
        input=[
            {"type": "function_call", "call_id": "call_1", "name": "lookup", "namespace": "crm", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "Ada"},
            {"type": "custom_tool_call", "call_id": "call_2", "name": "note", "namespace": "crm", "input": "hi"},
            {"type": "custom_tool_call_output", "call_id": "call_2", "output": "saved"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}},
        ],
    )
    messages = upstream.requests_to("/v1/chat/completions")[-1].json["messages"]
    calls = [c["function"] for m in messages for c in m.get("tool_calls") or ()]
    assert calls == [{"name": "crm__lookup", "arguments": "{}"}, {"name": "crm__note", "arguments": '{"input":"hi"}'}]
    assert [m["content"] for m in messages if m["role"] == "tool"] == ["Ada", "saved"]


def test_a_strict_route_refuses_hosted_tools_by_name(gateway: Gateway, upstream: FakeOpenAI) -> None:
    upstream.reset()
    response = httpx.post(
        gateway.url + "/responses", json={"model": "chat-strict", "input": "x", "tools": TOOLS}, timeout=10
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "tools" and "chat cannot honour web_search" in error["message"]
    assert upstream.requests_to("/v1/chat/completions") == []
