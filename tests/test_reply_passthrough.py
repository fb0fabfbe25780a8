"""Replies pass through as the upstream's bytes, and only while nothing changed them.

A reply from a same-format upstream keeps its bytes (`ChatResponse.raw`, `ChatChunk.raw`)
and the client's encoder sends them with only the model renamed. That is right only while
the canonical fields still say what the bytes say: so nothing changes a reply after its
provider returned it except through `edited()`, which drops the bytes. The first tests show
each encoder following an edit; the last holds every module of the package to the rule.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path

import pytest

import llmmux
from llmmux.types import ChatResponse, Choice, Message
from llmmux.wire import anthropic as anthropic_wire
from llmmux.wire import ollama as ollama_wire
from llmmux.wire import ollama_frontdoor
from llmmux.wire import openai as openai_wire
from llmmux.wire.responses import response as responses_response
from llmmux.wire.responses import upstream as responses_upstream

OPENAI_REPLY = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-up","system_fingerprint":"fp_x",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Hello.","refusal":null},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}'
)
ANTHROPIC_REPLY = (
    b'{"id":"msg_1","type":"message","role":"assistant","model":"claude-up",'
    b'"content":[{"type":"text","text":"Hello."}],"stop_reason":"end_turn","stop_sequence":null,'
    b'"usage":{"input_tokens":3,"output_tokens":2}}'
)
OLLAMA_REPLY = (
    b'{"model":"llama-up","created_at":"2026-12-07T00:00:00Z","message":{"role":"assistant","content":"Hello."},'
    b'"done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":2}'
)
RESPONSES_REPLY = (
    b'{"id":"resp_1","object":"response","created_at":1,"model":"gpt-up","status":"completed",'
    b'"output":[{"type":"message","id":"msg_1","role":"assistant","status":"completed",'
    b'"content":[{"type":"output_text","text":"Hello.","annotations":[]}]}],'
    b'"usage":{"input_tokens":3,"output_tokens":2,"total_tokens":5}}'
)

Decode = Callable[[bytes], ChatResponse]
Encode = Callable[[ChatResponse], bytes]


def _responses_encode(reply: ChatResponse) -> bytes:
    from llmmux.wire import responses as responses_wire

    ask = responses_wire.decode_request({"model": "public", "input": "hi"})
    return responses_response.encode_response(responses_wire.ResponseShell(ask, "public"), reply)[2]


# (format, upstream bytes, decoder, the client's encoder)
FORMATS: list[tuple[str, bytes, Decode, Encode]] = [
    ("openai", OPENAI_REPLY, openai_wire.decode_chat_response, lambda r: openai_wire.encode_chat_response(r, "public")),
    ("anthropic", ANTHROPIC_REPLY, anthropic_wire.decode_chat_response, lambda r: anthropic_wire.encode_chat_response(r, "public")),
    ("ollama", OLLAMA_REPLY, ollama_wire.decode_chat_response, lambda r: ollama_frontdoor.encode_chat_response(r, "public")),
    ("responses", RESPONSES_REPLY, responses_upstream.decode_response, _responses_encode),
]  # fmt: skip


@pytest.mark.parametrize(("data", "decode", "encode"), [f[1:] for f in FORMATS], ids=[f[0] for f in FORMATS])
def test_an_unchanged_reply_is_the_upstreams_bytes_and_an_edited_one_says_the_edit(
    data: bytes, decode: Decode, encode: Encode
) -> None:
    reply = decode(data)
    sent = encode(reply)
    assert sent.replace(b'"public"', b'"up"') == data.replace(b'"gpt-up"', b'"up"').replace(
        b'"claude-up"', b'"up"'
    ).replace(b'"llama-up"', b'"up"')
    edited = reply.edited(choices=[Choice(message=Message(role="assistant", content="Bonjour."), finish_reason="stop")])
    assert edited.raw is None and reply.raw == data  # the original is untouched
    out = encode(edited)
    assert b"Bonjour." in out and b"Hello." not in out
    json.loads(out)


def test_an_edited_chunk_drops_the_upstreams_frame() -> None:
    chunk = openai_wire.decode_chunk(
        b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-up",'
        b'"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}'
    )
    assert b'"Hel"' in openai_wire.encode_chunk(chunk, "public")
    edited = chunk.edited(choices=[])
    assert edited.raw is None and b'"Hel"' not in openai_wire.encode_chunk(edited, "public")


# -- the rule, held over the whole package --

PACKAGE = Path(llmmux.__file__).parent
REPLY_NAMES = frozenset({"response", "reply", "chunk", "answer", "done", "result", "first", "last"})
CANONICAL_FIELDS = frozenset({"choices", "message", "delta", "content", "tool_calls", "finish_reason", "usage", "id"})
ALLOWED = {
    # Wire modules build replies from an upstream's bytes: they set the fields before any encoder sees them.
    "wire/",
    # An EmbeddingResponse (no upstream bytes) given the public model name.
    "providers/llama_cpp.py",
}


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _violations(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                changed = isinstance(target, ast.Attribute) and target.attr in CANONICAL_FIELDS
                if changed and _root_name(target) in REPLY_NAMES:
                    found.append(f"line {node.lineno}: assigns {ast.unparse(target)}")
        replaces = isinstance(node, ast.Call) and ast.unparse(node.func).endswith("structs.replace") and node.args
        if replaces and isinstance(node, ast.Call) and _root_name(node.args[0]) in REPLY_NAMES:
            found.append(f"line {node.lineno}: {ast.unparse(node.func)}({ast.unparse(node.args[0])}, ...)")
    return found


def test_nothing_changes_a_reply_after_its_provider_but_through_edited() -> None:
    found = {}
    for file in sorted(PACKAGE.rglob("*.py")):
        where = file.relative_to(PACKAGE).as_posix()
        if any(where.startswith(allowed) for allowed in ALLOWED):
            continue
        violations = _violations(ast.parse(file.read_text(encoding="utf-8")))
        if violations:
            found[where] = violations
    assert found == {}, "change a reply with .edited(...), which drops the upstream's bytes"


def test_the_rule_catches_an_edit_in_place() -> None:
    """The scan is not vacuous: the two ways a step would bypass `edited()` are both found."""
    source = "response.choices[0].message.content = 'x'\nchunk = msgspec.structs.replace(chunk, choices=[])\n"
    assert len(_violations(ast.parse(source))) == 2
