"""The official `anthropic` SDK as a judge of bytes llmmux writes, and a source of bodies it reads.

The SDK runs over `httpx2.MockTransport`: no socket, but its own request building, response
parsing and stream accumulation, so what passes here is what Anthropic's clients accept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import httpx2

Handler = Callable[[httpx2.Request], httpx2.Response]


@contextmanager
def sdk_client(handler: Handler) -> Iterator[anthropic.Anthropic]:
    http = httpx2.Client(transport=httpx2.MockTransport(handler))
    with anthropic.Anthropic(
        api_key="sk-ant-test", base_url="http://anthropic.test", http_client=http, max_retries=0
    ) as client:
        yield client


def parse_message(body: bytes) -> anthropic.types.Message:
    """`body` as the SDK reads a non-streamed reply."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=body, headers={"content-type": "application/json"})

    with sdk_client(handler) as client:
        return client.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}])


def accumulate_stream(events: bytes) -> tuple[anthropic.types.Message, list[Any]]:
    """The final message the SDK's stream helper builds from `events`, and the event types it saw."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=events, headers={"content-type": "text/event-stream"})

    with (
        sdk_client(handler) as client,
        client.messages.stream(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}]) as stream,
    ):
        kinds = [event.type for event in stream]
        return stream.get_final_message(), kinds


def request_body(**params: Any) -> dict[str, Any]:
    """The JSON body the SDK sends for `client.messages.create(**params)`."""
    sent: list[dict[str, Any]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        message: dict[str, Any] = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "m",
            "content": [],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 1, "output_tokens": 1},
        }
        return httpx2.Response(200, json=message)

    with sdk_client(handler) as client:
        client.messages.create(**params)
    return sent[0]
