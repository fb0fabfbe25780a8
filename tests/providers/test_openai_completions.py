"""providers.openai with `completions: native`: legacy completions forwarded to the upstream's own endpoint."""

from __future__ import annotations

import json

from llmmux.config.loader import config_from_dict
from llmmux.providers.openai import OpenAIProvider
from llmmux.providers.registry import create_provider
from llmmux.router import Router
from llmmux.wire import completions
from upstreams import FakeOpenAI


def native(prompt: object, **body: object) -> completions.CompletionRequest:
    return completions.decode_request({"model": "public", "prompt": prompt, **body})


async def test_a_completions_request_goes_to_the_completions_endpoint(openai_upstream: FakeOpenAI) -> None:
    provider = create_provider("openai_compatible", base_url=openai_upstream.url, completions="native")
    assert isinstance(provider, OpenAIProvider) and provider.native_completions
    reply = await provider.complete(completions.native_request(native([5, 6], max_tokens=3)), "davinci-002")
    assert (reply.raw_wire, reply.choices[0].message.content, reply.usage and reply.usage.prompt_tokens) == (
        completions.WIRE,
        "echo: [5, 6]",
        2,
    )
    assert openai_upstream.last_request.path == "/v1/completions"
    assert openai_upstream.last_request.json == {"model": "davinci-002", "prompt": [5, 6], "max_tokens": 3}
    chunks = [c async for c in provider.stream(completions.native_request(native("hi", stream=True)), "davinci-002")]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hi"
    assert chunks[-1].usage is not None and chunks[-1].raw_wire == completions.WIRE
    await provider.aclose()


async def test_without_the_option_completions_go_to_chat(openai_upstream: FakeOpenAI) -> None:
    provider = create_provider("openai_compatible", base_url=openai_upstream.url)
    assert isinstance(provider, OpenAIProvider) and not provider.native_completions
    await provider.complete(completions.native_request(native("hi")), "m")
    assert openai_upstream.last_request.path == "/v1/chat/completions"
    assert openai_upstream.last_request.json["messages"] == [{"role": "user", "content": "hi"}]
    await provider.aclose()


async def test_validate_config_names_a_wrong_mode() -> None:
    provider = create_provider("openai_compatible", base_url="http://127.0.0.1:1/v1", completions="yes")
    assert provider.validate_config() == ["completions: expected one of chat, native, got 'yes'"]
    await provider.aclose()


async def test_the_option_in_a_config_file_is_not_an_unknown_key(openai_upstream: FakeOpenAI) -> None:
    config, problems = config_from_dict(
        {
            "providers": {
                "vllm": {"type": "vllm", "base_url": openai_upstream.url, "completions": "native", "models": ["m"]}
            }
        }
    )
    assert list(problems) == []
    async with Router(config) as router:
        provider = router.providers["vllm"]
        assert isinstance(provider, OpenAIProvider) and provider.native_completions
    assert json.dumps(router.providers["vllm"].info())  # still describable
