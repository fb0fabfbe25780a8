"""One fake backend of each wire format behind one gateway, for front-door tests.

with three_backends() as backends, Gateway(backends.config()) as gw:
    client.completions.create(model=MODELS["anthropic"], ...)
    backends.last_chat("anthropic")            # the body the fake Anthropic received
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from upstreams import FakeOpenAI, RecordedRequest
from upstreams.anthropic_server import API_KEY, FakeAnthropic
from upstreams.ollama_server import FakeOllama

MODELS = {"openai": "qwen-coder", "ollama": "llama3.2:latest", "anthropic": "claude-main"}
"""The public model name served by each backend format."""
NATIVE = "instruct"
"""A public name on an OpenAI-format provider with `completions: native`."""
NATIVE_UPSTREAM = "gpt-3.5-turbo-instruct"
CHAT_PATHS = {"openai": "/v1/chat/completions", "ollama": "/api/chat", "anthropic": "/v1/messages"}


@dataclass(frozen=True)
class Backends:
    openai: FakeOpenAI
    ollama: FakeOllama
    anthropic: FakeAnthropic

    def fake(self, kind: str) -> FakeOpenAI | FakeOllama | FakeAnthropic:
        fakes: dict[str, FakeOpenAI | FakeOllama | FakeAnthropic] = {
            "openai": self.openai,
            "ollama": self.ollama,
            "anthropic": self.anthropic,
        }
        return fakes[kind]

    def reset(self) -> None:
        for fake in (self.openai, self.ollama, self.anthropic):
            fake.reset()

    def chats(self, kind: str) -> list[RecordedRequest]:
        """The chat requests the backend of `kind` received, oldest first."""
        return self.fake(kind).requests_to(CHAT_PATHS[kind])

    def last_chat(self, kind: str) -> Any:
        return self.chats(kind)[-1].json

    def config(self) -> dict[str, Any]:
        return {
            "providers": {
                "vllm": {"type": "openai_compatible", "base_url": self.openai.url, "models": [MODELS["openai"]]},
                "instruct": {
                    "type": "openai_compatible",
                    "base_url": self.openai.url,
                    "completions": "native",
                    "models": [NATIVE_UPSTREAM],
                },
                "local": {"type": "ollama", "base_url": self.ollama.url, "models": [MODELS["ollama"]]},
                "claude": {
                    "type": "anthropic",
                    "base_url": self.anthropic.url,
                    "api_key": API_KEY,
                    "models": ["claude-sonnet-4-5"],
                },
            },
            "routing": {
                "exact_matches": {
                    MODELS["anthropic"]: {"provider": "claude", "model": "claude-sonnet-4-5"},
                    NATIVE: {"provider": "instruct", "model": NATIVE_UPSTREAM},
                }
            },
        }


@contextlib.contextmanager
def three_backends() -> Iterator[Backends]:
    with FakeOpenAI() as openai_up, FakeOllama() as ollama_up, FakeAnthropic() as claude_up:
        yield Backends(openai_up, ollama_up, claude_up)
