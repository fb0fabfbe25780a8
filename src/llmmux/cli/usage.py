"""`llmmux usage`: requests, tokens, cost, errors and latency from the ledger, as a table."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import click
import msgspec

from ..errors import InvalidRequest
from ..ledger import REPORT_GROUPS, Store
from ..ledger.reports import report_filters, usage_report
from ..periods import parse_moment
from ..tags import check as check_tag
from .common import config_option
from .ledger_common import db_option, run_with_store, store_for

CSV_COLUMNS = (
    "name",
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cached_tokens",
    "cost_usd",
    "p50_latency_ms",
    "p95_latency_ms",
)
COLUMNS = (
    ("requests", "REQUESTS"),
    ("errors", "ERRORS"),
    ("prompt_tokens", "PROMPT"),
    ("completion_tokens", "COMPLETION"),
    ("cost_usd", "COST $"),
    ("p50_latency_ms", "P50 ms"),
    ("p95_latency_ms", "P95 ms"),
)
CACHE_COLUMNS = (("cache_hits", "CACHE HITS"), ("saved_usd", "SAVED $"))


@click.command()
@config_option
@db_option
@click.option("--since", default="7d", show_default=True, help="A duration back from now (24h, 7d) or a date.")
@click.option("--until", default=None, help="A duration back from now or a date (default: now).")
@click.option("--by", type=click.Choice(REPORT_GROUPS), default="model", show_default=True)
@click.option(
    "--key", "key_id", default=None, help="Only this virtual key's requests (its id); 'none': those made without one."
)
@click.option("--model", default=None, help="Only requests for this public model name.")
@click.option("--tag", default=None, help="Only requests carrying this tag.")
@click.option("--json", "as_json", is_flag=True, help="Print the same JSON as GET /admin/usage.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the rows as CSV (one header line, no totals).")
def usage(
    config_path: Path | None,
    db: str | None,
    since: str,
    until: str | None,
    by: str,
    key_id: str | None,
    model: str | None,
    tag: str | None,
    as_json: bool,
    as_csv: bool,
) -> None:
    """What was asked, of whom (key, end user, tag), what it cost, and how fast it was."""
    now = time.time()
    try:
        start = parse_moment(since, now, future=False)
        end = parse_moment(until, now, future=False) if until else None
        if tag is not None:
            check_tag(tag, "--tag")
    except (ValueError, InvalidRequest) as exc:
        raise click.BadParameter(str(exc)) from None

    async def work(store: Store) -> dict[str, Any]:
        return await usage_report(store, start, end, by, report_filters(key_id, model, tag))

    report = run_with_store(store_for(config_path, db), work)
    if as_json:
        click.echo(msgspec.json.encode(report))
    elif as_csv:
        click.echo(render_csv(report), nl=False)
    else:
        click.echo(render_table(report))


def render_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    names = [name for name in CSV_COLUMNS if name != "name" or report["by"] in ("key", "team")]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([report["by"], *names])
    for row in report["rows"]:
        writer.writerow([row["group"], *(row.get(name) for name in names)])
    return out.getvalue()


def render_table(report: dict[str, Any]) -> str:
    by = report["by"]
    # The cache's columns appear once it has answered something, so a gateway without one reads as before.
    columns = (*COLUMNS, *CACHE_COLUMNS) if report["totals"].get("cache_hits") else COLUMNS
    rows = [[_label(row, by), *(_cell(key, row[key]) for key, _ in columns)] for row in report["rows"]]
    rows.append(["TOTAL", *(_cell(key, report["totals"][key]) for key, _ in columns)])
    header = [by.upper(), *(title for _, title in columns)]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [_line(header, widths)] + [_line(r, widths) for r in rows]
    estimated = report["totals"]["estimated"]
    note = f"\n{estimated} request(s) had no usage from the backend; their tokens are estimated." if estimated else ""
    return (
        "\n".join(lines)
        + f"\nsince {report['since']}"
        + (f" until {report['until']}" if report["until"] else "")
        + (f", tagged {report['tag']}" if report.get("tag") else "")
        + ("; a request with several tags counts under each" if by == "tag" else "")
        + note
    )


def _label(row: dict[str, Any], by: str) -> str:
    if by in ("key", "team"):
        return f"{row['group'] or '-'} ({row['name']})"
    return str(row["group"] or "-")


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key in ("cost_usd", "saved_usd"):
        return f"{value:.6f}"
    if key.endswith("_ms"):
        return f"{value:.0f}"
    return str(value)


def _line(cells: list[str], widths: list[int]) -> str:
    first = f"{cells[0]:<{widths[0]}}"
    return "  ".join([first, *(f"{c:>{w}}" for c, w in zip(cells[1:], widths[1:]))])
