"""OpenAI's legacy completions API (`POST /v1/completions`): wire types and translation.

Pure translation, no I/O, in both directions. A client's request becomes chat requests for
backends that only have chat (`chat_parts`: one user message per prompt), or, for an upstream
that serves `/v1/completions` itself, the client's body forwarded with only `model` rewritten
(`native_request`, `encode_request`, `decode_response`, `decode_chunk`). Either way the client
gets OpenAI's `text_completion` objects back (`encode_response`, `StreamEncoder`).

Choices are numbered as OpenAI numbers them: prompt `i`'s `n` choices are `i * n .. i * n + n - 1`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from ..errors import InvalidRequest, LLMMuxError
from ..tags import taken
from ..types import ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, Delta, FinishReason, Message, Usage
from . import MalformedReply
from .openai import (
    GATEWAY_FIELDS,
    WireUsage,
    encode_error,
    rename_model,
    usage_in,
    validation_message,
    validation_param,
)
from .passthrough import Sources, body_for, fields_as, renamed
from .sse import DONE, frame

WIRE = "openai_completions"
LEGACY_FINISH = frozenset({"stop", "length", "content_filter"})
"""The finish reasons a `text_completion` choice may carry; tool calls and the rest read as "stop"."""

_encode = msgspec.json.encode


class _StreamOptions(msgspec.Struct):
    include_usage: bool | None = None


class _Request(msgspec.Struct):
    model: str
    prompt: str | list[Any] | None = None
    best_of: int | None = None
    echo: bool | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    logprobs: int | None = None
    max_tokens: int | None = None
    n: int | None = None
    presence_penalty: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    suffix: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    user: str | None = None
    provider: str | None = None
    provider_hint: str | None = None
    capability: str | None = None


class CompletionRequest(msgspec.Struct, kw_only=True):
    """A validated legacy completions request.

    `chat` holds every setting a chat backend understands, with no messages yet; `body` is
    the client's JSON, for an upstream that serves completions natively.
    """

    model: str
    prompts: list[str]
    token_prompt: bool = False
    prompt_count: int = 1  # text prompts, or token arrays: each is a generation (times n)
    n: int = 1
    echo: bool = False
    logprobs: int | None = None
    stream: bool = False
    include_usage: bool = False
    suffix: str | None = None
    best_of: int | None = None
    chat: ChatRequest
    body: dict[str, Any]

    def prompt_of(self, index: int) -> str:
        """The prompt choice `index` answers (what `echo` puts in front of its text)."""
        return self.prompts[index // self.n] if self.prompts else ""


# -- requests --


def decode_request(body: Any) -> CompletionRequest:
    """Validate a client's completions request; chat-only limits are checked by `chat_parts`."""
    body, tags = taken(body)
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    try:
        wire = msgspec.convert(body, _Request)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(validation_message(exc), param=validation_param(exc)) from None
    prompts, tokens = _prompts(wire.prompt)
    n = 1 if wire.n is None else wire.n
    if n < 1:
        raise InvalidRequest("'n' must be at least 1.", param="n")
    if wire.logprobs is not None and wire.logprobs < 0:
        raise InvalidRequest("'logprobs' must be a non-negative integer.", param="logprobs")
    return CompletionRequest(
        model=wire.model,
        prompts=prompts,
        token_prompt=tokens,
        prompt_count=_prompt_count(wire.prompt),
        n=n,
        echo=bool(wire.echo),
        logprobs=wire.logprobs,
        stream=bool(wire.stream),
        include_usage=bool(wire.stream_options and wire.stream_options.include_usage),
        suffix=wire.suffix,
        best_of=wire.best_of,
        chat=_chat_template(wire, tags),
        body=body,
    )


def _prompts(prompt: str | list[Any] | None) -> tuple[list[str], bool]:
    """The text prompts, or ([], True) for token arrays; anything else is a 400 naming `prompt`."""
    if prompt is None:
        raise InvalidRequest("Missing required parameter: 'prompt'.", param="prompt")
    if isinstance(prompt, str):
        return [prompt], False
    if prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt), False
    if prompt and (_is_tokens(prompt) or all(isinstance(p, list) and p and _is_tokens(p) for p in prompt)):
        return [], True
    raise InvalidRequest("'prompt' must be a string, a non-empty list of strings, or token arrays.", param="prompt")


def _prompt_count(prompt: str | list[Any] | None) -> int:
    """How many prompts: a string or one token array is one; a list of strings or of arrays, its length."""
    if isinstance(prompt, list) and prompt and not _is_tokens(prompt):
        return len(prompt)
    return 1


def _is_tokens(values: list[Any]) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _chat_template(wire: _Request, tags: Any) -> ChatRequest:
    extra: dict[str, Any] = {}
    if wire.logit_bias is not None:
        extra["logit_bias"] = wire.logit_bias
    if wire.logprobs is not None:
        # Chat's per-token logprobs, turned back into the legacy shape on the way out.
        extra["logprobs"] = True
        extra["top_logprobs"] = wire.logprobs
    return ChatRequest(
        model=wire.model,
        messages=[],
        stream=bool(wire.stream),
        include_usage=True,
        temperature=wire.temperature,
        top_p=wire.top_p,
        max_tokens=wire.max_tokens,
        stop=[wire.stop] if isinstance(wire.stop, str) else wire.stop,
        seed=wire.seed,
        presence_penalty=wire.presence_penalty,
        frequency_penalty=wire.frequency_penalty,
        user=wire.user,
        extra=extra,
        provider=wire.provider,
        provider_hint=wire.provider_hint,
        capability=wire.capability,
        tags=tags,
    )


def chat_parts(request: CompletionRequest, *, native_n: bool) -> list[tuple[int, ChatRequest]]:
    """One chat request per prompt, each with the index of its first choice.

    With `native_n` the backends return `n` choices themselves; otherwise each prompt is
    asked `n` times, one choice each (Anthropic and Ollama return one choice per request).
    """
    if request.token_prompt:
        raise InvalidRequest(
            "Token-array prompts need a backend that serves /v1/completions itself (an OpenAI-format "
            "provider with 'completions: native'); send the prompt as text.",
            param="prompt",
        )
    if request.suffix:
        raise InvalidRequest("'suffix' needs a backend that serves /v1/completions itself.", param="suffix")
    if request.best_of not in (None, 1, request.n):
        raise InvalidRequest("'best_of' needs a backend that serves /v1/completions itself.", param="best_of")
    n = request.n
    copies = [(0, n)] if native_n or n == 1 else [(j, 1) for j in range(n)]
    return [
        (
            i * n + first,
            msgspec.structs.replace(
                request.chat, messages=[Message(role="user", content=prompt)], n=count if count > 1 else None
            ),
        )
        for i, prompt in enumerate(request.prompts)
        for first, count in copies
    ]


def native_request(request: CompletionRequest) -> ChatRequest:
    """The whole request for an upstream with its own /v1/completions: the body travels as it came."""
    first = request.prompts[0] if request.prompts else ""
    chat = msgspec.structs.replace(request.chat, messages=[Message(role="user", content=first)], client_wire=WIRE)
    return chat.passing_through(request.body)


_SAMPLING = {
    key: key
    for key in ("temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty", "frequency_penalty", "user")
}
_SOURCES: Sources = {
    **renamed(_SAMPLING),
    "prompt": ("messages",),
    "logit_bias": ("extra",),
    "logprobs": ("extra",),
}
"""What each key of a completions body is made from; any other (`echo`, `suffix`, ...) passes as sent."""


def encode_request(request: ChatRequest, model: str, *, stream: bool) -> bytes:
    """The body for an upstream's /v1/completions: the client's, with `model` and streaming set,
    and the keys made from a canonical field a step changed taken from it (`_SOURCES`)."""
    body = body_for(request, _SOURCES, lambda: _canonical_keys(request), unlisted=())
    for key in GATEWAY_FIELDS:
        body.pop(key, None)
    body["model"] = model
    if stream:
        body["stream"] = True
        # Usage for accounting; the client sees it only if it asked (see StreamEncoder).
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    else:
        body.pop("stream", None)
        body.pop("stream_options", None)
    return _encode(body)


def _canonical_keys(request: ChatRequest) -> dict[str, Any]:
    """The keys of `_SOURCES` as the canonical request says them (called only after a change)."""
    body = fields_as(request, _SAMPLING)
    prompts = [m.text() for m in request.messages if m.role == "user"]
    body["prompt"] = prompts[0] if len(prompts) == 1 else prompts
    if request.extra.get("logit_bias") is not None:
        body["logit_bias"] = request.extra["logit_bias"]
    if request.extra.get("logprobs") and request.extra.get("top_logprobs") is not None:
        body["logprobs"] = request.extra["top_logprobs"]  # chat's spelling, back in the legacy one
    return body


# -- upstream replies (native) --


class _Choice(msgspec.Struct):
    text: str = ""
    index: int = 0
    finish_reason: str | None = None
    logprobs: Any = None


class _Completion(msgspec.Struct):
    id: str = ""
    model: str = ""
    created: int = 0
    choices: list[_Choice] = []
    usage: WireUsage | None = None
    system_fingerprint: str | None = None
    error: Any = None


_decoder = msgspec.json.Decoder(_Completion)


def decode_response(data: bytes) -> ChatResponse:
    """An upstream's `text_completion`, kept whole in `raw` for the client."""
    wire = _decode(data)
    if not wire.choices:
        raise MalformedReply("text completion without choices")
    choices = [
        Choice(
            index=c.index,
            message=Message(role="assistant", content=c.text),
            finish_reason=_finish_in(c.finish_reason),
            logprobs=c.logprobs,
        )
        for c in wire.choices
    ]
    return ChatResponse(
        id=wire.id,
        model=wire.model,
        created=wire.created,
        choices=choices,
        usage=usage_in(wire.usage),
        system_fingerprint=wire.system_fingerprint,
        raw=data,
        raw_wire=WIRE,
    )


def decode_chunk(data: bytes) -> ChatChunk:
    wire = _decode(data)
    choices = [
        ChunkChoice(
            index=c.index, delta=Delta(content=c.text), finish_reason=_finish_in(c.finish_reason), logprobs=c.logprobs
        )
        for c in wire.choices
    ]
    return ChatChunk(
        id=wire.id,
        model=wire.model,
        created=wire.created,
        choices=choices,
        usage=usage_in(wire.usage),
        raw=data,
        raw_wire=WIRE,
    )


def _decode(data: bytes) -> _Completion:
    try:
        wire = _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MalformedReply(f"not a text completion: {exc}") from None
    if wire.error is not None:
        raise MalformedReply("error in a text completion reply")
    return wire


def _finish_in(reason: str | None) -> FinishReason | None:
    if reason is None:
        return None
    return "length" if reason == "length" else "content_filter" if reason == "content_filter" else "stop"


# -- to the client --


def completion_id() -> str:
    return "cmpl-" + os.urandom(12).hex()


def encode_response(request: CompletionRequest, parts: Sequence[tuple[int, ChatResponse]], public: str) -> bytes:
    """The `text_completion` for the client, from one reply per part (see `chat_parts`)."""
    native = parts[0][1] if len(parts) == 1 else None
    if native is not None and native.raw is not None and native.raw_wire == WIRE:
        return rename_model(native.raw, native.model, public)
    choices = sorted(
        (_choice_out(request, first + c.index, c) for first, reply in parts for c in reply.choices),
        key=lambda c: int(c["index"]),
    )
    body: dict[str, Any] = {
        "id": completion_id(),
        "object": "text_completion",
        "created": int(time.time()),
        "model": public,
        "choices": choices,
        "usage": usage_out(_sum_usage(reply.usage for _, reply in parts)),
    }
    fingerprint = parts[0][1].system_fingerprint if parts else None
    if fingerprint:
        body["system_fingerprint"] = fingerprint
    return _encode(body)


def _choice_out(request: CompletionRequest, index: int, choice: Choice) -> dict[str, Any]:
    prefix = request.prompt_of(index) if request.echo else ""
    logprobs = legacy_logprobs(choice.logprobs, len(prefix)) if request.logprobs is not None else None
    return {
        "text": prefix + choice.message.text(),
        "index": index,
        "logprobs": logprobs,
        "finish_reason": finish_out(choice.finish_reason),
    }


def finish_out(reason: str | None) -> str | None:
    if reason is None:
        return None
    return reason if reason in LEGACY_FINISH else "stop"


def legacy_logprobs(chat: Any, offset: int) -> dict[str, Any] | None:
    """Chat's `{"content": [{token, logprob, top_logprobs}]}` in the legacy shape.

    `offset` is where the first token starts in the choice's text (after an echoed prompt):
    `text_offset` counts characters from the start of that text, as OpenAI's does.
    """
    items = chat.get("content") if isinstance(chat, dict) else None
    if not items:
        return None
    out: dict[str, list[Any]] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for item in items:
        item = item if isinstance(item, dict) else {}
        token = str(item.get("token", ""))
        out["tokens"].append(token)
        out["token_logprobs"].append(item.get("logprob"))
        top = item.get("top_logprobs") or ()
        out["top_logprobs"].append({t["token"]: t.get("logprob") for t in top if isinstance(t, dict) and "token" in t})
        out["text_offset"].append(offset)
        offset += len(token)
    return out


def usage_out(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }


def _sum_usage(usages: Any) -> Usage:
    total = Usage()
    for u in usages:
        if u is not None:
            total.prompt_tokens += u.prompt_tokens
            total.completion_tokens += u.completion_tokens
            total.total_tokens += u.total_tokens or u.prompt_tokens + u.completion_tokens
    return total


class StreamEncoder:
    """Writes the chunks of one or more chat streams as one legacy completions stream.

    >>> encoder = StreamEncoder(request, "public-name")
    >>> send(encoder.encode(first_choice_index, chunk))      # doctest: +SKIP
    >>> send(encoder.finish())                               # usage chunk if asked, then [DONE]

    Each part's choices are renumbered from its first index. `echo` puts the prompt in front
    of each choice's first text; usage is summed over the parts. Chunks from an upstream that
    serves completions itself pass through with only the model name changed.
    """

    def __init__(self, request: CompletionRequest, public: str) -> None:
        self.request = request
        self.public = public
        self.id = completion_id()
        self.created = int(time.time())
        self._sent: dict[int, int] = {}  # choice index -> characters of text sent so far
        self._usage: dict[int, Usage] = {}  # part (its first index) -> its latest usage
        self._native = False

    def encode(self, first: int, chunk: ChatChunk) -> bytes:
        if chunk.usage is not None:
            self._usage[first] = chunk.usage
        if chunk.raw is not None and chunk.raw_wire == WIRE:
            self._native = True
            if not chunk.choices and chunk.usage is not None and not self.request.include_usage:
                return b""  # llmmux asked for usage for its own accounting
            return frame(rename_model(chunk.raw, chunk.model, self.public))
        choices = [c for c in (self._choice(first + c.index, c) for c in chunk.choices) if c is not None]
        return frame(self._chunk(choices)) if choices else b""

    def finish(self) -> bytes:
        """The usage chunk (when asked for, and not already sent by a native upstream), then `[DONE]`."""
        if self.request.include_usage and not self._native:
            return frame(self._chunk([], usage_out(_sum_usage(self._usage.values())))) + DONE
        return DONE

    @staticmethod
    def error(error: LLMMuxError) -> bytes:
        """OpenAI's in-band error event, for a failure after the stream has started."""
        return frame(encode_error(error))

    def _choice(self, index: int, choice: ChunkChoice) -> dict[str, Any] | None:
        content = choice.delta.content or ""
        prefix = ""
        if index not in self._sent:
            self._sent[index] = 0
            prefix = self.request.prompt_of(index) if self.request.echo else ""
        start = self._sent[index] + len(prefix)
        self._sent[index] = start + len(content)
        logprobs = legacy_logprobs(choice.logprobs, start) if self.request.logprobs is not None else None
        text = prefix + content
        if not text and choice.finish_reason is None and logprobs is None:
            return None
        return {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish_out(choice.finish_reason)}

    def _chunk(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "choices": choices,
            "model": self.public,
        }
        if usage is not None:
            body["usage"] = usage
        return _encode(body)
