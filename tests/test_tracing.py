"""OpenTelemetry spans: one per request, one per attempt, GenAI attributes, measured times."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from llmmux.tracing import Tracing
from support import Gateway
from upstreams import FakeOpenAI, closed_port_url, status

USER = [{"role": "user", "content": "hello there"}]


@pytest.fixture
def spans() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter, provider
    provider.shutdown()


def test_a_request_with_a_fallback_is_a_server_span_over_two_attempts(
    spans: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    exporter, provider = spans
    with FakeOpenAI() as up:
        config = {
            "tracing": {"enabled": True},
            "providers": {
                "main": {"type": "openai_compatible", "base_url": up.url, "models": ["m1"]},
                "gone": {"type": "openai_compatible", "base_url": closed_port_url()},
            },
            "routing": {"exact_matches": {"chat": {"provider": "gone", "model": "x", "fallback": ["main/m1"]}}},
        }
        gw = Gateway(config)
        accounting = gw.app.accounting
        accounting.tracing = Tracing(lambda: gw.router.providers, tracer_provider=provider)
        with gw, openai.OpenAI(base_url=gw.url, api_key="k", max_retries=0) as sdk:
            done = sdk.chat.completions.with_raw_response.create(model="chat", messages=USER, temperature=0.5)
    request_id = done.headers["x-request-id"]
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    server, failed, answered = by_name["chat chat"], by_name["chat x"], by_name["chat m1"]
    assert server.kind == SpanKind.SERVER and failed.kind == answered.kind == SpanKind.CLIENT
    assert failed.parent is not None and failed.parent.span_id == server.context.span_id
    assert answered.parent is not None and answered.parent.span_id == server.context.span_id
    attributes = dict(server.attributes or {})
    assert {
        k: attributes[k]
        for k in (
            "gen_ai.operation.name",
            "gen_ai.request.model",
            "gen_ai.response.model",
            "gen_ai.provider.name",
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.output_tokens",
            "gen_ai.request.temperature",
            "llmmux.request_id",
            "llmmux.attempts",
            "http.response.status_code",
        )
    } == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "chat",
        "gen_ai.response.model": "m1",
        "gen_ai.provider.name": "openai_compatible",
        "gen_ai.usage.input_tokens": 2,
        "gen_ai.usage.output_tokens": 3,
        "gen_ai.request.temperature": 0.5,
        "llmmux.request_id": request_id,
        "llmmux.attempts": 2,
        "http.response.status_code": 200,
    }
    assert dict(answered.attributes or {})["gen_ai.response.finish_reasons"] == ("stop",)
    assert dict(answered.attributes or {})["server.address"] == "127.0.0.1"
    assert dict(failed.attributes or {})["error.type"] == "connect_error"
    assert failed.status.status_code == StatusCode.ERROR and server.status.status_code == StatusCode.UNSET
    assert server.start_time is not None and server.end_time is not None and failed.end_time is not None
    assert server.start_time <= failed.start_time <= failed.end_time <= server.end_time  # type: ignore[operator]


def test_tracing_off_by_default() -> None:
    with FakeOpenAI() as up:
        gw = Gateway({"providers": {"main": {"type": "openai_compatible", "base_url": up.url, "models": ["m1"]}}})
        assert gw.app.accounting.tracing is None


def test_attempt_spans_sit_where_the_attempts_ran(spans: tuple[InMemorySpanExporter, TracerProvider]) -> None:
    """From attempt_finished's measured starts: the wait before a retry shows as a gap between spans."""
    exporter, provider = spans
    with FakeOpenAI() as up:
        config = {
            "tracing": {"enabled": True},
            "providers": {"main": {"type": "openai_compatible", "base_url": up.url, "models": ["m1"]}},
            "routing": {
                "exact_matches": {
                    "chat": {"provider": "main", "model": "m1", "retry_attempts": 1, "retry_delay_ms": 400}
                }
            },
        }
        gw = Gateway(config)
        gw.app.accounting.tracing = Tracing(lambda: gw.router.providers, tracer_provider=provider)
        up.script(status(503))
        with gw, openai.OpenAI(base_url=gw.url, api_key="k", max_retries=0) as sdk:
            sdk.chat.completions.create(model="chat", messages=USER)
    attempts = sorted(
        (s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT), key=lambda s: s.start_time or 0
    )
    failed, answered = attempts
    assert dict(failed.attributes or {})["error.type"] == "server_error"
    assert "gen_ai.usage.input_tokens" in dict(answered.attributes or {})
    assert failed.end_time is not None and answered.start_time is not None
    gap_ms = (answered.start_time - failed.end_time) / 1e6
    assert gap_ms >= 150  # the retry waited 200 to 400 ms (jittered); spans laid back to back would show 0
