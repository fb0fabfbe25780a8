"""Tool calls for models whose own chat template has none: llmmux's built-in tool template.

Many small or older instruction models (the embedded SmolLM2 among them) ship a plain
ChatML template that ignores `tools`. For those, a request's tools are rendered into the
system message in the Hermes / Qwen2.5 format, which ChatML-family models have seen most:

    # Tools
    ...
    <tools>
    {"type": "function", "function": {"name": "get_weather", ...}}
    </tools>
    ... return a json object with function name and arguments within <tool_call></tool_call> XML tags:
    <tool_call>
    {"name": <function-name>, "arguments": <args-json-object>}
    </tool_call>

Earlier calls in the conversation are written back the same way (an assistant turn's
`tool_calls` as `<tool_call>` blocks, tool results as a user turn of `<tool_response>`
blocks), and the model's `<tool_call>` blocks are parsed out of its reply, streamed or not,
into OpenAI `tool_calls` with `finish_reason: tool_calls`. A block that does not parse, or
names a tool the request did not offer, stays in the text as the model wrote it.

With `tool_choice: "required"` (and a named function, which the provider sends as that
tool alone, required) an engine that constrains output to a JSON schema (llama.cpp's
engines) generates exactly one `{"name": ..., "arguments": ...}` object matching one of the
tools' schemas, so the call always parses. MLX cannot constrain output: there the prompt
asks for a call, and a reply without one is returned as text.

`ToolPromptModel` wraps an engine's model and does all of this on the engine's own OpenAI
JSON, so every engine gets it alike.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from ..bridge import Emit
from .base import EngineModel
from .chat_frames import TextScanner

CALL_START, CALL_END = "<tool_call>", "</tool_call>"
RESPONSE_START, RESPONSE_END = "<tool_response>", "</tool_response>"
TOOLS_HEADER = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_FOOTER = (
    "</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
REQUIRED_NOTE = "\n\nYou must call one of these functions now."
CONTEXT_ERROR = b"exceed_context_size_error"  # the same prompt would not fit unconstrained either
COMPACT_DESCRIPTION = 160  # characters of a tool's description kept when the full list does not fit
SCHEMA_PROSE = frozenset({"description", "title", "examples", "$schema"})
NAMED_SCHEMAS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
TOOL_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "functions", "function_call")

_decode = msgspec.json.Decoder()
_raw_json = json.JSONDecoder()  # raw_decode: a JSON value at the start of text that runs on
_encode = msgspec.json.Encoder()


def tools_block(tools: list[dict[str, Any]], *, required: bool, compact: bool = False) -> str:
    """The system-prompt text that offers `tools` (OpenAI `{"type": "function", ...}` entries);
    `compact` keeps each description's first sentence and drops those inside the schemas."""
    lines = [_encode.encode(_compact(tool) if compact else tool).decode() for tool in tools]
    return "\n".join([TOOLS_HEADER, *lines, TOOLS_FOOTER]) + (REQUIRED_NOTE if required else "")


def _compact(tool: dict[str, Any]) -> dict[str, Any]:
    function = dict(tool.get("function") or {})
    description = function.get("description")
    if isinstance(description, str):
        function["description"] = description.strip().split("\n", 1)[0].split(". ", 1)[0][:COMPACT_DESCRIPTION]
    if isinstance(function.get("parameters"), dict):
        function["parameters"] = _bare_schema(function["parameters"])
    return {**tool, "function": function}


def _bare_schema(schema: Any) -> Any:
    """The schema without what only explains it (descriptions, titles, examples)."""
    if isinstance(schema, list):
        return [_bare_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    bare = {}
    for key, value in schema.items():
        if key in SCHEMA_PROSE:
            continue
        if key in NAMED_SCHEMAS and isinstance(value, dict):  # names chosen by the tool: a "title" property stays
            bare[key] = {name: _bare_schema(sub) for name, sub in value.items()}
        else:
            bare[key] = _bare_schema(value)
    return bare


def render_request(
    body: dict[str, Any], *, constrain: bool, compact: bool = False
) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
    """The request with tools written into its messages and removed as fields; the tools
    offered (empty when none, or `tool_choice: "none"`) and whether a call is required."""
    choice = body.get("tool_choice")
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type", "function") == "function"]
    if choice == "none":
        tools = []
    required = bool(tools) and choice == "required"
    out = {key: value for key, value in body.items() if key not in TOOL_FIELDS}
    messages = render_messages(body.get("messages") or [])
    if tools:
        messages = _with_system(messages, tools_block(tools, required=required, compact=compact))
    out["messages"] = messages
    if required and constrain:
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "tool_call", "schema": call_schema(tools)},
        }
    return out, tools, required


def call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """A JSON schema for one call of any of `tools`: its name and arguments matching its parameters."""
    options = []
    for tool in tools:
        function = tool.get("function") or {}
        parameters = function.get("parameters") or {"type": "object"}
        options.append(
            {
                "type": "object",
                "properties": {"name": {"const": function.get("name")}, "arguments": parameters},
                "required": ["name", "arguments"],
            }
        )
    return options[0] if len(options) == 1 else {"anyOf": options}


def render_messages(messages: list[Any]) -> list[dict[str, Any]]:
    """Messages a plain template can render: calls and results written out as text."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict):
            out.append(message)
            continue
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            text = _text(message.get("content"))
            blocks = [_call_text(call) for call in message["tool_calls"]]
            out.append({"role": "assistant", "content": "\n".join([text, *blocks] if text else blocks)})
        elif role in ("tool", "function"):
            block = f"{RESPONSE_START}\n{_text(message.get('content'))}\n{RESPONSE_END}"
            previous = out[-1] if out else None
            if previous is not None and previous.get("_results"):
                previous["content"] += "\n" + block  # results of one turn's calls go back together
            else:
                out.append({"role": "user", "content": block, "_results": True})
        else:
            out.append(message)
    for message in out:
        message.pop("_results", None)
    return out


def _with_system(messages: list[dict[str, Any]], block: str) -> list[dict[str, Any]]:
    if messages and messages[0].get("role") in ("system", "developer"):
        first = messages[0]
        text = _text(first.get("content"))
        return [{**first, "role": "system", "content": f"{text}\n\n{block}" if text else block}, *messages[1:]]
    return [{"role": "system", "content": block}, *messages]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _call_text(call: Any) -> str:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return ""
    arguments: Any = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = _decode.decode(arguments)
        except msgspec.DecodeError:
            pass  # written as the client sent it
    call_json = _encode.encode({"name": function.get("name"), "arguments": arguments}).decode()
    return f"{CALL_START}\n{call_json}\n{CALL_END}"


def parse_calls(text: str, tools: list[dict[str, Any]], ids: CallIds) -> tuple[list[dict[str, Any]], str] | None:
    """OpenAI `tool_calls` from the text after the first `<tool_call>` (or a bare JSON call),
    and any words the model wrote after its calls; None unless it starts with a call of an
    offered tool. Small models often leave out `</tool_call>`, or run on after it."""
    names = {(t.get("function") or {}).get("name") for t in tools}
    calls: list[dict[str, Any]] = []
    rest = text
    while True:
        rest = rest.lstrip()
        try:
            parsed, end = _raw_json.raw_decode(rest)
        except ValueError:
            break
        found = parsed if isinstance(parsed, list) else [parsed]
        if not found or not all(isinstance(call, dict) and call.get("name") in names for call in found):
            break
        calls.extend(_openai_call(call, ids) for call in found)
        rest = rest[end:].lstrip().removeprefix(CALL_END).lstrip()
        if not rest.startswith(CALL_START):
            break
        rest = rest[len(CALL_START) :]
    return (calls, rest.strip()) if calls else None


def _openai_call(call: dict[str, Any], ids: CallIds) -> dict[str, Any]:
    arguments = call.get("arguments", call.get("parameters", {}))
    if not isinstance(arguments, str):
        arguments = _encode.encode(arguments).decode()
    return {"id": ids.next(), "type": "function", "function": {"name": call["name"], "arguments": arguments}}


class CallIds:
    """Call ids unique within a reply, like OpenAI's `call_...`."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix.removeprefix("chatcmpl-")[-16:] or "local"
        self._count = 0

    def next(self) -> str:
        self._count += 1
        return f"call_{self._prefix}_{self._count}"


class ToolPromptModel:
    """An engine's model with tools rendered by the built-in template (see the module docstring).

    Requests without tools, or with `tool_choice: "none"`, still get their earlier calls
    and results written out, since the model's template would drop them.
    """

    tools: bool | None = True

    def __init__(self, model: EngineModel, *, constrain: bool) -> None:
        self.model = model
        self.parallel = model.parallel
        self.schema_output = model.schema_output
        self.constrain = constrain

    def chat(self, body: bytes, emit: Emit) -> None:
        if b'"tool' not in body and b'"function' not in body:  # no tools, calls or results: nothing to write out
            self.model.chat(body, emit)
            return
        try:
            request = _decode.decode(body)
        except msgspec.DecodeError:
            request = None
        if not isinstance(request, dict):
            self.model.chat(body, emit)  # the engine says what is wrong with it
            return
        constrain, compact = self.constrain, False
        while True:
            refusal = self._run(request, emit, constrain=constrain, compact=compact)
            if refusal is None:
                return
            if CONTEXT_ERROR in refusal and not compact:
                compact = True  # the tools' descriptions are what a long agent prompt can spare
            elif CONTEXT_ERROR not in refusal and constrain:
                constrain = False  # a schema llama.cpp's grammar cannot express, or a vocabulary that cannot spell it
            else:
                emit(refusal)
                return

    def _run(self, request: dict[str, Any], emit: Emit, *, constrain: bool, compact: bool) -> bytes | None:
        """Run the request; the engine's error, held back, when it refused it before any output
        and another rendering might do (None once the reply has gone out)."""
        rendered, tools, required = render_request(request, constrain=constrain, compact=compact)
        encoded = _encode.encode(rendered)
        if not tools:
            self.model.chat(encoded, emit)
            return None
        bare = required and constrain  # the whole reply is one JSON call
        relay = (
            _StreamedCalls(emit, tools, bare).emit if rendered.get("stream") else _WholeReply(emit, tools, bare).emit
        )
        first, refusal = True, None

        def first_error_held(payload: bytes) -> bool:
            nonlocal first, refusal
            if first and payload.startswith(b'{"error"'):
                refusal = payload
                return True
            first = False
            return relay(payload)

        self.model.chat(encoded, first_error_held)
        return refusal

    def embed(self, body: bytes, emit: Emit) -> None:
        self.model.embed(body, emit)

    def close(self) -> None:
        self.model.close()


def _split(text: str, bare: bool) -> tuple[str, str | None]:
    """The text before the first call, and the call text (None: no call)."""
    if bare:
        return "", text
    index = text.find(CALL_START)
    return (text, None) if index < 0 else (text[:index], text[index + len(CALL_START) :])


class _WholeReply:
    """A whole `chat.completion` with the calls in its text moved into `tool_calls`."""

    def __init__(self, emit: Emit, tools: list[dict[str, Any]], bare: bool) -> None:
        self._emit = emit
        self._tools = tools
        self._bare = bare

    def emit(self, payload: bytes) -> bool:
        return self._emit(_reply_with_calls(payload, self._tools, self._bare))


def _reply_with_calls(payload: bytes, tools: list[dict[str, Any]], bare: bool) -> bytes:
    reply = _decode.decode(payload)
    choices = reply.get("choices") if isinstance(reply, dict) else None
    if not choices:
        return payload  # an error, passed on as it is
    message = choices[0].get("message") or {}
    before, call_text = _split(message.get("content") or "", bare)
    parsed = parse_calls(call_text, tools, CallIds(reply.get("id", ""))) if call_text is not None else None
    if parsed is None:
        return payload
    calls, after = parsed
    text = "\n".join(part for part in (before.strip(), after) if part)
    choices[0]["message"] = {**message, "content": text or None, "tool_calls": calls}
    choices[0]["finish_reason"] = "tool_calls"
    return _encode.encode(reply)


class _StreamedCalls:
    """Stream chunks with calls held back from the text and sent as `tool_calls` deltas at the end."""

    def __init__(self, emit: Emit, tools: list[dict[str, Any]], bare: bool) -> None:
        self._emit = emit
        self._tools = tools
        self._bare = bare
        self._scanner = TextScanner([], CALL_START)
        if bare:
            self._scanner.tool_text = ""

    def emit(self, payload: bytes) -> bool:
        chunk = _decode.decode(payload)
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not choices:
            return self._emit(payload)  # the usage chunk, or an error
        choice = choices[0]
        delta = choice.get("delta") or {}
        if isinstance(delta.get("content"), str) and delta["content"]:
            safe = self._scanner.feed(delta["content"])
            if not safe and not choice.get("finish_reason") and set(delta) <= {"content"}:
                return False
            delta["content"] = safe
        if choice.get("finish_reason"):
            return self._finish(chunk, choice, delta)
        return self._emit(_encode.encode(chunk))

    def _finish(self, chunk: dict[str, Any], choice: dict[str, Any], delta: dict[str, Any]) -> bool:
        tool_text = self._scanner.tool_text
        parsed = parse_calls(tool_text, self._tools, CallIds(chunk.get("id", ""))) if tool_text is not None else None
        if parsed is not None:
            calls, after = parsed
            text = (delta.get("content") or "") + (("\n" + after) if after else "")
            if text and self._send(chunk, {"content": text}, None):
                return True
            if self._send(chunk, {"tool_calls": [{"index": i, **call} for i, call in enumerate(calls)]}, None):
                return True
            return self._send(chunk, {}, "tool_calls")
        if tool_text is None:
            unsent = self._scanner.flush()
        else:  # not a call after all: the text as the model wrote it
            unsent = tool_text if self._bare else CALL_START + tool_text
        delta["content"] = (delta.get("content") or "") + unsent
        choice["delta"] = delta
        return self._emit(_encode.encode(chunk))

    def _send(self, chunk: dict[str, Any], delta: dict[str, Any], finish: str | None) -> bool:
        out = {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return self._emit(_encode.encode(out))
