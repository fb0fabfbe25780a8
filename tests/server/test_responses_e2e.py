"""The Responses API in front: the official `openai` SDK -> llmmux -> every backend format.

`client.responses.create`, the `client.responses.stream(...)` helper (which accumulates the
events into the final response and checks their identities), function calls both ways,
`previous_response_id` continuations and retrieve/delete, against an OpenAI-format, an Ollama
and an Anthropic backend over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import Response

from support import Gateway
from support.backends import MODELS, Backends, three_backends
from upstreams import Reply, ToolCall, drop_mid_stream, reply, status, tool_call
from upstreams.anthropic_server import reply as anthropic_reply
from upstreams.ollama_server import answer

KINDS = list(MODELS)
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture(scope="module")
def backends() -> Iterator[Backends]:
    with three_backends() as fakes:
        yield fakes


@pytest.fixture(scope="module")
def gateway(backends: Backends) -> Iterator[Gateway]:
    with Gateway(backends.config()) as gw:
        yield gw


@pytest.fixture
def client(gateway: Gateway, backends: Backends) -> Iterator[openai.OpenAI]:
    backends.reset()
    with openai.OpenAI(base_url=gateway.url, api_key="unused", max_retries=0, timeout=10) as sdk:
        yield sdk


def calls_reply(kind: str, *calls: ToolCall) -> Reply:
    """An answer that is only function calls, in the backend's own terms."""
    if kind == "ollama":
        return answer("", tool_calls=calls)
    if kind == "anthropic":
        return anthropic_reply(tool_calls=calls)
    return reply(tool_calls=calls)


def conversation(kind: str, body: Any) -> list[tuple[str, str]]:
    """(role, text) of every turn a chat backend received, tool calls and results spelled out."""
    turns: list[tuple[str, str]] = [("system", body["system"])] if kind == "anthropic" and "system" in body else []
    for m in body["messages"]:
        content = m.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        for block in blocks:
            if block["type"] == "tool_use":
                turns.append(("call", f"{block['name']} {compact(block['input'])}"))
            elif block["type"] == "tool_result":
                turns.append(("result", block["content"]))
            elif block.get("text"):
                turns.append((m["role"], block["text"]))
        for call in m.get("tool_calls") or ():
            turns.append(("call", f"{call['function']['name']} {compact(call['function']['arguments'])}"))
        if m["role"] == "tool":
            turns[-1] = ("result", content)
    return turns


def compact(arguments: Any) -> str:
    """Tool arguments (JSON text or an object) as compact JSON, to compare across formats."""
    value = json.loads(arguments) if isinstance(arguments, str) else arguments
    return json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("kind", KINDS)
def test_create_on_every_backend(client: openai.OpenAI, backends: Backends, kind: str) -> None:
    raw = client.responses.with_raw_response.create(
        model=MODELS[kind], input="hello there", instructions="Be brief.", max_output_tokens=50
    )
    response = raw.parse()
    assert response.object == "response" and response.id.startswith("resp_")
    assert (response.status, response.model, response.instructions) == ("completed", MODELS[kind], "Be brief.")
    assert response.output_text.lower() == "echo: hello there"
    [item] = response.output
    assert item.type == "message" and item.role == "assistant" and item.status == "completed"
    assert item.id.startswith("msg_") and item.content[0].type == "output_text"
    assert response.usage is not None and response.usage.output_tokens == 3
    assert response.usage.total_tokens == response.usage.input_tokens + 3
    assert raw.headers["x-llmmux-provider"] in ("vllm", "local", "claude")
    assert conversation(kind, backends.last_chat(kind)) == [("system", "Be brief."), ("user", "hello there")]


@pytest.mark.parametrize("kind", KINDS)
def test_the_stream_helper_on_every_backend(client: openai.OpenAI, kind: str) -> None:
    with client.responses.stream(model=MODELS[kind], input="stream this please") as stream:
        seen = [event.type for event in stream]
        final = stream.get_final_response()
    text_events = [e for e in seen if e == "response.output_text.delta"]
    assert seen[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert len(text_events) > 1 and seen[-1] == "response.completed"
    assert final.output_text.lower() == "echo: stream this please"
    assert final.status == "completed" and final.model == MODELS[kind]
    assert final.usage is not None and final.usage.output_tokens == 4


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("streamed", [False, True], ids=["create", "stream"])
def test_function_calls_and_their_outputs(client: openai.OpenAI, backends: Backends, kind: str, streamed: bool) -> None:
    backends.fake(kind).script(calls_reply(kind, tool_call("get_weather", {"city": "Oslo"}, id="call_oslo")))
    final: Response
    if streamed:
        with client.responses.stream(model=MODELS[kind], input="Weather in Oslo?", tools=[WEATHER]) as stream:
            final = stream.get_final_response()
    else:
        final = client.responses.create(model=MODELS[kind], input="Weather in Oslo?", tools=[WEATHER])
    calls = [item for item in final.output if item.type == "function_call"]
    assert len(calls) == 1 and final.status == "completed"
    call = calls[0]
    assert (call.name, json.loads(call.arguments), call.status) == ("get_weather", {"city": "Oslo"}, "completed")
    assert call.id is not None and call.id.startswith("fc_") and call.call_id
    if kind != "ollama":  # Ollama gives calls no id; llmmux names them
        assert call.call_id == "call_oslo"
    follow = client.responses.create(
        model=MODELS[kind],
        previous_response_id=final.id,
        tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "5C and windy"}],
    )
    assert follow.previous_response_id == final.id and follow.output_text
    turns = conversation(kind, backends.last_chat(kind))
    assert turns[-2:] == [("call", 'get_weather {"city":"Oslo"}'), ("result", "5C and windy")]


def test_previous_response_id_continues_without_the_old_instructions(client: openai.OpenAI, backends: Backends) -> None:
    first = client.responses.create(model=MODELS["anthropic"], input="My name is Ada.", instructions="Be terse.")
    second = client.responses.create(
        model=MODELS["anthropic"],
        input="What is my name?",
        instructions="Answer in French.",
        previous_response_id=first.id,
    )
    assert second.previous_response_id == first.id
    assert conversation("anthropic", backends.last_chat("anthropic")) == [
        ("system", "Answer in French."),
        ("user", "My name is Ada."),
        ("assistant", "Echo: My name is Ada."),
        ("user", "What is my name?"),
    ]
    third = client.responses.create(model=MODELS["ollama"], input="And now?", previous_response_id=second.id)
    assert [t for t in conversation("ollama", backends.last_chat("ollama")) if t[0] == "user"] == [
        ("user", "My name is Ada."),
        ("user", "What is my name?"),
        ("user", "And now?"),
    ]
    assert third.output_text == "Echo: And now?"


def test_a_streamed_response_is_stored_too(client: openai.OpenAI) -> None:
    with client.responses.stream(model=MODELS["openai"], input="keep me", metadata={"k": "v"}) as stream:
        final = stream.get_final_response()
    stored = client.responses.retrieve(final.id)
    assert (stored.id, stored.output_text, stored.status, stored.metadata) == (
        final.id,
        "echo: keep me",
        "completed",
        {"k": "v"},
    )


def test_retrieve_and_delete(client: openai.OpenAI) -> None:
    created = client.responses.create(model=MODELS["ollama"], input="remember this")
    assert client.responses.retrieve(created.id).model_dump() == created.model_dump()
    client.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError) as gone:
        client.responses.retrieve(created.id)
    assert gone.value.body == {
        "message": f"Response with id '{created.id}' not found.",
        "type": "invalid_request_error",
        "param": "response_id",
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(created.id)


def test_delete_answers_as_openai_does(gateway: Gateway, client: openai.OpenAI) -> None:
    created = client.responses.create(model=MODELS["openai"], input="x")
    response = httpx.delete(f"{gateway.url}/responses/{created.id}")
    assert response.json() == {"id": created.id, "object": "response", "deleted": True}


def test_store_false_keeps_nothing(client: openai.OpenAI) -> None:
    created = client.responses.create(model=MODELS["openai"], input="forget this", store=False)
    assert created.to_dict()["store"] is False  # echoed as OpenAI does, though the SDK leaves it unmodelled
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(created.id)
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODELS["openai"], input="again", previous_response_id=created.id)
    assert (caught.value.code, caught.value.param) == ("previous_response_not_found", "previous_response_id")
    assert caught.value.body["message"] == f"Previous response with id '{created.id}' not found."  # type: ignore[index]


def test_request_fields_reach_the_backend(client: openai.OpenAI, backends: Backends) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model=MODELS["openai"],
        temperature=0.2,
        top_p=0.5,
        max_output_tokens=40,
        user="u1",
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "city", "schema": schema, "strict": True}},
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Where?"},
                    {"type": "input_image", "image_url": "https://x.test/a.png", "detail": "low"},
                ],
            }
        ],
    )
    sent = backends.last_chat("openai")
    assert sent["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Where?"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png", "detail": "low"}},
            ],
        }
    ]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["user"]) == (0.2, 0.5, 40, "u1")
    assert sent["tools"] == [{"type": "function", "function": {k: v for k, v in WEATHER.items() if k != "type"}}]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "city", "schema": schema, "strict": True},
    }
    assert response.text.format.type == "json_schema" and response.parallel_tool_calls is False  # type: ignore[union-attr]


def text_and_call_reply(kind: str, text: str, call: ToolCall) -> Reply:
    if kind == "ollama":
        return answer(text, tool_calls=[call])
    if kind == "anthropic":
        return anthropic_reply(text, tool_calls=[call])
    return reply(text, tool_calls=[call])


@pytest.mark.parametrize("kind", KINDS)
def test_golden_event_stream(gateway: Gateway, backends: Backends, kind: str) -> None:
    backends.reset()
    backends.fake(kind).script(
        text_and_call_reply(kind, "Let me look.", tool_call("get_weather", {"city": "Rome"}, id="call_rome"))
    )
    body = {"model": MODELS[kind], "input": "Rome?", "tools": [WEATHER], "stream": True}
    with httpx.stream("POST", gateway.url + "/responses", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        blocks = response.read().decode().split("\n\n")
    assert blocks[-1] == ""  # no `data: [DONE]`: a Responses stream ends with its last event
    events = []
    for block in blocks[:-1]:
        name, data = block.split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert name == "event: " + payload["type"]
        events.append(payload)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [e["type"] for e in events]
    runs = [t for i, t in enumerate(kinds) if i == 0 or kinds[i - 1] != t]  # a run of deltas reads as one
    assert runs == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    indexes = [e["output_index"] for e in events if "output_index" in e]
    assert indexes == sorted(indexes) and set(indexes) == {0, 1}  # the message, then the call: never interleaved
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    arguments = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    assert (text, json.loads(arguments)) == ("Let me look.", {"city": "Rome"})
    done = events[-1]["response"]
    assert [i["type"] for i in done["output"]] == ["message", "function_call"]
    assert done["output"][0]["content"][0]["text"] == "Let me look."
    assert json.loads(done["output"][1]["arguments"]) == {"city": "Rome"}
    if kind != "ollama":
        assert done["output"][1]["call_id"] == "call_rome"


def test_a_failure_mid_stream_ends_with_response_failed(client: openai.OpenAI, backends: Backends) -> None:
    backends.openai.script(drop_mid_stream(after_chunks=3))
    with client.responses.stream(model=MODELS["openai"], input="hello there") as stream:
        events = list(stream)
        with pytest.raises(RuntimeError, match="response.completed"):
            stream.get_final_response()
    assert [e.type for e in events][-2:] == ["error", "response.failed"]
    failed = events[-1].response  # type: ignore[union-attr]
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "server_error"
    assert "mid-stream" in failed.error.message
    assert failed.output[0].status == "incomplete"  # type: ignore[union-attr]
    assert client.responses.retrieve(failed.id).status == "failed"


def test_hosted_tools_are_dropped_for_chat_backends_and_named(client: openai.OpenAI, backends: Backends) -> None:
    raw = client.responses.with_raw_response.create(
        model=MODELS["openai"], input="x", tools=[{"type": "web_search"}, WEATHER, {"type": "code_interpreter"}]
    )
    assert raw.headers["x-llmmux-dropped-params"] == "web_search, code_interpreter"
    assert raw.parse().status == "completed"
    sent = backends.last_chat("openai")
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]


def test_bad_input_gets_openai_errors(gateway: Gateway, client: openai.OpenAI, backends: Backends) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="no-such-model", input="x")
    assert missing.value.code == "model_not_found"
    response = httpx.post(gateway.url + "/responses", json={"model": MODELS["openai"]})
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": {
                "message": "Missing required parameter: 'input'.",
                "type": "invalid_request_error",
                "param": "input",
                "code": None,
            }
        },
    )
    response = httpx.post(gateway.url + "/responses/resp_123")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
    response = httpx.get(gateway.url + "/responses/resp_123/input_items")
    assert response.status_code == 404 and "input items" in response.json()["error"]["message"]
    backends.anthropic.script(status(400))
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model=MODELS["anthropic"], input="x")
    assert all(r.method == "POST" for r in backends.anthropic.requests)


def test_a_backend_s_reasoning_is_a_reasoning_item_streamed_or_not(client: openai.OpenAI, backends: Backends) -> None:
    backends.ollama.script(answer("Paris.", thinking="The capital of France."), path="/api/chat")
    response = client.responses.create(model=MODELS["ollama"], input="Capital of France?")
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.content is not None
    assert [(p.type, p.text) for p in reasoning.content] == [("reasoning_text", "The capital of France.")]
    assert message.type == "message" and response.output_text == "Paris."
    backends.ollama.script(answer("Paris.", thinking="The capital of France."), path="/api/chat")
    with client.responses.stream(model=MODELS["ollama"], input="Capital of France?") as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.reasoning_text.delta" in kinds and "response.reasoning_text.done" in kinds
    assert final.output[0].type == "reasoning" and final.output_text == "Paris."
