"""The exact cache's key: a digest of everything in a request that can change its answer.

Included: the public model name, the messages, tools and tool choice, the response format,
every generation parameter and the extra fields a backend may honour (reasoning effort,
logprobs, ...). Left out: `stream` (a hit replays either way), usage reporting, routing
hints, and `user` unless a route says answers depend on it. The namespace (a virtual key's
id, or nothing for `scope: global`) comes first, so one tenant never reads another's answers.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from ..config.cache_settings import CachePolicy
from ..types import ChatRequest, Message

# Request fields, in `extra`, that say how to deliver or bill an answer, not what it is.
_NOT_ANSWER_CHANGING = frozenset(
    {"stream_options", "user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key"}
)
_encoder = msgspec.json.Encoder(order="deterministic")


def namespace(policy: CachePolicy, key_id: str | None) -> str:
    return "" if policy.scope == "global" else (key_id or "")


def exact_key(request: ChatRequest, policy: CachePolicy, key_id: str | None) -> str:
    """Hex digest naming the answer to `request` in the namespace `policy` gives `key_id`."""
    return _digest([namespace(policy, key_id), request.model, request.messages, *_settings(request, policy)])


def guard_key(request: ChatRequest, policy: CachePolicy, key_id: str | None) -> str:
    """What a semantic hit must match exactly: everything but the last user turn's text.

    The system prompt, the turns before, tools and parameters: a paraphrased question under a
    different system prompt or temperature is a different request.
    """
    context = [m for m in request.messages if m.role in ("system", "developer")]
    history = _before_last_user(request.messages)
    return _digest([namespace(policy, key_id), request.model, context, history, *_settings(request, policy)])


def prompt_text(request: ChatRequest) -> str:
    """The text a semantic cache embeds: the last user turn."""
    for message in reversed(request.messages):
        if message.role == "user":
            return message.text()
    return ""


def _before_last_user(messages: list[Message]) -> list[Message]:
    for at in range(len(messages) - 1, -1, -1):
        if messages[at].role == "user":
            return [m for m in messages[:at] if m.role not in ("system", "developer")]
    return []


def _settings(request: ChatRequest, policy: CachePolicy) -> list[Any]:
    extra = {k: v for k, v in request.extra.items() if k not in _NOT_ANSWER_CHANGING}
    return [
        request.tools,
        request.hosted_tools,
        request.tool_choice,
        request.response_format,
        request.temperature,
        request.top_p,
        request.top_k,
        request.max_tokens,
        request.stop,
        request.n,
        request.seed,
        request.presence_penalty,
        request.frequency_penalty,
        request.user if policy.include_user else None,
        request.provider,  # a pinned provider or a capability asks for a particular kind of answer
        request.capability,
        extra,
    ]


def _digest(parts: list[Any]) -> str:
    return hashlib.sha256(_encoder.encode(parts)).hexdigest()
