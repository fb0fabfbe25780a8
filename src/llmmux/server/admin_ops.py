"""The operator's admin endpoints: providers, routes, a test prompt, the config and live numbers.

GET  /admin/providers                  health, timers, in flight, last error (masked), config summary
POST /admin/providers/{name}/probe     run its health check now
POST /admin/providers/{name}/drain     take it out of rotation (no request goes to it)
POST /admin/providers/{name}/restore   put it back
GET  /admin/routes                     every public name: candidates and the routing explanation
POST /admin/try                        {"model": "...", "prompt": "...", "max_tokens": 64}: send one
                                       prompt through the router; the reply, who answered, attempts, cost
GET  /admin/config                     the effective config, secrets masked
GET  /admin/config/validate            what a reload would say about the files on disk now
POST /admin/config/reload              reload them (a bad config is refused, the old one kept)
GET  /admin/stats?window=1h&points=60  time series from the ledger for the overview charts

Each reads what the router already holds, or the ledger's reader connection: none waits on
request handling, and request handling waits on none of them.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import msgspec

from ..config.model import Config, Secret, mask
from ..errors import InvalidRequest, LLMMuxError, NoSuchProvider
from ..events import CallContext, ClientApi, RequestRecord
from ..health.probes import Prober
from ..ledger import Store
from ..router import Router
from ..types import ChatRequest, Message
from .health_api import overall

MAX_TRY_TOKENS = 4096
MAX_POINTS = 500
WINDOWS = {"15m": 900.0, "1h": 3600.0, "6h": 6 * 3600.0, "24h": 86400.0, "7d": 7 * 86400.0}
SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "cookie")


def providers(router: Router, scrub: Any) -> dict[str, Any]:
    report = router.health_report()
    for row in report:
        config = router.config.providers.get(row["name"])
        if row.get("last_error"):
            row["last_error"] = scrub(row["last_error"])
        row["reason"] = scrub(row.get("reason") or "")
        if config is not None:
            row["type"] = config.type
            row["base_url"] = scrub(config.base_url)
            row["models"] = config.model_names()
    return {
        "status": overall(report),
        "providers": report,
        "skipped": [{"name": name, "reason": scrub(reason)} for name, reason in router.skipped.items()],
    }


async def provider_action(router: Router, name: str, action: str, scrub: Any) -> dict[str, Any]:
    provider = router.providers.get(name)
    if provider is None:
        raise NoSuchProvider(f"No provider named {name!r}.", param="name")
    if action == "probe":
        await Prober(router.health, {name: provider}).check_all()
    elif action == "drain":
        router.health.take_out(name)
    elif action == "restore":
        router.health.put_back(name)
    else:
        raise InvalidRequest(f"Unknown provider action {action!r}: probe, drain or restore.")
    return next(row for row in providers(router, scrub)["providers"] if row["name"] == name)


def routes(router: Router) -> dict[str, Any]:
    data = []
    for name in router.models():
        route = router.route(name)
        explanation = router.explain(model=name, messages=[{"role": "user", "content": "hi"}]).to_dict()
        data.append(
            {
                "model": name,
                "source": route.source,
                "candidates": [
                    {"candidate": str(c), "provider": c.provider.name, "tier": c.tier} for c in route.candidates
                ],
                "retry_attempts": route.retry_attempts,
                "explanation": explanation,
            }
        )
    return {"data": data}


async def try_prompt(router: Router, body: Any) -> dict[str, Any]:
    """One prompt through the router as any client's would go: health, limits and the ledger apply."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not isinstance(body.get("prompt"), str):
        raise InvalidRequest('Expected {"model": "<public name>", "prompt": "<text>"}.')
    max_tokens = body.get("max_tokens", 256)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or not 1 <= max_tokens <= MAX_TRY_TOKENS:
        raise InvalidRequest(f"'max_tokens' must be an integer from 1 to {MAX_TRY_TOKENS}.", param="max_tokens")
    request = ChatRequest(
        model=body["model"], messages=[Message(role="user", content=body["prompt"])], max_tokens=max_tokens
    )
    context = CallContext(client_api=ClientApi.CONSOLE)
    finished: list[RequestRecord] = []
    remove = router.events.subscribe(lambda r: finished.append(r) if r.context is context else None)
    try:
        done = await router.chat(request, context=context)
        error: dict[str, Any] | None = None
        reply = done.response.choices[0].message.text() if done.response.choices else ""
    except LLMMuxError as exc:
        reply, error = "", {"status": exc.status, "code": exc.code or exc.type, "message": exc.message}
    finally:
        remove()
    record = finished[0] if finished else None
    return {"request_id": context.request_id, "reply": reply, "error": error, **_record_summary(record)}


def _record_summary(record: RequestRecord | None) -> dict[str, Any]:
    if record is None:
        return {}
    usage = record.usage
    return {
        "provider": record.provider,
        "upstream_model": record.model,
        "status": record.status,
        "latency_ms": round(record.latency_ms, 1),
        "upstream_ms": round(record.upstream_ms, 1),
        "ttft_ms": None if record.ttft_ms is None else round(record.ttft_ms, 1),
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "cost_usd": record.cost_usd,
        "failed_attempts": [a.describe() for a in record.attempts],
    }


def effective_config(config: Config, scrub: Any) -> dict[str, Any]:
    """The config as llmmux understood it; secrets masked by type, by header name, then by pattern."""
    data = _masked(dataclasses.asdict(config))
    return msgspec.json.decode(scrub(msgspec.json.encode(data).decode()))  # type: ignore[no-any-return]


def _masked(value: Any, name: str = "") -> Any:
    if isinstance(value, Secret):
        return mask(value)
    if isinstance(value, dict):
        secret_names = name == "headers"
        return {
            k: (
                mask(str(v))
                if secret_names and any(w in str(k).lower() for w in SECRET_HEADER_WORDS)
                else _masked(v, k)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_masked(v, name) for v in value]
    return value


def validation(router: Router) -> dict[str, Any]:
    if router.config.source == "<dict>":
        return {"source": None, "ok": True, "problems": [], "note": "this config was given as a dict: no files"}
    _, problems = router.check_source()
    return {
        "source": router.config.source,
        "ok": not problems.errors,
        "problems": [{"level": p.severity, "file": p.file, "path": p.path, "message": p.message} for p in problems],
    }


async def reload(router: Router) -> dict[str, Any]:
    result = validation(router)
    if result["source"] is None:
        raise InvalidRequest("This config was given as a dict: there are no files to reload.")
    result["reloaded"] = await router.reload_from_source()
    return result


async def stats(store: Store, query: dict[str, str]) -> dict[str, Any]:
    """Buckets over the window: requests, errors, latency p50/p95, TTFT p50, llmmux's overhead, tokens, cost."""
    window = query.get("window", "1h")
    if window not in WINDOWS:
        raise InvalidRequest(f"'window' must be one of {', '.join(WINDOWS)}.", param="window")
    points = query.get("points", "60")
    if not points.isdigit() or not 1 <= int(points) <= MAX_POINTS:
        raise InvalidRequest(f"'points' must be from 1 to {MAX_POINTS}.", param="points")
    span, count = WINDOWS[window], int(points)
    step = span / count
    now = time.time()
    start = now - span
    ok = "CASE WHEN status < 400 THEN {} END"
    sql = (
        f"SELECT {_bucket(store)} AS bucket, COUNT(*), "
        "SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), "
        f"{store.percentile(ok.format('latency_ms'), 0.5)}, {store.percentile(ok.format('latency_ms'), 0.95)}, "
        f"{store.percentile('ttft_ms', 0.5)}, AVG({ok.format('latency_ms - upstream_ms')}), "
        "SUM(total_tokens), SUM(cost_usd) FROM requests WHERE ts >= ? GROUP BY 1 ORDER BY 1"
    )
    rows = {int(r[0]): r for r in await store.fetch(sql, (start, step, start))}
    series = [_point(start + i * step, step, rows.get(i)) for i in range(count)]
    today = await store.fetch(
        "SELECT COUNT(*), SUM(total_tokens), SUM(cost_usd) FROM requests WHERE ts >= ?", (now - now % 86400,)
    )
    return {
        "window": window,
        "step_s": step,
        "series": series,
        "today": {
            "requests": int(today[0][0] or 0),
            "tokens": int(today[0][1] or 0),
            "cost_usd": float(today[0][2] or 0),
        },
    }


def _bucket(store: Store) -> str:
    # Buckets count from the window's start, rounded down (PostgreSQL's cast rounds to nearest).
    return "CAST((ts - ?) / ? AS INTEGER)" if store.dialect == "sqlite" else "CAST(FLOOR((ts - ?) / ?) AS INTEGER)"


def _point(at: float, step: float, row: Any) -> dict[str, Any]:
    if row is None:
        return {"t": round(at, 3), "rps": 0.0, "requests": 0, "errors": 0, "error_rate": 0.0, "p50_ms": None,
                "p95_ms": None, "ttft_p50_ms": None, "overhead_ms": None, "tokens": 0, "cost_usd": 0.0}  # fmt: skip
    _, requests, errors, p50, p95, ttft, overhead, tokens, cost = row
    return {
        "t": round(at, 3),
        "rps": round(requests / step, 3),
        "requests": int(requests),
        "errors": int(errors or 0),
        "error_rate": round((errors or 0) / requests, 4) if requests else 0.0,
        "p50_ms": _ms(p50),
        "p95_ms": _ms(p95),
        "ttft_p50_ms": _ms(ttft),
        "overhead_ms": None if overhead is None else round(float(overhead), 3),
        "tokens": int(tokens or 0),
        "cost_usd": float(cost or 0.0),
    }


def _ms(value: Any) -> float | None:
    return None if value is None else round(float(value), 1)
