"""Canonical request, message, response and stream types, independent of any wire format.

Every front door decodes into these and every provider encodes from them, so N client
formats and M backend formats need N + M translators. They are msgspec structs: cheap
to build, compare and encode on the hot path.

Passthrough, both ways. Where the client and the backend speak the same format, what a
translator does not model still reaches the other side, and each change is made once, to
the canonical fields:

* A request carries the client's body read-only (`ChatRequest.passthrough`). Steps change
  the canonical fields only; the encoder of the client's format sends the body as it came,
  but for the keys made from a field that differs from what the door decoded
  (`ChatRequest.changed`, `llmmux.wire.passthrough`).
* A reply carries the upstream's bytes (`ChatResponse.raw`, `ChatChunk.raw`, in wire
  `raw_wire`); the encoder of that format sends them with only the model renamed. Nothing
  changes a reply's canonical fields once its provider returned it, and whatever would must
  go through `edited()`, which drops the bytes, so the encoder then builds the reply from
  the canonical fields (tests/test_reply_passthrough.py holds every module to this).
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import attrgetter
from typing import Any, Literal

import msgspec

Role = Literal["system", "developer", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call", "error"]


class TextPart(msgspec.Struct, tag="text", frozen=True):
    text: str


class ImagePart(msgspec.Struct, tag="image", frozen=True):
    """An image by URL; base64 images travel as `data:` URLs."""

    url: str
    detail: str | None = None


class OtherPart(msgspec.Struct, tag="other", frozen=True):
    """A content part this version does not model (audio, files, ...), kept verbatim."""

    data: dict[str, Any]


Part = TextPart | ImagePart | OtherPart


class ToolCall(msgspec.Struct, frozen=True):
    id: str
    name: str
    arguments: str  # JSON text, exactly as the model produced it


class Message(msgspec.Struct, kw_only=True):
    role: Role
    content: str | list[Part] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning: str | None = None

    def text(self) -> str:
        """The message's text content, parts joined; used for token estimates and prompts."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


class Tool(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Passthrough(msgspec.Struct, frozen=True):
    """A client's request body as its door decoded it, for an upstream that speaks the same API.

    Never edited: every step changes the canonical fields only (once). The encoder of the
    client's own format sends `body` as it came, but for the fields whose canonical value
    differs from `decoded` (what the door made of them), which it encodes from the canonical
    request. So a client's beta fields, content blocks and key order reach a same-format
    upstream untouched, and nothing else ever reads the body.
    """

    body: Mapping[str, Any]
    decoded: tuple[Any, ...]  # the request's `PASSTHROUGH_FIELDS` as the door set them


SAMPLING_FIELDS = (
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "stop",
    "n",
    "seed",
    "presence_penalty",
    "frequency_penalty",
)
"""The canonical generation parameters a `ChatRequest` carries (`params.ALL` adds `num_ctx`)."""

PASSTHROUGH_FIELDS = (
    "messages",
    *SAMPLING_FIELDS,
    "tools",
    "hosted_tools",
    "tool_choice",
    "response_format",
    "user",
    "extra",
)
"""The canonical fields a same-format encoder checks for changes (`ChatRequest.changed`)."""
_passthrough_fields = attrgetter(*PASSTHROUGH_FIELDS)


class ChatRequest(msgspec.Struct, kw_only=True):
    """One chat request, whatever API it arrived in.

    `model` is the public name the client asked for. `extra` keeps request fields that
    the canonical form does not model, so same-format upstreams still receive them.
    """

    model: str
    messages: list[Message]
    stream: bool = False
    include_usage: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    n: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    tools: list[Tool] | None = None
    # Tools the backend itself runs (OpenAI's `web_search`, `code_interpreter`, ...), by type.
    # Their definitions travel only in `passthrough`, so only a backend that takes the client's
    # body as sent honours them; for the others they are dropped like an unsupported parameter.
    hosted_tools: list[str] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=dict)
    # Routing hints that never reach an upstream.
    provider: str | None = None
    provider_hint: str | None = None
    capability: str | None = None
    # `metadata.tags` as the client sent them: the gateway's (`llmmux.tags`), never an upstream's.
    tags: Any = None
    # The wire format the client spoke (None: built in Python), and its body for an upstream
    # that speaks the same one.
    client_wire: str | None = None
    passthrough: Passthrough | None = None
    # Client fields with no canonical form (beta fields, `cache_control`, server tools): an
    # upstream speaking `client_wire` receives them, any other drops them and says so.
    wire_only: tuple[str, ...] = ()
    # Prompt-cache breakpoints the client marked (Anthropic's `cache_control`): after these
    # indices of `messages` and of `tools`, for upstreams that take breakpoints (Bedrock).
    cached_messages: tuple[int, ...] = ()
    cached_tools: tuple[int, ...] = ()
    # The client's headers (ASGI's lower-case byte pairs) and query string, set only on the way
    # to a provider with an allow-list of what passes through (`llmmux.forwarding`).
    client_headers: list[tuple[bytes, bytes]] | None = None
    client_query: str = ""

    def passing_through(self, body: Mapping[str, Any]) -> ChatRequest:
        """This request, carrying `body` for an upstream of `client_wire`: the door's last step."""
        self.passthrough = Passthrough(body, _passthrough_fields(self))
        return self

    def changed(self) -> list[str] | None:
        """The `PASSTHROUGH_FIELDS` changed since the door (empty: none); None without a passthrough."""
        passthrough = self.passthrough
        if passthrough is None:
            return None
        now = _passthrough_fields(self)
        if now == passthrough.decoded:  # identical objects compare at once: the usual case
            return []
        return [name for name, a, b in zip(PASSTHROUGH_FIELDS, now, passthrough.decoded, strict=True) if a != b]


class Usage(msgspec.Struct, kw_only=True, omit_defaults=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False


class Choice(msgspec.Struct, kw_only=True):
    index: int = 0
    message: Message
    finish_reason: FinishReason | None = None
    logprobs: Any = None


class ChatResponse(msgspec.Struct, kw_only=True):
    id: str
    model: str
    created: int
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    raw: bytes | None = None  # the upstream's reply as it came, in wire `raw_wire` (see the module's docstring)
    raw_wire: str | None = None

    def edited(self, **fields: Any) -> ChatResponse:
        """A copy with `fields` changed and the upstream's bytes dropped, so no encoder sends
        bytes that no longer say what the reply says: the one way to change a reply.

        >>> reply = ChatResponse(id="r", model="m", created=0, choices=[], raw=b"{}", raw_wire="openai")
        >>> reply.edited(model="other").raw is None
        True
        """
        return msgspec.structs.replace(self, raw=None, raw_wire=None, **fields)


class ToolCallDelta(msgspec.Struct, kw_only=True, omit_defaults=True):
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


class Delta(msgspec.Struct, kw_only=True, omit_defaults=True):
    role: Role | None = None
    content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(msgspec.Struct, kw_only=True):
    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: Any = None


class ChatChunk(msgspec.Struct, kw_only=True):
    """One streamed increment. A chunk with `usage` and no choices closes the stream."""

    id: str
    model: str
    created: int
    choices: list[ChunkChoice]
    usage: Usage | None = None
    raw: bytes | None = None  # the upstream's frame as it came, in wire `raw_wire`
    raw_wire: str | None = None

    def edited(self, **fields: Any) -> ChatChunk:
        """A copy with `fields` changed and the upstream's frame dropped (see `ChatResponse.edited`)."""
        return msgspec.structs.replace(self, raw=None, raw_wire=None, **fields)


class ModelInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A model as a provider lists it."""

    id: str
    provider: str | None = None
    input_cost_per_mtok: float | None = None  # USD per million tokens, where the backend publishes prices
    output_cost_per_mtok: float | None = None
    context_length: int | None = None
    size: str | None = None  # parameter count as written by people and backends: "8B", "7.6B"
    specialty: str | None = None
    owned_by: str | None = None
    family: str | None = None
    quantization: str | None = None  # e.g. "Q4_K_M"
    size_bytes: int | None = None  # bytes on disk, where the backend stores the weights


class EmbeddingRequest(msgspec.Struct, kw_only=True):
    """Texts (or token arrays) to embed with the public model `model`."""

    model: str
    inputs: list[str] | list[list[int]]
    dimensions: int | None = None
    encoding_format: str | None = None
    user: str | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=dict)
    provider: str | None = None
    tags: Any = None  # `metadata.tags` as the client sent them: the gateway's, never an upstream's
    client_wire: str | None = None


class EmbeddingResponse(msgspec.Struct, kw_only=True):
    model: str
    vectors: list[list[float]]
    usage: Usage | None = None
