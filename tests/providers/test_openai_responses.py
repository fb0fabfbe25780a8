"""providers.openai with `responses: native`: the Responses door's body to the upstream's own /v1/responses."""

from __future__ import annotations

from llmmux import params
from llmmux.config.loader import config_from_dict
from llmmux.providers.openai import OpenAIProvider
from llmmux.providers.registry import create_provider
from llmmux.wire import responses
from llmmux.wire.openai import RESPONSES_WIRE
from upstreams import FakeOpenAI, reply, tool_call

BODY = {"model": "public", "input": "hi", "tools": [{"type": "web_search"}], "provider": "hint-only"}


async def test_type_openai_serves_responses_natively_with_usage_and_calls(openai_upstream: FakeOpenAI) -> None:
    provider = create_provider("openai", base_url=openai_upstream.url, api_key="sk-x")
    assert isinstance(provider, OpenAIProvider) and provider.native_responses
    assert params.HOSTED_TOOLS in provider.supported_params
    answer = await provider.complete(responses.decode_request(BODY).chat, "gpt-up")
    assert openai_upstream.last_request.path == "/v1/responses"
    assert openai_upstream.last_request.json == {"model": "gpt-up", "input": "hi", "tools": [{"type": "web_search"}]}
    assert answer.raw_wire == RESPONSES_WIRE and answer.choices[0].message.content == "echo: hi"
    assert answer.usage is not None and answer.usage.completion_tokens == 2
    openai_upstream.script(reply(tool_calls=[tool_call("crm.lookup", {"id": 1}, id="call_1")]))
    chunks = [c async for c in provider.stream(responses.decode_request({**BODY, "stream": True}).chat, "gpt-up")]
    calls = [d for c in chunks for ch in c.choices for d in ch.delta.tool_calls or ()]
    assert (calls[0].id, calls[0].name) == ("call_1", "crm__lookup")  # the name a translated turn would use
    assert "".join(d.arguments or "" for d in calls) == '{"id": 1}'
    assert chunks[-1].choices[0].finish_reason == "tool_calls" and chunks[-1].usage is not None
    assert all(c.raw is not None and c.raw.startswith(b"event: response.") for c in chunks)
    await provider.aclose()


async def test_compatible_servers_translate_unless_told_otherwise(openai_upstream: FakeOpenAI) -> None:
    chat = create_provider("openai_compatible", base_url=openai_upstream.url)
    assert isinstance(chat, OpenAIProvider) and not chat.native_responses
    assert params.HOSTED_TOOLS not in chat.supported_params
    await chat.complete(responses.decode_request(BODY).chat, "m")
    assert openai_upstream.last_request.path == "/v1/chat/completions"
    opted = create_provider("vllm", base_url=openai_upstream.url, responses="native")
    assert isinstance(opted, OpenAIProvider) and opted.native_responses
    for provider in (chat, opted):
        await provider.aclose()


async def test_a_wrong_mode_is_named_and_the_option_is_a_known_key(openai_upstream: FakeOpenAI) -> None:
    provider = create_provider("openai", base_url="http://127.0.0.1:1/v1", api_key="k", responses="yes")
    assert provider.validate_config() == ["responses: expected one of chat, native, got 'yes'"]
    await provider.aclose()
    entry = {"type": "openai", "base_url": openai_upstream.url, "api_key": "k", "responses": "chat", "models": ["m"]}
    _, problems = config_from_dict({"providers": {"cloud": entry}})
    assert list(problems) == []
