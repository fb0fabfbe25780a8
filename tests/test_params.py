"""Parameter normalisation: aliases in, canonical names out, and what a provider cannot honour dropped."""

from __future__ import annotations

import json
from typing import Any

import pytest

from llmmux import params
from llmmux.errors import InvalidRequest
from llmmux.types import ChatRequest, Message
from llmmux.wire import ollama as ollama_wire
from llmmux.wire import ollama_frontdoor
from llmmux.wire import openai as openai_wire

USER = [{"role": "user", "content": "hi"}]


def decoded(**body: Any) -> ChatRequest:
    return openai_wire.decode_chat_request({"model": "m", "messages": USER, **body})


def sent(request: ChatRequest) -> dict[str, Any]:
    """The body an OpenAI-format upstream receives: the client's, as changed since its door."""
    body: dict[str, Any] = json.loads(openai_wire.encode_chat_request(request, "m", stream=False))
    return body


@pytest.mark.parametrize(
    ("alias", "value", "field"),
    [
        ("temp", 0.3, "temperature"),
        ("max_length", 64, "max_tokens"),
        ("num_predict", 64, "max_tokens"),
        ("nucleus_sampling", 0.9, "top_p"),
    ],
)
def test_alias_becomes_the_canonical_field_in_request_and_the_body_sent(alias: str, value: Any, field: str) -> None:
    request = params.normalise(decoded(**{alias: value}))
    assert getattr(request, field) == value
    assert alias not in request.extra
    assert alias not in sent(request) and sent(request)[field] == value


@pytest.mark.parametrize("alias", ["ctx_size", "context_length", "num_ctx"])
def test_context_window_aliases_land_in_extra_num_ctx(alias: str) -> None:
    request = params.normalise(decoded(**{alias: 8192}))
    assert request.extra == {"num_ctx": 8192}
    assert sent(request)["num_ctx"] == 8192
    assert params.requested(request) == ["num_ctx"]


def test_a_request_without_aliases_is_returned_as_is() -> None:
    request = decoded(temperature=0.1)
    assert params.normalise(request) is request


def test_alias_agreeing_with_the_canonical_name_is_accepted() -> None:
    assert params.normalise(decoded(temperature=0.5, temp=0.5)).temperature == 0.5


def test_alias_contradicting_the_canonical_name_is_a_400() -> None:
    with pytest.raises(InvalidRequest) as caught:
        params.normalise(decoded(temperature=0.5, temp=0.9))
    assert caught.value.param == "temp"
    assert "'temp' (0.9) and 'temperature' (0.5)" in caught.value.message


@pytest.mark.parametrize(
    ("alias", "value", "expected"),
    [
        ("max_length", 0, "positive integer"),
        ("ctx_size", "big", "positive integer"),
        ("temp", "hot", "a number"),
        ("num_predict", True, "positive integer"),
    ],
)
def test_bad_values_are_a_400_naming_the_alias(alias: str, value: Any, expected: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        params.normalise(decoded(**{alias: value}))
    assert caught.value.param == alias and expected in caught.value.message


def test_unsupported_lists_what_a_provider_cannot_honour_in_a_stable_order() -> None:
    request = params.normalise(decoded(top_k=5, seed=1, temperature=0.2, ctx_size=4096))
    assert params.unsupported(request, params.OPENAI) == ["top_k", "num_ctx"]
    assert params.unsupported(request, params.ALL) == []


def test_drop_clears_fields_extra_and_every_spelling_in_the_body_sent() -> None:
    request = params.normalise(decoded(top_k=5, max_completion_tokens=9, num_ctx=2048, temperature=0.2))
    dropped = params.drop(request, ["top_k", "max_tokens", "num_ctx"])
    assert (dropped.top_k, dropped.max_tokens, dropped.temperature) == (None, None, 0.2)
    assert dropped.extra == {}
    assert sent(dropped) == {"model": "m", "messages": USER, "temperature": 0.2}
    assert dropped.passthrough is request.passthrough  # the client's body itself is never edited


def test_drop_in_an_ollama_body_keeps_the_other_options_as_sent() -> None:
    body = {"model": "m", "messages": USER, "options": {"top_k": 3, "mirostat": 2}, "keep_alive": "1h"}
    request = params.drop(ollama_frontdoor.decode_chat_request(body), ["top_k"])
    out = json.loads(ollama_wire.encode_chat_request(request, "m", stream=False))
    assert out == {"model": "m", "messages": USER, "options": {"mirostat": 2}, "keep_alive": "1h", "stream": False}


def test_fitting_computes_one_request_per_parameter_set() -> None:
    fitting = params.Fitting(params.normalise(decoded(top_k=5)))
    first = fitting.fitted(params.OPENAI)
    assert first.top_k is None and fitting.fitted(params.OPENAI) is first
    assert fitting.fitted(params.ALL).top_k == 5
    assert fitting.dropped(params.OPENAI) == ["top_k"]


def test_wire_only_fields_are_dropped_for_every_other_wire() -> None:
    request = ChatRequest(
        model="m",
        messages=[Message(role="user", content="hi")],
        top_k=3,
        client_wire="anthropic",
        wire_only=("context_management",),
    )
    assert params.unsupported(request, params.OPENAI, "openai") == ["top_k", "context_management"]
    assert params.unsupported(request, params.ALL, "anthropic") == []
    assert params.Fitting(request).dropped(params.ALL, "gemini") == ["context_management"]
    assert params.Fitting(request).fitted(params.ALL) is request
