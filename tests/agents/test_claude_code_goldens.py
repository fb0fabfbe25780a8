"""Claude Code's exact requests (captured by capture_claude_code.py) replayed through the gateway, no Node.

Each golden is what Claude Code 2.1.332 sent: method, path, `?beta=true`, headers less the key,
and the body byte for byte. Through an Anthropic backend it must arrive byte-identical but for
`model`, with its betas; through an OpenAI-format backend it must arrive translated, with the
system turn where it stood, the effort as `reasoning_effort` and the rest named as dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from agents.claude_code import README
from support import Gateway
from upstreams import FakeOpenAI, FakeUpstream, reply
from upstreams.anthropic_server import API_KEY, FakeAnthropic
from upstreams.bedrock_server import FakeBedrock
from upstreams.gemini_server import FakeGemini
from upstreams.ollama_server import FakeOllama

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "agents"
GOLDENS = ("claude-code-first-turn", "claude-code-tool-result", "claude-code-model-flag")
UPSTREAM_MODEL = "claude-opus-4-8"


def golden(name: str) -> tuple[dict[str, Any], bytes]:
    meta = json.loads((FIXTURES / f"{name}.request.json").read_text())
    return meta, (FIXTURES / f"{name}.body.json").read_bytes()


def replay(gateway: Gateway, name: str) -> httpx.Response:
    meta, body = golden(name)
    headers = {**meta["headers"], "x-api-key": "sk-client"}
    url = gateway.root_url + meta["path"]
    return httpx.post(url, params=meta["query"], content=body, headers=headers, timeout=30)


def routes(provider: str, model: str) -> dict[str, Any]:
    return {"patterns": [{"pattern": "^claude-", "provider": provider, "model": model}]}


@pytest.fixture(scope="module")
def anthropic_pair() -> Iterator[tuple[Gateway, FakeAnthropic]]:
    with FakeAnthropic() as up:
        config = {
            "providers": {"claude": {"type": "anthropic", "base_url": up.url, "api_key": API_KEY}},
            "routing": routes("claude", UPSTREAM_MODEL),
        }
        with Gateway(config) as gateway:
            yield gateway, up


@pytest.fixture(scope="module")
def openai_pair() -> Iterator[tuple[Gateway, FakeOpenAI]]:
    with FakeOpenAI(api_key="sk-oai") as up:
        config = {
            "providers": {"gpt": {"type": "openai", "base_url": up.url, "api_key": "sk-oai"}},
            "routing": routes("gpt", "gpt-5.1"),
        }
        with Gateway(config) as gateway:
            yield gateway, up


@pytest.mark.parametrize("name", GOLDENS)
def test_anthropic_backend_gets_the_request_as_sent_but_for_model(
    anthropic_pair: tuple[Gateway, FakeAnthropic], name: str
) -> None:
    gateway, up = anthropic_pair
    up.reset()
    answer = replay(gateway, name)
    assert answer.status_code == 200, answer.text
    assert "event: message_stop" in answer.text
    assert "x-llmmux-dropped-params" not in answer.headers
    meta, body = golden(name)
    sent = up.last_request
    assert sent.query == meta["query"] == {"beta": "true"}
    assert sent.headers["anthropic-beta"] == meta["headers"]["anthropic-beta"]
    assert sent.headers["anthropic-version"] == meta["headers"]["anthropic-version"]
    assert sent.headers["x-api-key"] == API_KEY
    for header in ("x-stainless-os", "user-agent", "x-claude-code-session-id"):
        assert sent.headers.get(header) != meta["headers"][header]  # not on Anthropic's allow-list
    model = json.loads(body)["model"]
    expected = body.replace(f'"model":"{model}"'.encode(), f'"model":"{UPSTREAM_MODEL}"'.encode(), 1)
    assert sent.body == expected


def test_openai_backend_gets_the_first_turn_translated(openai_pair: tuple[Gateway, FakeOpenAI]) -> None:
    gateway, up = openai_pair
    up.reset()
    answer = replay(gateway, "claude-code-first-turn")
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-llmmux-dropped-params"] == "context_management, cache_control"
    _, body = golden("claude-code-first-turn")
    original = json.loads(body)
    sent = up.last_request.json
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "system"]
    assert sent["messages"][2]["content"] == original["messages"][1]["content"][0]["text"]
    assert sent["reasoning_effort"] == "medium"
    assert sent["max_tokens"] == original["max_tokens"] and sent["stream"] is True
    tools = {t["function"]["name"]: t["function"]["parameters"] for t in sent["tools"]}
    assert tools["Read"] == next(t["input_schema"] for t in original["tools"] if t["name"] == "Read")
    assert not {"thinking", "context_management", "output_config", "metadata"} & set(sent)
    assert "user" not in sent  # Claude Code's metadata.user_id is over OpenAI's 64 characters
    assert "anthropic-beta" not in up.last_request.headers and up.last_request.query == {}


def test_openai_backend_gets_the_tool_result_as_a_tool_message(openai_pair: tuple[Gateway, FakeOpenAI]) -> None:
    gateway, up = openai_pair
    up.reset()
    up.script(reply("done"))
    answer = replay(gateway, "claude-code-tool-result")
    assert answer.status_code == 200, answer.text
    sent = up.last_request.json
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "system", "assistant", "tool"]
    call = sent["messages"][3]["tool_calls"][0]
    assert call["function"]["name"] == "Read" and call["id"] == sent["messages"][4]["tool_call_id"]
    assert "The launch code is 7-4-1-9" in sent["messages"][4]["content"]


def test_openai_backend_gets_budgeted_thinking_as_an_effort(openai_pair: tuple[Gateway, FakeOpenAI]) -> None:
    gateway, up = openai_pair
    up.reset()
    answer = replay(gateway, "claude-code-model-flag")
    assert answer.status_code == 200, answer.text
    assert up.last_request.json["reasoning_effort"] == "high"  # budget_tokens 31999


def test_the_readme_routing_sends_claude_codes_requests_to_the_anthropic_provider() -> None:
    section = README.read_text().split("\n## Claude Code\n", 1)[1].split("\n## ", 1)[0]
    routing = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    with FakeAnthropic() as up:
        provider = {"type": "anthropic", "base_url": up.url, "api_key": API_KEY}
        with Gateway({"providers": {"anthropic": provider}, **routing}) as gateway:
            for name in GOLDENS:
                assert replay(gateway, name).status_code == 200
        sent = [json.loads(r.body)["model"] for r in up.requests]
    assert sent == [json.loads(golden(name)[1])["model"] for name in GOLDENS]


def other_backend(kind: str) -> tuple[FakeUpstream, dict[str, Any], str]:
    """A fake of `kind`, its provider entry (less `base_url`), and the upstream model to route to."""
    if kind == "gemini":
        return FakeGemini(api_key="gk"), {"type": "gemini", "api_key": "gk"}, "gemini-2.5-flash"
    if kind == "bedrock":
        bedrock = {"type": "bedrock", "api_key": "ABSKbedrock-key"}
        return FakeBedrock(bearer_token="ABSKbedrock-key"), bedrock, "anthropic.claude-3-haiku-20240307-v1:0"
    return FakeOllama(), {"type": "ollama"}, "qwen2.5-coder:7b"


@pytest.mark.parametrize(
    ("kind", "dropped"),
    [
        ("gemini", "context_management, cache_control"),
        ("bedrock", "context_management"),
        ("ollama", "context_management, cache_control"),
    ],
)
def test_other_backends_take_claude_codes_first_turn_with_the_system_turn_placed(kind: str, dropped: str) -> None:
    upstream, provider, model = other_backend(kind)
    with upstream:
        provider["base_url"] = upstream.url
        with Gateway({"providers": {"p": provider}, "routing": routes("p", model)}) as gateway:
            answer = replay(gateway, "claude-code-first-turn")
        sent = upstream.last_request.json
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-llmmux-dropped-params"] == dropped
    environment = json.loads(golden("claude-code-first-turn")[1])["messages"][1]["content"][0]["text"]
    if kind == "gemini":  # the late system turn joins the user turn it follows
        assert environment not in json.dumps(sent["systemInstruction"])
        assert sent["contents"][-1]["parts"][-1] == {"text": environment}
    elif kind == "bedrock":  # likewise, and the marked system prompt ends in a cache point
        assert environment not in json.dumps(sent["system"])
        point = {"cachePoint": {"type": "default"}}  # Claude Code marks both for caching
        assert sent["messages"][-1]["content"][-2:] == [{"text": environment}, point]
        assert point in sent["system"]
    else:  # Ollama reads a system message where it stands
        assert [m["role"] for m in sent["messages"]] == ["system", "user", "system"]


def test_a_strict_route_refuses_what_only_anthropic_would_honour() -> None:
    with FakeOpenAI(api_key="sk-oai") as up:
        provider = {"type": "openai", "base_url": up.url, "api_key": "sk-oai"}
        strict = {"pattern": "^claude-", "provider": "gpt", "model": "gpt-5.1", "strict": True}
        with Gateway({"providers": {"gpt": provider}, "routing": {"patterns": [strict]}}) as gateway:
            answer = replay(gateway, "claude-code-first-turn")
        assert up.requests == []
    assert answer.status_code == 400
    error = answer.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert "context_management, cache_control" in error["error"]["message"]


def test_an_openai_model_without_reasoning_gets_no_translated_effort_and_says_so() -> None:
    # gpt-4.1 refuses `reasoning_effort` with a 400; Claude Code asks for thinking on every turn.
    with FakeOpenAI(api_key="sk-oai") as up:
        provider = {"type": "openai", "base_url": up.url, "api_key": "sk-oai"}
        with Gateway({"providers": {"gpt": provider}, "routing": routes("gpt", "gpt-4.1")}) as gateway:
            answer = replay(gateway, "claude-code-first-turn")
            translated = up.last_request.json
            # An OpenAI client's own field is its choice, and goes as sent.
            own = {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "low"}
            direct = gateway.post_json("/v1/chat/completions", own)
            sent = up.last_request.json
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-llmmux-dropped-params"] == "context_management, cache_control, reasoning_effort"
    assert "reasoning_effort" not in translated and translated["model"] == "gpt-4.1"
    assert direct.status_code == 200 and "x-llmmux-dropped-params" not in direct.headers
    assert sent["reasoning_effort"] == "low"
