"""`GET /health/providers`: each provider's state, last probe, latency, error rate and why."""

from __future__ import annotations

import msgspec

from ..router import Router
from .http import JSON_HEADERS, Request, Send, send_bytes


def overall(report: list[dict[str, object]]) -> str:
    """ok: every provider routable; degraded: some are not, or some are slow; down: none is."""
    routable = [row for row in report if row["routable"]]
    if not report or not routable:
        return "down"
    if len(routable) < len(report) or any(row["state"] != "active" for row in report):
        return "degraded"
    return "ok"


async def providers(router: Router, request: Request, send: Send) -> None:
    report = router.health_report()
    body = msgspec.json.encode(
        {
            "status": overall(report),
            "providers": report,
            "skipped": [{"name": name, "reason": reason} for name, reason in router.skipped.items()],
        }
    )
    await send_bytes(send, 200, body, JSON_HEADERS)
