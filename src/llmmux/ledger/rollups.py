"""Usage rollups: per-hour and per-day totals kept as request rows are written.

A report over a million requests must not read a million rows. Each batch written to
`requests` also adds, in the same transaction, its totals to `usage_rollup` and its
latency histogram to `usage_latency`, per hour and per day, for every (key, public model,
provider, upstream model). A histogram is one JSON object per rollup row
(`{"bucket": successes}`), merged by the database as batches arrive; a row per bucket
instead made the latency table longer than `requests` when each group sees a few dozen
requests a day, and reports 3 to 4 times slower. A report then reads:

    whole days   from the daily rows,
    whole hours  (at the two ends of the span) from the hourly rows,
    the rest     (less than an hour at each end) from `requests` itself,

so its cost follows the number of days and groups, not of requests, and its totals are
exactly what the raw rows sum to. Latency percentiles come from the histograms: buckets
grow by 4% (`GAMMA`), so a reported p50 or p95 is within 2% of the exact one (the
relative-error bound of a DDSketch with these buckets), interpolated between ranks as
PostgreSQL's percentile_cont does. Finer buckets cost size: 2%-wide ones (1% error) held
1.6 times as many (bench/README.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

HOUR = 3600
DAY = 86400
GRAINS = (HOUR, DAY)
GAMMA = 1.04
LN_GAMMA = math.log(GAMMA)
MIN_LATENCY_MS = 0.001  # latencies at or below this share the lowest bucket

SUM_COLUMNS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
    "estimated",
)
DIMENSIONS = ("key_id", "public_model", "provider", "model")
# What one request row contributes to each SUM_COLUMNS entry.
ROW_SUMS = (
    "1",
    "CASE WHEN status >= 400 THEN 1 ELSE 0 END",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_usd",
    "CASE WHEN estimated THEN 1 ELSE 0 END",
)
# A request row's dimensions as stored in the rollups: NOT NULL primary-key columns.
ROW_DIMENSIONS = ("COALESCE(key_id, '')", "public_model", "COALESCE(provider, '')", "COALESCE(model, '')")


def bucket_value(bucket: int) -> float:
    """The value that stands for a bucket: the point of least relative error in (γ^(b-1), γ^b]."""
    return 2 * GAMMA**bucket / (GAMMA + 1)


def percentile(histogram: dict[int, int], fraction: float) -> float | None:
    """Linear interpolation between the ranks around `fraction`, as percentile_cont, over bucket values."""
    total = sum(histogram.values())
    if not total:
        return None
    position = fraction * (total - 1)
    low, high = math.floor(position), math.ceil(position)
    low_value = high_value = None
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if low_value is None and seen > low:
            low_value = bucket_value(bucket)
        if seen > high:
            high_value = bucket_value(bucket)
            break
    assert low_value is not None and high_value is not None
    return low_value + (high_value - low_value) * (position - low)


@dataclass(frozen=True, slots=True)
class Span:
    """[start, end) in epoch seconds; `end` None: no end."""

    start: float
    end: float | None


@dataclass(slots=True)
class Plan:
    """Where each part of a report's time span is read from."""

    days: list[Span] = field(default_factory=list)
    hours: list[Span] = field(default_factory=list)
    raw: list[Span] = field(default_factory=list)


def plan(since: float, until: float | None, now: float) -> Plan:
    """Split [since, until) into whole days, whole hours and raw ends.

    Without `until`, the rollups are read up to the start of the current hour and the raw
    rows from there on, with no end (a clock running ahead still counts).
    """
    last = until if until is not None else now
    first_hour = math.ceil(since / HOUR) * HOUR
    last_hour = math.floor(last / HOUR) * HOUR
    result = Plan()
    if first_hour >= last_hour:
        result.raw.append(Span(since, until))
        return result
    first_day = math.ceil(first_hour / DAY) * DAY
    last_day = math.floor(last_hour / DAY) * DAY
    if first_day < last_day:
        result.days.append(Span(first_day, last_day))
        hours = [Span(first_hour, first_day), Span(last_day, last_hour)]
    else:
        hours = [Span(first_hour, last_hour)]
    result.hours = [h for h in hours if h.end is not None and h.start < h.end]
    if since < first_hour:
        result.raw.append(Span(since, first_hour))
    result.raw.append(Span(last_hour, until))
    return result


@dataclass(frozen=True, slots=True)
class Dialect:
    """The SQL the two engines write differently."""

    floor_time: str  # "{ts}" and "{grain}" placeholders: the start of ts's grain
    bucket: str  # "{ms}": the histogram bucket of a latency
    day: str  # "{ts}": the UTC date
    histogram_type: str
    histogram: str  # "{bucket}", "{count}": aggregate (bucket, count) rows into one JSON object
    merge: str  # the upsert's new histogram: usage_latency.histogram plus excluded.histogram


SQLITE = Dialect(
    floor_time="(CAST({ts} / {grain} AS INTEGER) * {grain})",
    bucket=f"CAST(ceil(ln(MAX({{ms}}, {MIN_LATENCY_MS})) / {LN_GAMMA!r}) AS INTEGER)",
    day="strftime('%Y-%m-%d', {ts}, 'unixepoch')",
    histogram_type="TEXT",
    histogram="json_group_object(CAST({bucket} AS TEXT), {count})",
    merge=(
        "(SELECT json_group_object(key, total) FROM (SELECT key, SUM(value) AS total FROM "
        "(SELECT key, value FROM json_each(usage_latency.histogram) "
        "UNION ALL SELECT key, value FROM json_each(excluded.histogram)) GROUP BY key))"
    ),
)
POSTGRES = Dialect(
    floor_time="(floor({ts} / {grain}) * {grain})",
    bucket=f"CAST(ceil(ln(GREATEST({{ms}}, {MIN_LATENCY_MS})) / {LN_GAMMA!r}) AS INTEGER)",
    day="to_char(to_timestamp({ts}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
    histogram_type="JSONB",
    histogram="jsonb_object_agg({bucket}, {count})",
    merge=(
        "(SELECT jsonb_object_agg(key, total) FROM (SELECT key, SUM(value::bigint) AS total FROM "
        "(SELECT key, value FROM jsonb_each_text(usage_latency.histogram) "
        "UNION ALL SELECT key, value FROM jsonb_each_text(excluded.histogram)) AS pairs GROUP BY key) AS merged)"
    ),
)


BATCH_COLUMNS = ("start", *DIMENSIONS, "bucket", *SUM_COLUMNS)
"""A batch aggregated once: per hour, key columns and latency bucket (NULL for failures), the sums."""


def batch_aggregate(dialect: Dialect, source: str, where: str) -> str:
    """One pass over the batch's rows (`source` filtered by `where`), grouped as BATCH_COLUMNS.

    Every rollup is then built from this handful of rows instead of reading the batch again
    for each grain and table (a third of the per-row cost of four passes).
    """
    start = dialect.floor_time.format(ts="ts", grain=HOUR)
    bucket = f"CASE WHEN status < 400 THEN {dialect.bucket.format(ms='latency_ms')} END"
    columns = [start, *ROW_DIMENSIONS, bucket]
    sums = ", ".join(f"SUM({s})" for s in ROW_SUMS)
    positions = ", ".join(str(i) for i in range(1, len(columns) + 1))
    return f"SELECT {', '.join(columns)}, {sums} FROM {source} WHERE {where} GROUP BY {positions}"


def rollup_statements(dialect: Dialect, batch: str, *, upsert: bool = True) -> tuple[str, ...]:
    """The statements that add an aggregated batch (`batch`, as BATCH_COLUMNS) to both rollups, per grain.

    Rows are upserted in key order, so concurrent writers (PostgreSQL with several
    instances) lock rollup rows in the same order and cannot deadlock. Without `upsert`,
    plain inserts: the backfill of new, empty tables.
    """
    statements: list[str] = []
    keys = ", ".join(DIMENSIONS)
    conflict = f"(grain, start, {keys})"
    positions = ", ".join(str(i) for i in range(1, 3 + len(DIMENSIONS)))
    for grain in GRAINS:
        start = dialect.floor_time.format(ts="start", grain=grain)
        sums = (
            f"INSERT INTO usage_rollup (grain, start, {keys}, {', '.join(SUM_COLUMNS)}) "
            f"SELECT {grain}, {start}, {keys}, {', '.join(f'SUM({c})' for c in SUM_COLUMNS)} FROM {batch} "
            f"WHERE 1 = 1 GROUP BY {positions} ORDER BY {positions}"
        )
        if upsert:
            sums += f" ON CONFLICT {conflict} DO UPDATE SET " + ", ".join(
                f"{c} = usage_rollup.{c} + excluded.{c}" for c in SUM_COLUMNS
            )
        per_bucket = (
            f"SELECT {grain} AS grain, {start} AS start, {keys}, bucket, SUM(requests) AS n FROM {batch} "
            f"WHERE bucket IS NOT NULL GROUP BY {positions}, bucket"
        )
        latency = (
            f"INSERT INTO usage_latency (grain, start, {keys}, histogram) "
            f"SELECT grain, start, {keys}, {dialect.histogram.format(bucket='bucket', count='n')} "
            f"FROM ({per_bucket}) AS per_bucket GROUP BY {positions} ORDER BY {positions}"
        )
        if upsert:
            latency += f" ON CONFLICT {conflict} DO UPDATE SET histogram = {dialect.merge}"
        statements += [sums, latency]
    return tuple(statements)


BATCH_TABLE = f"""CREATE TEMP TABLE IF NOT EXISTS usage_batch (
    start REAL, key_id TEXT, public_model TEXT, provider TEXT, model TEXT, bucket INTEGER,
    {", ".join(f"{c} {'REAL' if c == 'cost_usd' else 'INTEGER'}" for c in SUM_COLUMNS)}
)"""
"""SQLite: where a batch is aggregated once (a connection's own temporary table)."""


def backfill_statements(dialect: Dialect) -> tuple[str, ...]:
    """The rollups of every row already in `requests`: a ledger written before the rollups existed."""
    aggregate = batch_aggregate(dialect, "requests", "1 = 1")
    if dialect is SQLITE:
        fill = f"INSERT INTO usage_batch ({', '.join(BATCH_COLUMNS)}) {aggregate}"
        return (BATCH_TABLE, fill, *rollup_statements(dialect, "usage_batch", upsert=False))
    return (one_statement(aggregate, rollup_statements(dialect, "batch", upsert=False)),)


def one_statement(aggregate: str, statements: Sequence[str], prefix: str = "") -> str:
    """PostgreSQL: the aggregate as a CTE `batch` feeding every statement, in one statement (one snapshot)."""
    named = f"batch ({', '.join(BATCH_COLUMNS)}) AS ({aggregate})"
    ctes = [*([prefix] if prefix else []), named]
    ctes += [f"step{i} AS ({sql})" for i, sql in enumerate(statements[:-1])]
    return f"WITH {', '.join(ctes)} {statements[-1]}"


# -- reading --

_ROLLUP_GROUPS = {
    "model": "public_model",
    "provider": "provider",
    "key": "key_id",
    "upstream": "provider || '/' || model",
    "all": "'all'",
}
_RAW_GROUPS = {
    "model": "public_model",
    "provider": "COALESCE(provider, '')",
    "key": "COALESCE(key_id, '')",
    "upstream": "COALESCE(provider, '') || '/' || COALESCE(model, '')",
    "all": "'all'",
}


@dataclass(frozen=True, slots=True)
class Filters:
    key_id: str | None = None  # "" for requests made without a virtual key
    model: str | None = None  # a public model name
    tag: str | None = None  # only requests carrying it (read from the rows: the rollups hold no tags)


def _group(by: str, dialect: Dialect, raw: bool) -> str:
    if by == "day":
        return dialect.day.format(ts="ts" if raw else "start")
    groups = _RAW_GROUPS if raw else _ROLLUP_GROUPS
    if by not in groups:
        raise ValueError(f"cannot group by {by!r}")
    return groups[by]


def raw_group(by: str, dialect: Dialect) -> str:
    """The group expression over the `requests` rows themselves, for the groups the rollups also hold."""
    return _group(by, dialect, raw=True)


def raw_conditions(filters: Filters) -> tuple[list[str], list[object]]:
    """The key and model filters as conditions on the `requests` rows (the tag is the store's to add)."""
    return _conditions(filters, raw=True)


def _conditions(filters: Filters, raw: bool) -> tuple[list[str], list[object]]:
    clauses: list[str] = []
    args: list[object] = []
    if filters.key_id is not None:
        clauses.append("COALESCE(key_id, '') = ?" if raw else "key_id = ?")
        args.append(filters.key_id)
    if filters.model is not None:
        clauses.append("public_model = ?")
        args.append(filters.model)
    return clauses, args


def _spans(column: str, spans: Iterable[Span]) -> tuple[str, list[object]]:
    parts: list[str] = []
    args: list[object] = []
    for span in spans:
        if span.end is None:
            parts.append(f"{column} >= ?")
            args.append(float(span.start))
        else:
            parts.append(f"({column} >= ? AND {column} < ?)")
            args.extend((float(span.start), float(span.end)))
    return "(" + " OR ".join(parts) + ")", args


def _rollup_selects(
    the_plan: Plan, by: str, dialect: Dialect, filters: Filters, table: str, columns: str
) -> tuple[list[str], list[object]]:
    """A SELECT of `columns` per grain of rollup rows that the plan reads, each with its group."""
    selects: list[str] = []
    args: list[object] = []
    for grain, spans in ((DAY, the_plan.days), (HOUR, the_plan.hours)):
        if not spans:
            continue
        where, span_args = _spans("start", spans)
        clauses, filter_args = _conditions(filters, raw=False)
        selects.append(
            f"SELECT {_group(by, dialect, raw=False)} AS grp, {columns} FROM {table} "
            f"WHERE grain = {grain} AND {' AND '.join([where, *clauses])}"
        )
        args += [*span_args, *filter_args]
    return selects, args


def _raw_where(the_plan: Plan, filters: Filters, *extra: str) -> tuple[str, list[object]]:
    where, args = _spans("ts", the_plan.raw)
    clauses, filter_args = _conditions(filters, raw=True)
    return " AND ".join([where, *clauses, *extra]), [*args, *filter_args]


def sums_query(the_plan: Plan, by: str, dialect: Dialect, filters: Filters) -> tuple[str, list[object]]:
    """grp, then SUM_COLUMNS, per group: the rollup rows and the raw ends together."""
    selects, args = _rollup_selects(the_plan, by, dialect, filters, "usage_rollup", ", ".join(SUM_COLUMNS))
    raw_columns = ", ".join(f"{s} AS {c}" for s, c in zip(ROW_SUMS, SUM_COLUMNS, strict=True))
    where, raw_args = _raw_where(the_plan, filters)
    selects.append(f"SELECT {_group(by, dialect, raw=True)} AS grp, {raw_columns} FROM requests WHERE {where}")
    totals = ", ".join(f"SUM({c})" for c in SUM_COLUMNS)
    return f"SELECT grp, {totals} FROM ({' UNION ALL '.join(selects)}) AS pieces GROUP BY grp", [*args, *raw_args]


def cache_query(
    since: float, until: float | None, by: str, dialect: Dialect, filters: Filters
) -> tuple[str, list[object]]:
    """grp, hits, saved USD per group: the response cache's answers in the span. They are few
    next to the requests (a partial index holds only them), so they are read raw."""
    span = Span(since, until)
    where, args = _spans("ts", [span])
    clauses, filter_args = _conditions(filters, raw=True)
    condition = " AND ".join([where, "cache_source IS NOT NULL", *clauses])
    return (
        f"SELECT {_group(by, dialect, raw=True)} AS grp, COUNT(*), SUM(saved_usd) FROM requests "
        f"WHERE {condition} GROUP BY grp",
        [*args, *filter_args],
    )


def histogram_queries(
    the_plan: Plan, by: str, dialect: Dialect, filters: Filters
) -> tuple[tuple[str, list[object]] | None, tuple[str, list[object]]]:
    """(grp, JSON histogram) rows of the rollups (None when the span has none), and
    (grp, bucket, successes) of the raw ends."""
    selects, args = _rollup_selects(the_plan, by, dialect, filters, "usage_latency", "histogram")
    rollups = (" UNION ALL ".join(selects), args) if selects else None
    where, raw_args = _raw_where(the_plan, filters, "status < 400")
    bucket = dialect.bucket.format(ms="latency_ms")
    raw = (
        f"SELECT {_group(by, dialect, raw=True)} AS grp, {bucket} AS bucket, COUNT(*) FROM requests "
        f"WHERE {where} GROUP BY 1, 2"
    )
    return rollups, (raw, raw_args)


_HISTOGRAM = msgspec.json.Decoder(dict[int, int])


def histograms(
    rollup_rows: Sequence[tuple[Any, ...]], raw_rows: Sequence[tuple[Any, ...]]
) -> dict[str, dict[int, int]]:
    """{group: {bucket: successes}}, merged from both of histogram_queries' results."""
    found: dict[str, dict[int, int]] = {}
    for group, histogram in rollup_rows:
        into = found.setdefault(group, {})
        for bucket, count in _HISTOGRAM.decode(histogram).items():
            into[bucket] = into.get(bucket, 0) + count
    for group, bucket, count in raw_rows:
        into = found.setdefault(group, {})
        into[bucket] = into.get(bucket, 0) + int(count)
    return found
