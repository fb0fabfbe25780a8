"""Structured logs: JSON lines, secrets masked, one line per request written off the hot path.

Masking happens on the final text of every line, whatever logged it: the secrets llmmux
knows (master key, provider keys, database passwords) are replaced wherever they occur,
and so is anything shaped like a key (`sk-...`, `Bearer ...`, `api_key=...`). Request
lines never carry headers; prompt and reply bodies only for the public models listed in
`logging.bodies`.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, TextIO

import msgspec

from .config.model import LoggingConfig
from .events import CallContext, RequestRecord
from .ledger.rows import attempt_counts
from .log_queue import LineQueue, QueuedLogHandler
from .masking import Masker
from .tasks import cancel_and_wait

REQUEST_LOGGER = "llmmux.requests"
LOG_INTERVAL_S = 0.2
MAX_REMEMBERED_NAMES = 10_000

__all__ = ["JSONFormatter", "Masker", "MaskingFormatter", "RequestLog", "setup_logging"]


REDACTED = "[redacted]"


class Redactor:
    """For prompts and replies: the masker, then the `logging.body_store.redact` regexes."""

    def __init__(self, scrub: Callable[[str], str], patterns: Iterable[str] = ()) -> None:
        self._scrub = scrub
        self._patterns = [re.compile(p) for p in patterns]

    def __call__(self, text: str) -> str:
        text = self._scrub(text)
        for pattern in self._patterns:
            text = pattern.sub(REDACTED, text)
        return text


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the record's `fields`."""

    def __init__(self, masker: Masker) -> None:
        super().__init__()
        self.masker = masker

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return self.masker.scrub(msgspec.json.encode(line).decode())


class MaskingFormatter(logging.Formatter):
    """The plain text format, masked the same way."""

    def __init__(self, masker: Masker, fmt: str) -> None:
        super().__init__(fmt)
        self.masker = masker

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            text += " " + msgspec.json.encode(fields).decode()
        return self.masker.scrub(text)


def setup_logging(level: str, fmt: str, masker: Masker, stream: Any = None) -> QueuedLogHandler:
    """Send every log record (uvicorn's too) through one masked handler to stderr.

    The handler formats and masks on the caller's thread and queues the line; a writer
    thread does the write (`log_queue.py`), so a stderr nobody reads cannot stall the loop.
    """
    handler = QueuedLogHandler(LineQueue(stream))
    if fmt == "json":
        handler.setFormatter(JSONFormatter(masker))
    else:
        handler.setFormatter(MaskingFormatter(masker, "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler


def installed_lines() -> LineQueue | None:
    """The queue `setup_logging` put on the root logger, for other writers to share."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, QueuedLogHandler):
            return handler.lines
    return None


class RequestLog:
    """One JSON line per finished request, formatted in batches and written by the log thread.

    The hot path only appends a struct to a list. A task on the event loop turns the batch
    into text `interval_s` after its first line, and sleeps while there is none (one encode
    and one scrub per line, of the few fields that can hold outside text), and hands it to
    the same writer thread as every other log
    record (`log_queue.py`), which does nothing but the blocking write. CPU work in a
    background thread would hold the GIL against the event loop; a thread that only
    writes releases it at once.
    """

    def __init__(
        self,
        config: LoggingConfig,
        masker: Masker | None = None,
        stream: TextIO | None = None,
        interval_s: float = LOG_INTERVAL_S,
    ) -> None:
        self.masker = masker or Masker()
        self.interval_s = interval_s
        self._stream = stream
        self.configure(config)
        self._clean: dict[str, str] = {}
        self._logger = logging.getLogger(REQUEST_LOGGER)
        self._pending: list[RequestLine] = []
        self._work = asyncio.Event()  # set by the first line of a batch
        self._lines: LineQueue | None = None  # set by start; before it, lines are written at once
        self.dropped_lines = 0
        self._encoder = msgspec.json.Encoder()
        self._task: asyncio.Task[None] | None = None

    def configure(self, config: LoggingConfig) -> None:
        """Take `config`'s settings (at start, and on every config reload)."""
        self.enabled = config.requests
        self.text = config.format == "text"
        self._bodies = list(config.bodies)
        self._redact = Redactor(self.masker.scrub, config.body_store.redact)
        self._body_models: dict[str, bool] = {}

    @property
    def logs_bodies(self) -> bool:
        return bool(self._bodies)

    def wants_body(self, model: str) -> bool:
        found = self._body_models.get(model)
        if found is None:
            found = self._body_models[model] = any(fnmatch.fnmatchcase(model, p) for p in self._bodies)
        return found

    def log(self, record: RequestRecord, counts: tuple[int, int, int] | None = None) -> None:
        if not self.enabled or not self._logger.isEnabledFor(logging.INFO):
            return
        line = request_line(record, self._scrub_name, counts)
        if line.failed_attempts:
            for attempt in line.failed_attempts:
                attempt["message"] = self.masker.scrub(attempt["message"])
        if self.wants_body(record.public_model):
            add_bodies(line, record, self._redact)
        self._pending.append(line)
        if self._task is None:
            self._write_pending()
        elif len(self._pending) == 1:
            self._work.set()

    def _scrub_name(self, name: str | None) -> str | None:
        """Model names come from clients: scrubbed once each, then remembered."""
        if name is None:
            return None
        clean = self._clean.get(name)
        if clean is None:
            if len(self._clean) > MAX_REMEMBERED_NAMES:
                self._clean.clear()
            clean = self._clean[name] = self.masker.scrub(name)
        return clean

    def _write_pending(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        if self.text:
            text = "".join(self._text_line(line) for line in batch)
        else:
            text = b"\n".join(self._encoder.encode(line) for line in batch).decode() + "\n"
        if self._lines is None:
            self._write(text)
        elif not self._lines.put(text):
            self.dropped_lines += len(batch)

    def _text_line(self, line: RequestLine) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(line.started))
        fields = msgspec.structs.asdict(line)
        for name in ("ts", "level", "logger", "msg"):
            del fields[name]
        return f"{when} {line.level.upper()} {line.logger}: {line.msg} {self._encoder.encode(fields).decode()}\n"

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stderr must not take requests down with it

    async def start(self) -> None:
        if not self.enabled or self._task is not None:
            return
        shared = installed_lines() if self._stream is None else None
        self._lines = shared or LineQueue(self._stream)
        self._work = asyncio.Event()  # this loop's
        self._task = asyncio.create_task(self._batches(), name="llmmux-request-log")

    async def _batches(self) -> None:
        while True:
            await self._work.wait()  # idle, nothing to write: sleep until a line comes
            await asyncio.sleep(self.interval_s)
            self._work.clear()
            self._write_pending()

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self._write_pending()
        if self._lines is not None:
            # Written before the process goes; a later line starts the writer thread again.
            await asyncio.get_running_loop().run_in_executor(None, self._lines.close)
            self._lines = None


class RequestLine(msgspec.Struct, omit_defaults=True):
    """One request's log line, as written (a struct: cheaper to build and encode than a dict)."""

    ts: float
    level: str
    logger: str
    msg: str
    request_id: str
    client_api: str
    key_id: str | None
    model: str | None
    provider: str | None
    upstream_model: str | None
    stream: bool
    status: int
    error: str | None
    attempts: int
    fallbacks: int
    retries: int
    latency_ms: float
    upstream_ms: float
    ttft_ms: float | None
    cost_usd: float
    started: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_estimated: bool = False
    failed_attempts: list[dict[str, Any]] | None = None
    cache: str | None = None  # the response cache's verdict, on a route that caches
    saved_usd: float | None = None  # a cache hit: what the answer cost when it was made
    request_messages: list[dict[str, Any]] | None = None
    response: list[str] | None = None
    parent_id: str | None = None
    method: str | None = None
    path: str | None = None


def request_line(
    record: RequestRecord,
    clean: Callable[[str | None], str | None] = lambda n: n,
    counts: tuple[int, int, int] | None = None,
) -> RequestLine:
    context = record.context
    attempts, fallbacks, retries = counts or attempt_counts(record)
    model, status = clean(record.public_model), record.status
    path = clean(context.path)  # a path may carry a client-chosen name (Azure's deployments)
    usage = record.usage
    return RequestLine(
        ts=context.started + record.latency_ms / 1000,
        level="info" if status < 500 else "warning",
        logger=REQUEST_LOGGER,
        msg=f"{_call(context, path)}{model or '-'} {status} {record.provider or '-'}",
        request_id=context.request_id,
        client_api=context.client_api,
        key_id=context.key_id,
        model=model,
        provider=record.provider,
        upstream_model=clean(record.model),
        stream=record.stream,
        status=status,
        error=record.error_kind,
        attempts=attempts,
        fallbacks=fallbacks,
        retries=retries,
        latency_ms=round(record.latency_ms, 2),
        upstream_ms=round(record.upstream_ms, 2),
        ttft_ms=None if record.ttft_ms is None else round(record.ttft_ms, 2),
        cost_usd=record.cost_usd,
        started=context.started,
        prompt_tokens=usage.prompt_tokens if usage is not None else None,
        completion_tokens=usage.completion_tokens if usage is not None else None,
        tokens_estimated=usage is not None and usage.estimated,
        failed_attempts=[a.describe() for a in record.attempts] if record.attempts else None,
        parent_id=context.parent_id,
        method=context.method,
        path=path,
        cache=record.cache,
        saved_usd=record.saved_usd or None,
    )


def _call(context: CallContext, path: str | None) -> str:
    return f"{context.method} {path} " if context.method else ""


def add_bodies(line: RequestLine, record: RequestRecord, scrub: Callable[[str], str]) -> None:
    if record.request is not None:
        line.request_messages = [{"role": m.role, "content": scrub(m.text())} for m in record.request.messages]
    if record.response is not None:
        line.response = [scrub(c.message.text()) for c in record.response.choices]
    elif record.output is not None:
        line.response = [scrub("".join(record.output))]
