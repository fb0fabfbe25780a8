"""A Responses request's `tools`: what a chat backend can call, and what only OpenAI runs.

Responses tools come in three families:

* tools the client runs and a chat backend can be asked to call: `function`, `custom`
  (freeform text input, e.g. Codex's `apply_patch`) and `namespace` (a named group of those,
  e.g. Codex's `multi_agent_v1`). Namespaced tools are flattened into one chat function each,
  named `<namespace>__<name>`; a call to one comes back as a `function_call` (or
  `custom_tool_call`) item with the inner `name` and its `namespace`, as OpenAI returns it.
  A custom tool becomes a function with one string parameter, `input`.
* hosted tools (`web_search`, `file_search`, `code_interpreter`, `image_generation`,
  `computer_use_preview`, `local_shell`, `mcp`, ...): OpenAI's servers or models run them, so
  only a backend reached through its own `/v1/responses` honours them. For chat backends they
  are named in `ChatRequest.hosted_tools` and dropped (or refused on a strict route) like
  any parameter the provider cannot honour.

`ToolNames` remembers each flat name's origin, so output items get their names back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ...errors import InvalidRequest
from ...types import Tool

SEPARATOR = "__"
MAX_NAME = 64
"""Chat APIs take function names of at most 64 characters (`^[a-zA-Z0-9_-]{1,64}$`)."""
CUSTOM_INPUT = "input"
"""The one parameter a custom tool gets as a chat function: its freeform input text."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a chat function name came from: its Responses name, namespace and kind."""

    name: str
    namespace: str | None = None
    custom: bool = False


@dataclass(slots=True)
class ToolNames:
    """Chat function names <-> Responses tool names, for one request."""

    origins: dict[str, Origin] = field(default_factory=dict)

    def origin(self, flat: str) -> Origin:
        """The Responses identity of a chat call's name (a plain function when not renamed)."""
        return self.origins.get(flat) or Origin(flat)

    def flat(self, name: str, namespace: str | None) -> str:
        """The chat name of a Responses call to `name` in `namespace`."""
        return flat_name(namespace, name) if namespace else name


@dataclass(slots=True)
class DecodedTools:
    tools: list[Tool]
    hosted: list[str]
    names: ToolNames


def decode_tools(tools: list[Any] | None) -> DecodedTools:
    """The chat tools, the hosted tools' types and the name map of a request's `tools`."""
    decoded = DecodedTools([], [], ToolNames())
    for i, tool in enumerate(tools or ()):
        where = f"tools[{i}]"
        if not isinstance(tool, dict) or not isinstance(tool.get("type"), str):
            raise InvalidRequest("Each tool needs a string 'type'.", param=f"{where}.type")
        kind = tool["type"]
        if kind == "namespace":
            _namespace_in(tool, where, decoded)
        elif kind in ("function", "custom"):
            decoded.tools.append(_callable_in(tool, where, None, decoded.names))
        elif kind not in decoded.hosted:
            decoded.hosted.append(kind)
    return decoded


def flat_name(namespace: str, name: str) -> str:
    flat = f"{namespace}{SEPARATOR}{name}"
    if len(flat) <= MAX_NAME:
        return flat
    digest = hashlib.sha256(flat.encode()).hexdigest()[:8]
    return f"{flat[: MAX_NAME - len(digest) - 1]}_{digest}"


def _namespace_in(tool: dict[str, Any], where: str, decoded: DecodedTools) -> None:
    namespace, members = tool.get("name"), tool.get("tools")
    if not isinstance(namespace, str) or not namespace:
        raise InvalidRequest("A namespace tool needs a 'name'.", param=f"{where}.name")
    if not isinstance(members, list):
        raise InvalidRequest("A namespace tool needs a list of 'tools'.", param=f"{where}.tools")
    for j, member in enumerate(members):
        inner = f"{where}.tools[{j}]"
        if not isinstance(member, dict) or member.get("type") not in ("function", "custom"):
            raise InvalidRequest("A namespace groups function and custom tools only.", param=f"{inner}.type")
        decoded.tools.append(_callable_in(member, inner, (namespace, tool.get("description")), decoded.names))


def _callable_in(tool: dict[str, Any], where: str, namespace: tuple[str, Any] | None, names: ToolNames) -> Tool:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"A {tool['type']} tool needs a 'name'.", param=f"{where}.name")
    custom = tool["type"] == "custom"
    flat = flat_name(namespace[0], name) if namespace else name
    if namespace or custom:
        names.origins[flat] = Origin(name, namespace[0] if namespace else None, custom)
    description = tool.get("description")
    description = description if isinstance(description, str) else None
    if namespace and isinstance(namespace[1], str) and namespace[1]:
        description = f"{namespace[1]}\n\n{description}" if description else namespace[1]
    if custom:
        return Tool(name=flat, description=description, parameters=_custom_parameters(tool.get("format")))
    parameters = tool.get("parameters")
    strict = tool.get("strict")
    return Tool(
        name=flat,
        description=description,
        parameters=parameters if isinstance(parameters, dict) else None,
        strict=strict if isinstance(strict, bool) else None,
    )


def _custom_parameters(fmt: Any) -> dict[str, Any]:
    """A custom tool's freeform input as one string; a grammar, where given, is described to the model."""
    about = "The tool's input, as free text."
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        about = f"The tool's input, as free text in this {fmt.get('syntax', 'grammar')} grammar:\n{fmt['definition']}"
    return {
        "type": "object",
        "properties": {CUSTOM_INPUT: {"type": "string", "description": about}},
        "required": [CUSTOM_INPUT],
        "additionalProperties": False,
    }
