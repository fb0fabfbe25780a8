"""System turns in the middle of a conversation, for APIs that take system text only up front.

Anthropic (its mid-conversation system messages) and OpenAI-format servers read a system
message where it stands. Gemini's `systemInstruction` and Bedrock Converse's `system` come
before every turn: hoisting a late instruction there would make it apply from the start, so
it joins the nearest user turn instead (the one it follows, as Anthropic requires it to),
as that API's encoder merges neighbouring turns of one role.

>>> from llmmux.types import Message
>>> late_system_as_user([Message(role="system", content="A"), Message(role="user", content="B"),
...                      Message(role="system", content="C")])[2]
Message(role='user', content='C', name=None, tool_calls=None, tool_call_id=None, reasoning=None)
"""

from __future__ import annotations

from ..types import Message

SYSTEM_ROLES = ("system", "developer")


def late_system_as_user(messages: list[Message]) -> list[Message]:
    """The messages with every system turn after the first other turn made a user turn of its text."""
    first = next((i for i, m in enumerate(messages) if m.role not in SYSTEM_ROLES), len(messages))
    if not any(m.role in SYSTEM_ROLES for m in messages[first:]):
        return messages
    late = [Message(role="user", content=m.text()) if m.role in SYSTEM_ROLES else m for m in messages[first:]]
    return [*messages[:first], *late]
