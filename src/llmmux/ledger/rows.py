"""A finished request as a ledger row: a plain tuple in `schema.REQUEST_COLUMNS` order."""

from __future__ import annotations

from itertools import pairwise

import msgspec

from ..events import RequestRecord
from ..tags import to_column
from ..types import Usage
from .store import Row

_NO_USAGE = Usage()


def attempt_counts(record: RequestRecord) -> tuple[int, int, int]:
    """(attempts, fallbacks, retries): every try, moves to another candidate, repeats of the same one."""
    if not record.attempts:
        answered = record.provider is not None and record.cache_source is None  # a cache hit calls no upstream
        return (1, 0, 0) if answered else (0, 0, 0)
    tried = [(a.provider, a.model) for a in record.attempts]
    if record.provider is not None and record.model is not None:
        tried.append((record.provider, record.model))
    fallbacks = retries = 0
    for previous, current in pairwise(tried):
        if previous == current:
            retries += 1
        else:
            fallbacks += 1
    return len(tried), fallbacks, retries


def to_row(record: RequestRecord, counts: tuple[int, int, int] | None = None) -> Row:
    usage = record.usage or _NO_USAGE
    context = record.context
    attempts, fallbacks, retries = counts or attempt_counts(record)
    failed = msgspec.json.encode([a.describe() for a in record.attempts]).decode() if record.attempts else None
    return (
        context.request_id,
        context.started,
        context.key_id,
        context.client_api,
        record.public_model,
        record.provider,
        record.model,
        record.stream,
        attempts,
        fallbacks,
        retries,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
        usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
        usage.estimated,
        record.cost_usd,
        round(record.latency_ms, 3),
        None if record.ttft_ms is None else round(record.ttft_ms, 3),
        round(record.upstream_ms, 3),
        record.status,
        record.error_kind,
        record.cache,
        record.saved_usd,
        record.cache_source,
        failed,
        context.parent_id,
        to_column(context.tags),
        context.end_user,
        context.team_id,
    )
