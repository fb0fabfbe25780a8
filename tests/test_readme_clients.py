"""The README's Open WebUI and LangChain settings, checked: each URL it tells users to set is
driven by the client library that setting feeds (Open WebUI's Ollama and OpenAI connections;
LangChain's ChatOpenAI, ChatAnthropic and ChatOllama wrap the openai, anthropic and ollama
SDKs), against a gateway on the port the README names, rewritten to a free one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest

from support import Gateway
from upstreams import FakeOpenAI

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
DOCUMENTED = "http://127.0.0.1:4000"


def section(title: str) -> str:
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end]


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    with FakeOpenAI() as up:
        provider = {"type": "openai_compatible", "base_url": up.url, "models": ["m1"]}
        routes = {"exact_matches": {"chat-main": {"provider": "main", "model": "m1"}}}
        with Gateway({"providers": {"main": provider}, "routing": routes}) as gw:
            yield gw


def local(url: str, gateway: Gateway) -> str:
    assert url.startswith(DOCUMENTED), url
    return gateway.root_url + url.removeprefix(DOCUMENTED)


def test_open_webui_connections(gateway: Gateway) -> None:
    settings = dict(re.findall(r"^(\w+)=(\S+)", section("Open WebUI"), re.MULTILINE))
    ollama_url, openai_url = (
        local(settings["OLLAMA_BASE_URL"], gateway),
        local(settings["OPENAI_API_BASE_URL"], gateway),
    )
    # What Open WebUI asks of each connection: the model list, then a streamed chat.
    assert "chat-main" in [m["name"] for m in httpx.get(ollama_url + "/api/tags").json()["models"]]
    assert "version" in httpx.get(ollama_url + "/api/version").json()
    with ollama.Client(host=ollama_url) as client:
        parts = client.chat(model="chat-main", messages=[{"role": "user", "content": "hi"}], stream=True)
        assert "".join(p.message.content or "" for p in parts) == "echo: hi"
    with openai.OpenAI(base_url=openai_url, api_key=settings["OPENAI_API_KEY"], max_retries=0) as sdk:
        assert "chat-main" in [m.id for m in sdk.models.list()]
        hi = [{"role": "user", "content": "hi"}]
        stream = sdk.chat.completions.create(model="chat-main", messages=hi, stream=True)  # type: ignore[arg-type]
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: hi"


def test_langchain_settings(gateway: Gateway) -> None:
    text = section("LangChain")
    urls = dict(re.findall(r"(Chat\w+)\(base_url=\"([^\"]+)\"", text))
    model = re.search(r'model="([^"]+)"', text)
    assert model is not None and set(urls) == {"ChatOpenAI", "ChatAnthropic", "ChatOllama"}
    name, hi = model.group(1), [{"role": "user", "content": "hi"}]
    # ChatOpenAI: the openai SDK with base_url; ChatAnthropic: the anthropic SDK with base_url;
    # ChatOllama: the ollama client with host.
    with openai.OpenAI(base_url=local(urls["ChatOpenAI"], gateway), api_key="x", max_retries=0) as sdk:
        done = sdk.chat.completions.create(model=name, messages=hi)  # type: ignore[arg-type]
        assert done.choices[0].message.content == "echo: hi"
    with anthropic.Anthropic(base_url=local(urls["ChatAnthropic"], gateway), api_key="x", max_retries=0) as claude:
        reply = claude.messages.create(model=name, max_tokens=16, messages=hi)  # type: ignore[arg-type]
        assert reply.content[0].text == "echo: hi"  # type: ignore[union-attr]
    with ollama.Client(host=local(urls["ChatOllama"], gateway)) as client:
        assert client.chat(model=name, messages=hi).message.content == "echo: hi"
