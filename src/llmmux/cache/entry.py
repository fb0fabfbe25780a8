"""One cached answer and the two shapes it is served in: a whole response, or a stream.

A non-streaming miss stores its response; a streamed miss stores its chunks, so a streaming
hit replays the very chunks the first client received (upstream frames included, where the
door speaks the upstream's format). Either shape serves either kind of request: chunks fold
into a response, and a response unfolds into the chunks a door turns into its own events.
"""

from __future__ import annotations

import msgspec

from ..types import (
    ChatChunk,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    FinishReason,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)


class CacheEntry(msgspec.Struct, kw_only=True, array_like=True):
    """What a hit needs: the answer, who gave it, what it cost, and the request that filled it."""

    public: str
    namespace: str
    provider: str
    model: str
    request_id: str  # the request whose answer this is
    created: float
    expires: float
    response: ChatResponse | None = None
    chunks: list[ChatChunk] | None = None
    vector: list[float] | None = None  # semantic entries: the prompt's embedding
    guard: str | None = None  # semantic entries: the digest a hit must match exactly

    @property
    def usage(self) -> Usage | None:
        """What making the answer took (what a hit saves), without assembling the answer."""
        if self.response is not None:
            return self.response.usage
        return next((c.usage for c in reversed(self.chunks or ()) if c.usage is not None), None)

    def as_response(self) -> ChatResponse:
        if self.response is not None:
            return self.response
        return fold(self.chunks or [])

    def as_chunks(self) -> list[ChatChunk]:
        if self.chunks is not None:
            return self.chunks
        assert self.response is not None
        return unfold(self.response)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CacheEntry)


def encode(entry: CacheEntry) -> bytes:
    return _encoder.encode(entry)


def decode(data: bytes) -> CacheEntry | None:
    """The entry, or None for bytes this version cannot read (written by another version)."""
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def fold(chunks: list[ChatChunk]) -> ChatResponse:
    """The response a stream adds up to: texts joined, tool calls assembled, usage kept."""
    first = chunks[0]
    texts: dict[int, list[str]] = {}
    reasoning: dict[int, list[str]] = {}
    calls: dict[int, dict[int, list[str]]] = {}
    names: dict[tuple[int, int], tuple[str, str]] = {}
    finish: dict[int, FinishReason | None] = {}
    usage = None
    for chunk in chunks:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            i, delta = choice.index, choice.delta
            finish[i] = choice.finish_reason or finish.get(i)
            if delta.content:
                texts.setdefault(i, []).append(delta.content)
            if delta.reasoning:
                reasoning.setdefault(i, []).append(delta.reasoning)
            for call in delta.tool_calls or ():
                parts = calls.setdefault(i, {}).setdefault(call.index, [])
                if call.id or call.name:
                    old = names.get((i, call.index), ("", ""))
                    names[(i, call.index)] = (call.id or old[0], call.name or old[1])
                if call.arguments:
                    parts.append(call.arguments)
    choices = []
    for i in sorted(finish):
        tool_calls = [
            ToolCall(id=names.get((i, n), ("", ""))[0], name=names.get((i, n), ("", ""))[1], arguments="".join(a))
            for n, a in sorted(calls.get(i, {}).items())
        ]
        message = Message(
            role="assistant",
            content="".join(texts[i]) if i in texts else None,
            tool_calls=tool_calls or None,
            reasoning="".join(reasoning[i]) if i in reasoning else None,
        )
        choices.append(Choice(index=i, message=message, finish_reason=finish[i]))
    return ChatResponse(id=first.id, model=first.model, created=first.created, choices=choices, usage=usage)


def unfold(response: ChatResponse) -> list[ChatChunk]:
    """A response as a stream: per choice, its role, reasoning, text, tool calls, then the finish; usage last."""
    chunks: list[ChatChunk] = []

    def add(choice: ChunkChoice) -> None:
        chunks.append(ChatChunk(id=response.id, model=response.model, created=response.created, choices=[choice]))

    for choice in response.choices:
        message, i = choice.message, choice.index
        add(ChunkChoice(index=i, delta=Delta(role="assistant")))
        if message.reasoning:
            add(ChunkChoice(index=i, delta=Delta(reasoning=message.reasoning)))
        text = message.text()
        if text:
            add(ChunkChoice(index=i, delta=Delta(content=text)))
        for n, call in enumerate(message.tool_calls or ()):
            delta = ToolCallDelta(index=n, id=call.id, name=call.name, arguments=call.arguments)
            add(ChunkChoice(index=i, delta=Delta(tool_calls=[delta])))
        add(ChunkChoice(index=i, delta=Delta(), finish_reason=choice.finish_reason or "stop"))
    if response.usage is not None:
        chunks.append(
            ChatChunk(id=response.id, model=response.model, created=response.created, choices=[], usage=response.usage)
        )
    return chunks


def cacheable(response: ChatResponse, *, tool_calls: bool, refusals: bool) -> bool:
    """Is this answer one to give again? Not a cut-off, not a refusal, not a tool call (unless allowed)."""
    for choice in response.choices:
        reason = choice.finish_reason
        if reason in ("error", None):
            return False
        if reason == "content_filter" and not refusals:
            return False
        if not tool_calls and (choice.message.tool_calls or reason in ("tool_calls", "function_call")):
            return False
        if not refusals and response.raw is not None and b'"refusal":"' in response.raw.replace(b'": "', b'":"'):
            return False
    return bool(response.choices)
