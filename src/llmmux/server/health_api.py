"""`GET /health/providers`: each provider's state, last probe, latency, error rate and why.

The details (errors, reasons, limits, skipped providers) are for the admin: the master key,
an admin-scoped key, or anyone on a gateway without a master key. A virtual key sees only
the state of the providers that serve a model it may use.
"""

from __future__ import annotations

import msgspec

from ..router import Router
from . import access
from .http import JSON_HEADERS, Request, Send, send_bytes


def overall(report: list[dict[str, object]]) -> str:
    """ok: every provider routable; degraded: some are not, or some are slow; down: none is."""
    routable = [row for row in report if row["routable"]]
    if not report or not routable:
        return "down"
    if len(routable) < len(report) or any(row["state"] != "active" for row in report):
        return "degraded"
    return "ok"


PUBLIC_FIELDS = ("name", "state", "routable")


async def providers(router: Router, request: Request, send: Send) -> None:
    report = router.health_report()
    if request.admin or request.key is None:
        body: dict[str, object] = {
            "status": overall(report),
            "providers": report,
            "skipped": [{"name": name, "reason": reason} for name, reason in router.skipped.items()],
        }
    else:
        serving = _providers_for(router, request)
        mine = [{f: row[f] for f in PUBLIC_FIELDS} for row in report if row["name"] in serving]
        body = {"status": overall(mine), "providers": mine}
    await send_bytes(send, 200, request.masker.scrub_bytes(msgspec.json.encode(body)), JSON_HEADERS)


def _providers_for(router: Router, request: Request) -> set[str]:
    """The providers serving at least one candidate the caller's key may use."""
    routes = router.table.routes()
    return {c.provider.name for route in routes.values() for c in access.usable(router, request, route)}
