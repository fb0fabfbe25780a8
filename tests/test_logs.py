"""Structured logs: masking, the JSON line format, request lines and bodies only where asked."""

from __future__ import annotations

import io
import json
import logging

import pytest

from llmmux.config.model import BodyStoreConfig, LoggingConfig
from llmmux.events import CallContext, RequestRecord
from llmmux.logs import JSONFormatter, Masker, RequestLog, setup_logging
from llmmux.types import ChatRequest, Message, Usage


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("Authorization: Bearer abc.def-123456789", "abc.def-123456789"),
        ('{"api_key": "hunter2hunter2"}', "hunter2hunter2"),
        ("x-api-key=zzzzzzzzzzzz", "zzzzzzzzzzzz"),
        ("used sk-llmmux-AbCdEfGhIjKlMnOp_qrs for it", "sk-llmmux-AbCdEfGhIjKlMnOp_qrs"),
        ("postgresql://llmmux:s3cr3tpass@db:5432/x", "s3cr3tpass"),
        ("the configured secret my-very-own-value appears", "my-very-own-value"),
    ],
)
def test_secrets_and_key_shaped_strings_are_masked(text: str, hidden: str) -> None:
    masked = Masker(["my-very-own-value"]).scrub(text)
    assert hidden not in masked and "****" in masked


def test_ordinary_text_is_left_alone() -> None:
    text = "task-runner finished: 12 prompt_tokens, model gpt-4o, key_id key_0123abcd"
    assert Masker().scrub(text) == text


def test_json_lines_carry_fields_and_are_masked() -> None:
    stream = io.StringIO()
    handler = setup_logging("info", "json", Masker(["topsecretvalue"]), stream)
    try:
        logging.getLogger("llmmux.test").info(
            "upstream said %s", "topsecretvalue", extra={"fields": {"request_id": "r1"}}
        )
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()  # the line was written by the log thread: closing waits for it
    line = json.loads(stream.getvalue())
    assert line["msg"] == "upstream said top****" and line["request_id"] == "r1" and line["level"] == "info"
    assert isinstance(JSONFormatter(Masker()).format(logging.makeLogRecord({"msg": "x"})), str)


def _record(model: str, content: str) -> RequestRecord:
    request = ChatRequest(model=model, messages=[Message(role="user", content=content)])
    record = RequestRecord(
        CallContext(request_id="r1", client_api="openai", key_id="key_1", method="POST", path="/v1/chat/completions"),
        model,
        stream=True,
        provider="main",
        model="m1",
        usage=Usage(prompt_tokens=3, completion_tokens=2),
        request=request,
        latency_ms=12.5,
        upstream_ms=10.0,
        ttft_ms=4.0,
    )
    record.output = ["he", "llo"]
    return record


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_request_line_has_the_route_timings_and_no_body_by_default() -> None:
    stream = io.StringIO()
    log = RequestLog(LoggingConfig(bodies=["debug-*"]), Masker(), stream)
    log.log(_record("chat", "my prompt"))
    log.log(_record("debug-chat", "my key is sk-proj-abcdefghijklmnopqrstu"))
    plain, debug = _lines(stream)
    assert {
        k: plain[k]
        for k in (
            "logger",
            "level",
            "request_id",
            "key_id",
            "model",
            "provider",
            "upstream_model",
            "status",
            "attempts",
            "latency_ms",
            "ttft_ms",
            "prompt_tokens",
        )
    } == {
        "logger": "llmmux.requests",
        "level": "info",
        "request_id": "r1",
        "key_id": "key_1",
        "model": "chat",
        "provider": "main",
        "upstream_model": "m1",
        "status": 200,
        "attempts": 1,
        "latency_ms": 12.5,
        "ttft_ms": 4.0,
        "prompt_tokens": 3,
    }
    assert "request_messages" not in plain and "response" not in plain
    assert debug["request_messages"] == [{"role": "user", "content": "my key is sk-****"}]
    assert debug["response"] == ["hello"]


def test_a_client_chosen_model_name_is_masked_too() -> None:
    stream = io.StringIO()
    RequestLog(LoggingConfig(), Masker(), stream).log(_record("sk-live-0123456789abcdef", "x"))
    assert "0123456789abcdef" not in stream.getvalue()


def test_text_format_and_disabled_request_lines() -> None:
    stream = io.StringIO()
    RequestLog(LoggingConfig(format="text"), Masker(), stream).log(_record("chat", "x"))
    assert " INFO llmmux.requests: POST /v1/chat/completions chat 200 main {" in stream.getvalue()
    quiet = io.StringIO()
    RequestLog(LoggingConfig(requests=False), Masker(), quiet).log(_record("chat", "x"))
    assert quiet.getvalue() == ""


async def test_batched_lines_are_all_written_by_close() -> None:
    stream = io.StringIO()
    log = RequestLog(LoggingConfig(), Masker(), stream, interval_s=3600)
    await log.start()
    for _ in range(50):
        log.log(_record("chat", "x"))
    assert stream.getvalue() == ""  # nothing written on the request path
    await log.aclose()
    assert len(_lines(stream)) == 50


async def test_a_blocked_log_stream_drops_lines_instead_of_growing_memory() -> None:
    import threading

    from llmmux import log_queue
    from llmmux import logs as logs_module

    release = threading.Event()

    class Blocked(io.StringIO):
        def write(self, text: str) -> int:
            release.wait(5)
            return super().write(text)

    request_log = logs_module.RequestLog(LoggingConfig(), stream=Blocked(), interval_s=3600)
    await request_log.start()
    try:
        line = "x" * 1024
        for _ in range(log_queue.MAX_QUEUED_CHARS // 1024 + 50):
            request_log._pending.append(line)  # type: ignore[arg-type]
            request_log.text = True
            request_log._text_line = lambda text: text  # type: ignore[assignment,method-assign]
            request_log._write_pending()
        assert request_log.dropped_lines > 0
        assert request_log._lines is not None
        assert request_log._lines.queued_chars <= log_queue.MAX_QUEUED_CHARS + 1024
    finally:
        release.set()
        await request_log.aclose()


def test_logged_bodies_get_the_body_stores_redaction_rules_too() -> None:
    stream = io.StringIO()
    config = LoggingConfig(bodies=["*"], body_store=BodyStoreConfig(redact=[r"\b\d{3}-\d{2}-\d{4}\b"]))
    log = RequestLog(config, Masker(), stream)
    log.log(_record("chat", "my ssn is 123-45-6789, key sk-proj-abcdefghijklmnopqrstu"))
    (line,) = _lines(stream)
    assert line["request_messages"] == [{"role": "user", "content": "my ssn is [redacted], key sk-****"}]


def test_the_fast_masking_path_masks_exactly_what_the_patterns_do() -> None:
    """The masker looks for its patterns' leading words first; it must find all the plain scan does."""
    import random
    import string

    from llmmux.masking import _PATTERNS, _masked

    def plain(text: str) -> str:
        for pattern in _PATTERNS:
            text = pattern.sub(_masked, text)
        return text

    words = ["bearer ", "Bearer\t", "api_key", "X-API-KEY", "token", "sk-", "pk-", "rk-", "://", "password", "Secret"]
    alphabet = string.ascii_letters + string.digits + " :=-_\"'/@.,;İ"
    rnd = random.Random(16)
    masker = Masker()
    for _ in range(5000):
        text = "".join(
            rnd.choice(words) if rnd.random() < 0.15 else rnd.choice(alphabet) for _ in range(rnd.randint(0, 80))
        )
        assert masker.scrub(text) == plain(text), text
