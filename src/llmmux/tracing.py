"""OpenTelemetry traces, optional (`pip install 'llmmux[otel]'`, then `tracing: {enabled: true}`).

One span per request (kind SERVER) and, under it, one per upstream attempt (kind CLIENT),
named and tagged after the GenAI semantic conventions: `chat {model}`, with
`gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`,
`gen_ai.response.model`, `gen_ai.usage.input_tokens` / `output_tokens`,
`gen_ai.response.finish_reasons`, `error.type`, `server.address` / `server.port`, and
llmmux's own `llmmux.*` attributes (request id, key id, cost, fallbacks).

Spans are made from finished requests and their finished attempts (`attempt_finished`),
each with its measured start and end, in the sinks' batches, so tracing adds nothing to the
request path (`sinks/tracing.py`). Spans go to whatever TracerProvider the
process has (the OpenTelemetry SDK configured in code, or `opentelemetry-instrument
llmmux serve` with the usual OTEL_* variables); with the API alone they are no-ops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from . import __version__
from .events import AttemptRecord, RequestRecord
from .providers.base import Provider

TRACER_NAME = "llmmux"


class Tracing:
    """Turns finished requests into spans: `Tracing(lambda: router.providers).record(record, attempts)`."""

    def __init__(self, providers: Callable[[], Mapping[str, Provider]], tracer_provider: Any = None) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer = trace.get_tracer(TRACER_NAME, __version__, tracer_provider=tracer_provider)
        self._providers = providers  # looked up per span: a config reload replaces them

    def _type(self, name: str) -> str:
        provider = self._providers().get(name)
        return provider.config.type if provider is not None else name

    def record(self, record: RequestRecord, attempts: Sequence[AttemptRecord] = ()) -> None:
        """The request's span (kind SERVER) and one per attempt under it (kind CLIENT)."""
        from opentelemetry.trace import SpanKind, Status, StatusCode

        start = int(record.context.started * 1e9)
        end = start + int(record.latency_ms * 1e6)
        operation = "chat" if record.request is not None or record.stream else "embeddings"
        span = self._tracer.start_span(
            f"{operation} {record.public_model}",
            kind=SpanKind.SERVER,
            start_time=start,
            attributes=self._request_attributes(record, operation),
        )
        if record.status >= 500:
            span.set_status(Status(StatusCode.ERROR, record.error_kind or str(record.status)))
        context = self._trace.set_span_in_context(span)
        for attempt in attempts:
            begin = max(start, int(attempt.started * 1e9))
            attributes = self._attempt_attributes(operation, attempt.provider, attempt.model)
            if attempt.error_kind is None and attempt.provider == record.provider:
                attributes.update(_usage_attributes(record))  # the attempt that answered
            child = self._tracer.start_span(
                f"{operation} {attempt.model}",
                context=context,
                kind=SpanKind.CLIENT,
                start_time=begin,
                attributes=attributes,
            )
            if attempt.error_kind is not None:
                child.set_attribute("error.type", attempt.error_kind)
                child.set_status(Status(StatusCode.ERROR, (attempt.error_message or attempt.error_kind)[:200]))
            child.end(end_time=min(end, begin + int(attempt.elapsed_ms * 1e6)))
        span.end(end_time=end)

    def _request_attributes(self, record: RequestRecord, operation: str) -> dict[str, Any]:
        context = record.context
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": record.public_model,
            "llmmux.request_id": context.request_id,
            "llmmux.client_api": context.client_api,
            "llmmux.attempts": len(record.attempts) + (record.provider is not None),
            "llmmux.cost_usd": record.cost_usd,
            "http.response.status_code": record.status,
            "gen_ai.request.stream": record.stream,
        }
        if context.key_id is not None:
            attributes["llmmux.key_id"] = context.key_id
        if record.provider is not None:
            attributes["gen_ai.provider.name"] = self._type(record.provider)
            attributes["llmmux.provider"] = record.provider
            attributes["gen_ai.response.model"] = record.model or ""
        if record.error_kind:
            attributes["error.type"] = record.error_kind
        if record.ttft_ms is not None:
            attributes["llmmux.time_to_first_chunk_ms"] = record.ttft_ms
        request = record.request
        if request is not None:
            for name, value in (
                ("gen_ai.request.max_tokens", request.max_tokens),
                ("gen_ai.request.temperature", request.temperature),
                ("gen_ai.request.top_p", request.top_p),
            ):
                if value is not None:
                    attributes[name] = value
        attributes.update(_usage_attributes(record))
        return attributes

    def _attempt_attributes(self, operation: str, provider: str, model: str) -> dict[str, Any]:
        found = self._providers().get(provider)
        host, port = _server(found.base_url()) if found is not None else ("", None)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": self._type(provider),
            "gen_ai.request.model": model,
            "llmmux.provider": provider,
        }
        if host:
            attributes["server.address"] = host
        if port is not None:
            attributes["server.port"] = port
        return attributes


def _usage_attributes(record: RequestRecord) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    usage = record.usage
    if usage is not None:
        attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
        if usage.estimated:
            attributes["llmmux.usage.estimated"] = True
    response = record.response
    if response is not None:
        attributes["gen_ai.response.id"] = response.id
        reasons = [c.finish_reason for c in response.choices if c.finish_reason]
        if reasons:
            attributes["gen_ai.response.finish_reasons"] = reasons
    return attributes


def _server(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or {"https": 443, "http": 80}.get(parts.scheme)
