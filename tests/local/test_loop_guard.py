"""The loop guard around an engine's model, with a scripted engine that streams fixed tokens:
a looping reply ends early as `stop` with its usage, streamed or whole, and anything else
passes through untouched. The real model runs it in `tests/providers/test_local_loop_guard.py`."""

from __future__ import annotations

import json
from typing import Any

from llmmux.local.bridge import Emit
from llmmux.local.engines.loop_guard import LoopGuardModel
from llmmux.local.repetition import LoopGuard

LOOP = ["Let", " me", " read", " it", ".\n"] * 200  # "Let me read it.\n" until the cap
PROMPT_TOKENS = 37
GUARD = LoopGuard()


class TokenEngine:
    """Streams `tokens` one chunk each, as llama.cpp does (progress, role, text, finish, usage);
    a whole reply when not asked to stream. Records what it was asked and how far it got."""

    parallel = 2
    tools: bool | None = False
    schema_output = True

    def __init__(self, tokens: list[str], finish: str = "length", *, calls: list[dict[str, Any]] | None = None) -> None:
        self.tokens = tokens
        self.finish = finish
        self.calls = calls or []
        self.bodies: list[dict[str, Any]] = []
        self.generated = 0
        self.closed = False

    def chat(self, body: bytes, emit: Emit) -> None:
        request = json.loads(body)
        self.bodies.append(request)
        usage = {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": len(self.tokens), "total_tokens": 0}
        if not request.get("stream"):
            self.generated = len(self.tokens)
            message = {"role": "assistant", "content": "".join(self.tokens)}
            choice = {"index": 0, "message": message, "finish_reason": self.finish}
            emit(json.dumps({"id": "chatcmpl-9", "choices": [choice], "usage": usage}).encode())
            return
        if request.get("return_progress"):
            progress = {"total": PROMPT_TOKENS, "cache": 0, "processed": PROMPT_TOKENS, "time_ms": 1.0}
            if emit(json.dumps({"id": "chatcmpl-9", "choices": [], "prompt_progress": progress}).encode()):
                return
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": None}]
        deltas += [{"content": token} for token in self.tokens]
        deltas += [{"tool_calls": [call]} for call in self.calls]
        for delta in deltas:
            self.generated += "content" in delta and delta["content"] is not None
            if emit(self._chunk(delta, None)):
                return
        if emit(self._chunk({}, self.finish)):
            return
        emit(json.dumps({"id": "chatcmpl-9", "choices": [], "usage": usage}).encode())

    @staticmethod
    def _chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return json.dumps({"id": "chatcmpl-9", "created": 7, "model": "m", "choices": [choice]}).encode()

    def embed(self, body: bytes, emit: Emit) -> None:
        emit(b'{"data": []}')

    def close(self) -> None:
        self.closed = True


def run(model: LoopGuardModel, request: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[bytes] = []
    model.chat(json.dumps({"messages": [{"role": "user", "content": "hi"}], **request}).encode(), _collect(out))
    return [json.loads(payload) for payload in out]


def _collect(out: list[bytes]) -> Emit:
    def emit(payload: bytes) -> bool:
        out.append(payload)
        return False

    return emit


def streamed_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


def test_a_looping_stream_ends_as_stop_with_its_usage() -> None:
    engine = TokenEngine(LOOP)
    chunks = run(LoopGuardModel(engine, GUARD, "smol"), {"stream": True, "return_progress": True})
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1 and "length" not in finishes
    assert engine.generated < 100  # told to stop: not the 1,000 tokens to the cap
    text = streamed_text(chunks)
    assert text.startswith("Let me read it.\n") and text.count("Let me read it.\n") >= GUARD.repeats
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["id"] == "chatcmpl-9"
    assert usage == {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": engine.generated,
        "total_tokens": 37 + engine.generated,
    }
    assert "prompt_progress" in chunks[0]  # passed on for the provider's first-token clock


def test_a_looping_whole_reply_is_generated_as_a_stream_and_ends_as_stop() -> None:
    engine = TokenEngine(LOOP)
    [reply] = run(LoopGuardModel(engine, GUARD, "smol"), {"max_tokens": 1000, "temperature": 0})
    assert engine.bodies[0]["stream"] is True and engine.bodies[0]["temperature"] == 0
    assert engine.generated < 100
    choice = reply["choices"][0]
    assert reply["object"] == "chat.completion" and reply["id"] == "chatcmpl-9"
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].count("Let me read it.\n") >= GUARD.repeats
    assert reply["usage"]["prompt_tokens"] == PROMPT_TOKENS
    assert reply["usage"]["completion_tokens"] == engine.generated


def test_a_reply_that_does_not_loop_is_unchanged() -> None:
    words = [f" word{i}" for i in range(300)]
    engine = TokenEngine(words, finish="length")
    chunks = run(LoopGuardModel(engine, GUARD, "smol"), {"stream": True})
    assert engine.generated == 300
    assert [c["choices"][0]["finish_reason"] for c in chunks if c.get("choices")][-1] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 300  # the engine's own usage

    [reply] = run(LoopGuardModel(TokenEngine(words, finish="length"), GUARD, "smol"), {})
    assert reply["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "".join(words)},
        "finish_reason": "length",
    }
    assert reply["usage"]["completion_tokens"] == 300


def test_tool_calls_are_put_together_in_a_whole_reply() -> None:
    calls = [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "read", "arguments": ""}},
        {"index": 0, "function": {"arguments": '{"path": '}},
        {"index": 0, "function": {"arguments": '"notes.txt"}'}},
    ]
    [reply] = run(LoopGuardModel(TokenEngine(["Reading."], "tool_calls", calls=calls), GUARD, "smol"), {})
    message = reply["choices"][0]["message"]
    assert message["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "read", "arguments": '{"path": "notes.txt"}'}}
    ]
    assert message["content"] == "Reading." and reply["choices"][0]["finish_reason"] == "tool_calls"


def test_a_loop_inside_tool_call_arguments_is_stopped_too() -> None:
    calls = [{"index": 0, "id": "c", "type": "function", "function": {"name": "write", "arguments": '{"text": "'}}]
    calls += [{"index": 0, "function": {"arguments": "la la "}}] * 500
    engine = TokenEngine([], "tool_calls", calls=calls)
    chunks = run(LoopGuardModel(engine, GUARD, "smol"), {"stream": True})
    sent = [c for c in chunks if c.get("choices") and c["choices"][0]["delta"].get("tool_calls")]
    assert len(sent) < 100 and chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_what_it_cannot_rebuild_passes_through() -> None:
    for request in ({"n": 2}, {"logprobs": True}):
        engine = TokenEngine(LOOP)
        [reply] = run(LoopGuardModel(engine, GUARD, "smol"), request)
        assert engine.generated == len(LOOP) and reply["choices"][0]["finish_reason"] == "length"
        assert "stream" not in engine.bodies[0]


def test_an_engine_error_is_passed_on_as_it_is() -> None:
    class Refusing(TokenEngine):
        def chat(self, body: bytes, emit: Emit) -> None:
            emit(b'{"error":{"code":400,"message":"too long","type":"exceed_context_size_error"}}')

    model = LoopGuardModel(Refusing([]), GUARD, "smol")
    for request in ({}, {"stream": True}):
        assert run(model, request) == [
            {"error": {"code": 400, "message": "too long", "type": "exceed_context_size_error"}}
        ]


def test_a_client_that_left_stops_the_engine() -> None:
    engine = TokenEngine([" x"] * 50 + [f" y{i}" for i in range(50)])
    out: list[bytes] = []

    def leave_after_five(payload: bytes) -> bool:
        out.append(payload)
        return len(out) >= 5

    LoopGuardModel(engine, GUARD, "smol").chat(json.dumps({"messages": [], "stream": True}).encode(), leave_after_five)
    assert len(out) == 5 and engine.generated == 4  # the role chunk, then four tokens


def test_it_keeps_what_the_engine_says_about_itself() -> None:
    engine = TokenEngine([])
    model = LoopGuardModel(engine, GUARD, "smol")
    assert (model.parallel, model.tools, model.schema_output) == (2, False, True)
    out: list[bytes] = []
    model.embed(b"{}", _collect(out))
    model.close()
    assert out == [b'{"data": []}'] and engine.closed
