"""Which whole answers a client leaving the Responses and completions doors cancels: those of a
route of local models only. A cloud API bills the request whether or not anyone reads the reply,
so its answer is still taken, accounted for and (a stored response) kept whole.

The real app under uvicorn and a raw-socket client that leaves; the local model is a fake
OpenAI-compatible server on 127.0.0.1 (a loopback address: local), the cloud API a transport
answering for a public host name (no test can listen on one)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from llmmux.events import RequestRecord
from llmmux.providers.http_provider import HTTPProvider
from llmmux.providers.mock_transport import MockReply, MockTransport
from llmmux.providers.transport import UpstreamRequest
from support.gateway import Gateway
from support.leaving import leave, until
from upstreams import FakeOpenAI, Reply

LOCAL_ANSWER_S = 3.0  # a local model still generating long after its client left
CLOUD_ANSWER_S = 0.5  # a cloud API answering some time after its client left


class SlowCloud:
    """The cloud API: answers every chat after CLOUD_ANSWER_S, and counts what it answered."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.answered = 0

    async def __call__(self, request: UpstreamRequest) -> MockReply:
        self.started.release()
        await asyncio.sleep(CLOUD_ANSWER_S)
        self.answered += 1
        if request.url.endswith("/responses"):  # OpenAI takes a Responses body natively
            return MockReply.json(RESPONSE)
        assert request.url.endswith("/chat/completions")
        return MockReply.json(COMPLETION)


TEXT = "billed either way"
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
}
RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "created_at": 1,
    "status": "completed",
    "model": "gpt-4o-mini",
    "output": [
        {
            "type": "message",
            "id": "msg_1",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": TEXT, "annotations": []}],
        }
    ],
    "usage": {"input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500},
}


@pytest.fixture
def gateway() -> Iterator[tuple[Gateway, FakeOpenAI, SlowCloud, list[RequestRecord]]]:
    with FakeOpenAI() as lan:
        lan.set_default(Reply(stall_after=0, stall_seconds=LOCAL_ANSWER_S))
        config = {
            "providers": {
                "lan": {"type": "openai_compatible", "base_url": lan.url, "models": ["qwen"]},
                "cloud": {"type": "openai", "base_url": "https://api.cloud.example/v1", "api_key": "sk-test-cloud"},
            },
            "routing": {"exact_matches": {"cloudy": {"provider": "cloud", "model": "gpt-4o-mini"}}},
        }
        cloud = SlowCloud()
        records: list[RequestRecord] = []
        with Gateway(config) as gw:
            provider = gw.router.providers["cloud"]
            assert isinstance(provider, HTTPProvider)
            provider.transport = MockTransport(cloud)
            gw.router.events.subscribe(records.append)
            yield gw, lan, cloud, records


def outcomes(records: list[RequestRecord]) -> list[tuple[int, str | None, str | None, bool]]:
    return sorted((r.status, r.error_kind, r.provider, r.cost_usd > 0) for r in records)


PROMPTS = {"prompt": ["one", "two"], "max_tokens": 16}  # two routed calls, at once


def test_leaving_a_completion_cancels_every_prompt_of_a_local_route_and_none_of_a_clouds(
    gateway: tuple[Gateway, FakeOpenAI, SlowCloud, list[RequestRecord]],
) -> None:
    gw, lan, cloud, records = gateway
    leave(gw.port, "/v1/completions", {"model": "qwen", **PROMPTS}, lambda: len(lan.requests) == 2)
    # Both calls end as the client's leaving, long before the model would have answered.
    assert until(lambda: len(records) == 2, timeout=LOCAL_ANSWER_S / 2) < LOCAL_ANSWER_S / 2
    assert outcomes(records) == [(499, "client_closed", None, False)] * 2
    records.clear()

    leave(gw.port, "/v1/completions", {"model": "cloudy", **PROMPTS}, lambda: cloud.started.acquire(timeout=5))
    until(lambda: len(records) == 2, timeout=CLOUD_ANSWER_S + 10)
    assert cloud.answered == 2
    assert outcomes(records) == [(200, None, "cloud", True)] * 2  # taken, and billed (gpt-4o-mini's price)


def test_leaving_a_response_cancels_a_local_routes_and_stores_nothing_but_keeps_a_clouds_whole(
    gateway: tuple[Gateway, FakeOpenAI, SlowCloud, list[RequestRecord]],
) -> None:
    gw, lan, cloud, records = gateway
    store = gw.app.responses.store
    leave(gw.port, "/v1/responses", {"model": "qwen", "input": "hi", "store": True}, lambda: len(lan.requests) == 1)
    assert until(lambda: len(records) == 1, timeout=LOCAL_ANSWER_S / 2) < LOCAL_ANSWER_S / 2
    assert outcomes(records) == [(499, "client_closed", None, False)]
    records.clear()

    leave(
        gw.port,
        "/v1/responses",
        {"model": "cloudy", "input": "hi", "store": True},
        lambda: cloud.started.acquire(timeout=5),
    )
    until(lambda: len(records) == 1 and len(store) == 1, timeout=CLOUD_ANSWER_S + 10)
    assert outcomes(records) == [(200, None, "cloud", True)]
    (kept,) = store._entries.values()  # the response nobody read is kept whole, for whoever has its id
    assert kept.body["status"] == "completed"
    assert kept.body["output"][0]["content"][0]["text"] == TEXT
    assert len(store) == 1  # and the local one, left, was never stored
