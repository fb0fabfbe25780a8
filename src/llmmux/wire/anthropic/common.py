"""What the Anthropic request, response, stream and error translators share: constants,
usage arithmetic, stop reasons and validation messages."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from ...types import FinishReason, Usage

WIRE = "anthropic"
API_VERSION = "2023-06-01"

DEFAULT_MAX_TOKENS = 4096
"""`max_tokens` when an OpenAI-style client leaves it out: Anthropic requires it, and 4096 is
the largest value every Claude model accepts (Claude 3 Haiku and Opus stop there). A provider
raises it with `default_max_tokens` in its config."""

GATEWAY_FIELDS = ("provider", "provider_hint", "capability")
"""Routing hints a client may add to its body; Anthropic rejects unknown top-level fields."""

encode = msgspec.json.encode


# -- stop reasons --

STOP_TO_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    # A paused turn (long-running server tools) ends this response normally; the client resumes it.
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

FINISH_TO_STOP: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}


def finish_reason(stop_reason: str | None) -> FinishReason | None:
    """Anthropic's `stop_reason` as a canonical finish reason; an unknown new reason reads as a stop."""
    if stop_reason is None:
        return None
    return STOP_TO_FINISH.get(stop_reason, "stop")


def stop_reason(finish: str | None) -> str:
    return FINISH_TO_STOP.get(finish or "stop", "end_turn")


# -- usage --


class WireUsage(msgspec.Struct):
    """Anthropic's `usage`, in a message and (cumulative, fields optional) in `message_delta`."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    output_tokens_details: dict[str, Any] | None = None


class UsageCounts:
    """Running token counts of one message; later (cumulative) reports overwrite earlier ones."""

    __slots__ = ("cache_read", "cache_write", "input", "output", "thinking")

    def __init__(self) -> None:
        self.input = self.output = self.cache_read = self.cache_write = self.thinking = 0

    def update(self, usage: WireUsage | None) -> None:
        if usage is None:
            return
        if usage.input_tokens is not None:
            self.input = usage.input_tokens
        if usage.output_tokens is not None:
            self.output = usage.output_tokens
        if usage.cache_read_input_tokens is not None:
            self.cache_read = usage.cache_read_input_tokens
        if usage.cache_creation_input_tokens is not None:
            self.cache_write = usage.cache_creation_input_tokens
        thinking = (usage.output_tokens_details or {}).get("thinking_tokens")
        if isinstance(thinking, int):
            self.thinking = thinking

    def canonical(self) -> Usage:
        """OpenAI's counting: `prompt_tokens` includes cached input.

        Anthropic's `input_tokens` excludes cache reads and cache writes (its docs: total input
        is the sum of the three), while OpenAI's `prompt_tokens` counts every input token and
        reports the cached ones inside it. Summing keeps `prompt_tokens` meaning "all input"
        whichever backend answered, so cost and limit accounting stay comparable.
        """
        prompt = self.input + self.cache_read + self.cache_write
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=self.output,
            total_tokens=prompt + self.output,
            cached_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
            reasoning_tokens=self.thinking,
        )


def usage_in(usage: WireUsage | None) -> Usage | None:
    if usage is None:
        return None
    counts = UsageCounts()
    counts.update(usage)
    return counts.canonical()


def usage_out(usage: Usage | None) -> dict[str, int]:
    """Canonical usage in Anthropic's terms: the inverse of `UsageCounts.canonical`."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    uncached = max(0, usage.prompt_tokens - usage.cached_tokens - usage.cache_write_tokens)
    return {
        "input_tokens": uncached,
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    }


# -- validation messages that name the field --

_AT = re.compile(r" - at `\$\.?([^`]*)`")
_MISSING = re.compile(r"Object missing required field `([^`]*)`")


def validation_error(exc: msgspec.ValidationError) -> tuple[str, str | None]:
    """A msgspec error as (message, field path), e.g. ("'max_tokens' is required.", "max_tokens")."""
    text = str(exc)
    at = _AT.search(text)
    where = at.group(1) if at else ""
    missing = _MISSING.match(text)
    if missing:
        field = f"{where}.{missing.group(1)}" if where else missing.group(1)
        return f"'{field}' is required.", field
    detail = _AT.sub("", text).rstrip(".")
    if where:
        return f"Invalid value for '{where}': {detail}.", where
    return f"Invalid request: {detail}.", None
