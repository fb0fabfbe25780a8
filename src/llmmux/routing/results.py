"""What a finished request gives back to the library's caller, shaped like the SDKs' answers.

`router.chat(...)` returns a `Completion` read the way every OpenAI-style client reads one,
with llmmux's own facts beside it:

    done = await router.chat(model="chat-main", messages=[{"role": "user", "content": "hi"}])
    done.choices[0].message.content     # as with the openai SDK, LiteLLM, any-llm
    done.usage.prompt_tokens, done.id
    done.provider, done.model, done.attempts, done.cost   # who answered, after what, for how much
    done.to_dict()                      # the chat.completion JSON object, plus an "llmmux" member

`Embeddings` is the same for vectors (`data`, `usage`); streams are `ChatStream`
(routing/stream.py), whose `cost` is known once the last chunk has arrived.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import Attempt
from ..events import RequestRecord
from ..types import ChatResponse, Choice, EmbeddingResponse, Usage
from ..wire import openai as openai_wire


@dataclass(slots=True)
class Completion:
    """A finished non-streaming request: the answer and who gave it."""

    response: ChatResponse
    public: str
    provider: str
    model: str  # the upstream model that answered
    attempts: list[Attempt] = field(default_factory=list)
    record: RequestRecord | None = None
    explanation: str | None = None
    dropped: list[str] = field(default_factory=list)  # parameters the provider could not honour
    cost: float = 0.0  # USD, from the usage the backend reported (or estimated)
    cache: str | None = None  # the x-llmmux-cache response header, on a route that caches
    # The request's accounting (health, limits, the priced record published), when the
    # caller asked to run it after writing the reply: `settle()` runs it, once.
    pending: Callable[[], None] | None = None

    def settle(self) -> None:
        """Run the accounting the caller put off (`router.chat(..., settle_later=True)`); once, a no-op after."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending()

    @property
    def attempt_count(self) -> int:
        return len(self.attempts) + 1

    @property
    def id(self) -> str:
        return self.response.id

    @property
    def created(self) -> int:
        return self.response.created

    @property
    def choices(self) -> list[Choice]:
        return self.response.choices

    @property
    def usage(self) -> Usage | None:
        return self.response.usage

    @property
    def content(self) -> str | None:
        """The first choice's text: `choices[0].message.content`."""
        return self.response.choices[0].message.text() if self.response.choices else None

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI `chat.completion` object a client of the gateway would get, plus llmmux's facts."""
        body: dict[str, Any] = msgspec.json.decode(openai_wire.encode_chat_response(self.response, self.public))
        body["llmmux"] = _facts(self.provider, self.model, self.attempts, self.cost, self.dropped)
        return body

    model_dump = to_dict  # the name pydantic-based SDK answers use


@dataclass(slots=True)
class Embeddings:
    """A finished embeddings request: the vectors and who made them."""

    response: EmbeddingResponse
    public: str
    provider: str
    model: str
    attempts: list[Attempt] = field(default_factory=list)
    record: RequestRecord | None = None
    explanation: str | None = None
    cost: float = 0.0  # USD
    # As on `Completion` and `ChatStream`, so a door reads every answer the same way; an
    # embeddings route drops no generation parameters and is not cached, so these stay empty.
    dropped: list[str] = field(default_factory=list)
    cache: str | None = None

    @property
    def attempt_count(self) -> int:
        return len(self.attempts) + 1

    @property
    def data(self) -> list[list[float]]:
        """The vectors, in input order."""
        return self.response.vectors

    @property
    def usage(self) -> Usage | None:
        return self.response.usage

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI embeddings `list` object, plus llmmux's facts."""
        body: dict[str, Any] = msgspec.json.decode(
            openai_wire.encode_embedding_response(self.response, self.public, None)
        )
        body["llmmux"] = _facts(self.provider, self.model, self.attempts, self.cost, self.dropped)
        return body

    model_dump = to_dict


def _facts(provider: str, model: str, attempts: list[Attempt], cost: float, dropped: list[str]) -> dict[str, Any]:
    return {
        "provider": provider,
        "model": model,
        "attempts": [a.describe() for a in attempts],  # the tries that failed before this answer
        "cost_usd": cost,
        "dropped_params": dropped,
    }
