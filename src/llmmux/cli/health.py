"""`llmmux health`: each provider's health, live from a running gateway or by probing now."""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from ..router import Router
from .common import config_option, config_or_exit

COLUMNS = ("PROVIDER", "STATE", "PROBE", "LATENCY", "TTFT", "ERRORS", "IN FLIGHT", "WHY")


@click.command()
@config_option
@click.option("--url", help="A running gateway (e.g. http://127.0.0.1:4000): show its live view.")
@click.option("--key", envvar="LLMMUX_API_KEY", help="The gateway's master key, if it has one ($LLMMUX_API_KEY).")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the gateway or the probes.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def health(config_path: Path | None, url: str | None, key: str | None, timeout: float, as_json: bool) -> None:
    """Each provider's state, last probe, latency, error rate and why; exits 1 if any is not routable."""
    report = _fetch(url, key, timeout) if url else _probe(config_path)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for line in table(report["providers"]):
            click.echo(line)
        for row in report.get("skipped", []):
            click.echo(f"(provider {row['name']} not routed: {row['reason']})")
    sys.exit(0 if all(row["routable"] for row in report["providers"]) else 1)


def _fetch(url: str, key: str | None, timeout: float) -> dict[str, Any]:
    root = url.rstrip("/").removesuffix("/v1")
    request = urllib.request.Request(root + "/health/providers")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        click.echo(
            f"llmmux health: {root} answered {exc.code}: {exc.read()[:300].decode('utf-8', 'replace')}", err=True
        )
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        click.echo(f"llmmux health: cannot reach {root}: {reason}", err=True)
    sys.exit(2)


def _probe(config_path: Path | None) -> dict[str, Any]:
    router = Router(config_or_exit(config_path))

    async def run() -> None:
        try:
            await router.check_health()
        finally:
            await router.aclose()

    asyncio.run(run())
    return {
        "providers": router.health_report(),
        "skipped": [{"name": n, "reason": r} for n, r in router.skipped.items()],
    }


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The report as aligned text columns."""
    cells = [COLUMNS] + [_cells(row) for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS) - 1)]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in cells]


def _cells(row: dict[str, Any]) -> tuple[str, ...]:
    probe = row.get("last_probe")
    if probe is None:
        probe_text = "-"
    elif probe["ok"]:
        probe_text = f"ok {probe['latency_ms']:.0f} ms"
    else:
        probe_text = f"FAIL {probe.get('status') or ''}".strip()
    state = row["state"] + ("" if row["routable"] or row.get("retry_in_s") is None else f" ({row['retry_in_s']:.0f}s)")
    errors = "-" if row.get("error_rate") is None else f"{row['error_rate']:.0%} of {row['requests']}"
    return (
        row["name"],
        state,
        probe_text,
        _ms(row.get("latency_ms")),
        _ms(row.get("ttft_ms")),
        errors,
        str(row.get("in_flight", 0)),
        row.get("reason") or "",
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"
