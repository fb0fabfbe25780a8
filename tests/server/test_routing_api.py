"""The HTTP surface of routing: /health/providers, the debug header, capabilities, 429 and 503."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from support import Gateway
from upstreams import FakeOpenAI, hang, status

USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def ups() -> Iterator[tuple[FakeOpenAI, FakeOpenAI]]:
    with FakeOpenAI() as a, FakeOpenAI(echo_prefix="b: ") as b:
        yield a, b


def config(a: FakeOpenAI, b: FakeOpenAI, **sections: Any) -> dict[str, Any]:
    return {
        "providers": {
            "a": {
                "type": "openai_compatible",
                "base_url": a.url,
                "timeout": 2,
                "models": [{"name": "m", "context_length": 2000}],
            },
            "b": {"type": "openai_compatible", "base_url": b.url, "models": [{"name": "m", "context_length": 8000}]},
        },
        "routing": {
            "exact_matches": {
                "chat": {"provider": "a", "model": "m", "fallback": "b"},
                "solo": {"provider": "a", "model": "m", "fallback": "none"},
            }
        },
        "capabilities": {"code": {"preferred_models": ["m"]}},
        "health_checks": {"enabled": False, "failure_threshold": 2, "cooldown_seconds": 30, "min_cooldown_seconds": 30},
        **sections,
    }


def test_health_providers_reports_state_error_rate_and_why(ups: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = ups
    with Gateway(config(a, b)) as gw, httpx.Client(base_url=gw.root_url) as http:
        before = http.get("/health/providers").json()
        assert before["status"] == "ok"
        assert [p["name"] for p in before["providers"]] == ["a", "b"]
        a.set_default(status(503))
        for _ in range(3):
            assert http.post("/v1/chat/completions", json={"model": "chat", "messages": USER}).status_code == 200
        report = http.get("/health/providers").json()
    assert report["status"] == "degraded"
    row = {p["name"]: p for p in report["providers"]}["a"]
    assert row["state"] == "cooldown" and row["routable"] is False
    assert row["reason"].startswith("2 failures in a row: a returned 503")
    assert row["error_rate"] == 1.0 and row["requests"] == 2 and 29 <= row["retry_in_s"] <= 30
    assert row["transitions"] == {"active->cooldown": 1}
    assert len(a.requests_to("/chat/completions")) == 2  # the third request skipped it


def test_health_providers_needs_the_master_key(ups: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = ups
    with Gateway({**config(a, b), "server": {"master_key": "sk-master-0123456789"}}) as gw:
        assert httpx.get(gw.root_url + "/health/providers").status_code == 401
        ok = httpx.get(gw.root_url + "/health/providers", headers={"Authorization": "Bearer sk-master-0123456789"})
        assert ok.status_code == 200


def test_background_health_checks_run_in_the_lifespan(ups: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = ups
    cfg = config(a, b, health_checks={"interval_seconds": 0.05, "timeout_seconds": 1, "retry_attempts": 1})
    with Gateway(cfg) as gw:
        deadline = time.monotonic() + 5
        while len(a.requests_to("/models")) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        row = httpx.get(gw.root_url + "/health/providers").json()["providers"][0]
        assert row["last_probe"]["ok"] is True


def test_debug_header_explains_each_request_when_enabled(ups: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = ups
    with (
        Gateway(config(a, b, routing_strategy={"debug_header": True})) as gw,
        openai.OpenAI(base_url=gw.url, api_key="x", max_retries=0) as sdk,
    ):
        raw = sdk.chat.completions.with_raw_response.create(model="chat", messages=USER)
        header = raw.headers["x-llmmux-route"]
        assert "source=exact match" in header and "order=a/m,b/m" in header
        with sdk.chat.completions.with_streaming_response.create(model="chat", messages=USER, stream=True) as s:
            assert "order=a/m,b/m" in s.headers["x-llmmux-route"]
    with Gateway(config(a, b)) as gw:
        plain = httpx.post(gw.url + "/chat/completions", json={"model": "chat", "messages": USER})
        assert "x-llmmux-route" not in plain.headers


def test_capability_by_model_field_or_header(ups: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = ups
    with Gateway(config(a, b)) as gw, openai.OpenAI(base_url=gw.url, api_key="x", max_retries=0) as sdk:
        done = sdk.chat.completions.with_raw_response.create(model="capability:code", messages=USER)
        assert done.headers["x-llmmux-provider"] == "a" and done.parse().model == "capability:code"
        via_header = sdk.chat.completions.create(
            model="auto", messages=USER, extra_headers={"x-llmmux-capability": "code"}
        )
        assert via_header.choices[0].message.content == "echo: hello there"
        via_field = sdk.chat.completions.create(model="auto", messages=USER, extra_body={"capability": "code"})
        assert via_field.choices[0].message.content == "echo: hello there"
        with pytest.raises(openai.BadRequestError) as info:
            sdk.chat.completions.create(model="auto", messages=USER, extra_headers={"x-llmmux-capability": "poems"})
        assert info.value.body["param"] == "capability"  # type: ignore[index]
    assert a.last_request.json["model"] == "m" and "capability" not in a.last_request.json


def test_a_prompt_too_long_for_every_window_is_a_400(ups: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = ups
    with Gateway(config(a, b)) as gw, openai.OpenAI(base_url=gw.url, api_key="x", max_retries=0) as sdk:
        fits_b = sdk.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "word " * 3000}]
        )
        assert fits_b.headers["x-llmmux-provider"] == "b" and a.requests == []
        with pytest.raises(openai.BadRequestError) as info:
            sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "word " * 9000}])
        assert info.value.code == "context_length_exceeded"


def test_an_upstream_context_length_refusal_falls_back_to_the_larger_window(ups: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = ups
    a.script(
        status(
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 2000 tokens. However, your "
                    "messages resulted in 2400 tokens.",
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "context_length_exceeded",
                }
            },
        )
    )
    with Gateway(config(a, b)) as gw, openai.OpenAI(base_url=gw.url, api_key="x", max_retries=0) as sdk:
        raw = sdk.chat.completions.with_raw_response.create(model="chat", messages=USER)
    assert raw.headers["x-llmmux-provider"] == "b" and raw.headers["x-llmmux-attempts"] == "2"


def test_every_candidate_cooling_down_is_a_503_with_retry_after(ups: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = ups
    a.set_default(status(500))
    with Gateway(config(a, b, routing_strategy={"max_wait_seconds": 0})) as gw:
        for _ in range(2):
            assert httpx.post(gw.url + "/chat/completions", json={"model": "solo", "messages": USER}).status_code == 502
        down = httpx.post(gw.url + "/chat/completions", json={"model": "solo", "messages": USER})
    assert down.status_code == 503 and 29 <= int(down.headers["retry-after"]) <= 30
    assert down.json()["error"]["code"] == "providers_unavailable"


def test_client_side_limits_answer_429_with_retry_after(ups: tuple[FakeOpenAI, FakeOpenAI]) -> None:
    a, b = ups
    a.set_default(hang(0.5))
    limits = {"queue_size": 0, "limits": {"a": {"max_concurrency": 1}}}
    with Gateway(config(a, b, rate_limit_settings=limits)) as gw, httpx.Client(timeout=5) as http:
        import threading

        slow = threading.Thread(
            target=lambda: http.post(gw.url + "/chat/completions", json={"model": "solo", "messages": USER})
        )
        slow.start()
        while not a.requests:
            time.sleep(0.01)
        refused = http.post(gw.url + "/chat/completions", json={"model": "solo", "messages": USER})
        slow.join()
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["type"] == "rate_limit_error"
