"""The admin API, for the master key or a key with the `admin` scope: keys, usage reports, recent requests.

POST   /admin/keys            {"name": "ci", "budget": 25, "budget_period": "monthly", "rpm": 60,
                               "tpm": 100000, "models": ["gpt-4o", "llama*"], "expires": "30d",
                               "scopes": ["metrics"]}
                              -> 201 with "key": the secret, shown this once
GET    /admin/keys            every key, never a secret
GET    /admin/keys/{id}       one key, with its spend this period
PATCH  /admin/keys/{id}       change any field above (null clears a limit)
DELETE /admin/keys/{id}       revoke (the key and its records stay)
GET    /admin/usage?since=7d&until=1d&by=model|provider|key|day|upstream|tag|user|team&key=<id>|none&model=<name>&tag=<tag>[&format=csv]
GET    /admin/requests?limit=50&before=<id>&key=<id>&model=<name>&errors=true   (more: admin_requests)
GET    /admin/requests/{request_id}
GET    /admin/requests/stream                                                  (server-sent events)

The operator's endpoints (providers, routes, try, config, stats) are listed in admin_ops.
A console session (cookie plus CSRF header on changes) counts as the master key here.
GET    /admin/cache           the response cache: store, entries, bytes, hits, misses
DELETE /admin/cache?model=<name>&key=<id or name>   remove cached answers -> {"removed": n}
GET    /admin/audit?limit=50&before=<id>&action=key|key.update&actor=<who>&target=<id>&since=7d
                              who changed what and when, newest first (never a secret)
/admin/teams                  teams: see admin_teams.py
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from .. import audit
from ..accounting import Accounting
from ..console import Console
from ..errors import InvalidRequest, NoCache, NoLedger, NoSuchKey, NoSuchRequest, PermissionDenied
from ..ledger import REPORT_GROUPS, Store, keyops, teamops
from ..ledger.keyops import AmbiguousKey, KeyNotFound
from ..ledger.reports import report_filters, usage_report
from ..ledger.store import RequestFilters
from ..periods import parse_moment
from ..router import Router
from ..shared.instances import describe, with_drift
from ..tags import check as check_tag
from . import admin_local, admin_ops
from .admin_bodies import decode_key_body
from .admin_requests import RequestTail, filters, usage_csv
from .admin_teams import TeamsAdmin
from .http import JSON_HEADERS, Request, Send, send_bytes

PREFIX = "/admin/"
RELOAD_CHANNEL = "reload"  # every instance re-reads its config (`llmmux reload --all`)
DEFAULT_SINCE = "7d"
CSV_HEADERS = [
    (b"content-type", b"text/csv; charset=utf-8"),
    (b"content-disposition", b'attachment; filename="usage.csv"'),
]
PROVIDER_ACTIONS = ("probe", "drain", "restore")


MAX_PAGE = 1000
FIELD_NAMES = {"budget": "budget_usd", "expires": "expires_at"}  # the API's names -> the key's


class AdminAPI:
    """Serves `/admin/...` for an App; every call needs the master key or an admin-scoped key."""

    def __init__(self, accounting: Accounting) -> None:
        self.accounting = accounting
        self.tail = RequestTail(accounting.router.events, accounting.router.shared)
        self.teams = TeamsAdmin(accounting)
        self.console: Console | None = None

    async def handle(self, router: Router, request: Request, send: Send) -> None:
        if not request.admin:
            raise PermissionDenied(
                "The admin API needs the master key (server.master_key) or a key with the 'admin' scope."
                if router.config.server.master_key
                else "The admin API is off: set server.master_key to use it."
            )
        path = request.path.removeprefix(PREFIX).strip("/")
        if path == "requests/stream" and request.method == "GET":
            await self.tail.serve(request, send, request.masker.scrub)
            return
        if path == "usage" and request.query().get("format") == "csv":
            await send_bytes(send, 200, usage_csv(await self.usage(request.query())), CSV_HEADERS)
            return
        status, body = await self._route(request, path.split("/"), router)
        data = msgspec.json.encode(body)
        if status != 201:  # a new key's reply carries its secret on purpose, shown this once
            data = request.masker.scrub_bytes(data)
        await send_bytes(send, status, data, JSON_HEADERS)

    async def _route(self, request: Request, parts: list[str], router: Router) -> tuple[int, Any]:
        method = request.method
        found = await self._operations(request, parts, router)
        if found is not None:
            return found
        if parts == ["usage"] and method == "GET":
            return 200, await self.usage(request.query())
        if parts == ["requests"] and method == "GET":
            return 200, await self.requests(request.query())
        if len(parts) == 2 and parts[0] == "requests" and method == "GET":
            return 200, await self.one_request(parts[1])
        if parts == ["reload"] and method == "POST":
            raw = await request.body()
            was = audit.config_summary(router.config)
            result = await self.reload(msgspec.json.decode(raw) if raw.strip() else {})
            now = {**audit.config_summary(router.config), **result}
            await self._audit(request, "config.reload", router.config.source, was, now)
            return 200, result
        if parts == ["instances"] and method == "GET":
            return 200, await self.instances()
        if parts == ["cache"] and method in ("GET", "DELETE"):
            result = await self.cache(method, request.query())
            if method == "DELETE":
                query = request.query()
                target = query.get("model") or query.get("key") or "all"
                done = {"model": query.get("model"), "key": query.get("key"), **result}
                await self._audit(request, "cache.clear", target, None, done)
            return 200, result
        if parts == ["keys"] and method == "GET":
            return 200, {"data": [self._public(k) for k in await self._store().list_keys()]}
        if parts == ["keys"] and method == "POST":
            return 201, await self.create(await request.json(), await _actor(request, self.accounting, self.console))
        if len(parts) == 2 and parts[0] == "keys" and method in ("GET", "PATCH", "DELETE"):
            return 200, await self.one_key(method, parts[1], request)
        if parts[0] == "teams" and len(parts) <= 2:
            body = await request.json() if method in ("POST", "PATCH") else None
            return await self.teams.route(
                self._store(), method, parts, body, await _actor(request, self.accounting, self.console)
            )
        if parts == ["audit"] and method == "GET":
            query = request.query()
            before = _int(query["before"], "before") if "before" in query else None
            since = _moment(query["since"], "since") if query.get("since") else None
            filters = {name: _text(query, name) for name in ("action", "actor", "target")}
            rows = await audit.page(
                self._store(), _int(query.get("limit", "50"), "limit"), before, since=since, **filters
            )
            return 200, {"data": rows, "next_before": rows[-1]["id"] if rows else None}
        raise InvalidRequest(f"No admin endpoint {method} /admin/{'/'.join(parts)}.")

    async def _operations(self, request: Request, parts: list[str], router: Router) -> tuple[int, Any] | None:
        """The operator's endpoints (admin_ops); None when `parts` is none of them."""
        method, scrub = request.method, self.accounting.masker.scrub
        if parts == ["providers"] and method == "GET":
            return 200, admin_ops.providers(router, scrub)
        if len(parts) == 3 and parts[0] == "providers" and parts[2] in PROVIDER_ACTIONS and method == "POST":
            before = _rotation(router.health_report(), parts[1])
            row = await admin_ops.provider_action(router, parts[1], parts[2], scrub)
            await self._audit(request, f"provider.{parts[2]}", parts[1], before, _rotation([row], parts[1]))
            return 200, row
        if parts == ["routes"] and method == "GET":
            return 200, admin_ops.routes(router)
        if parts == ["try"] and method == "POST":
            return 200, await admin_ops.try_prompt(router, await request.json())
        if parts == ["config"] and method == "GET":
            return 200, admin_ops.effective_config(router.config, scrub)
        if parts == ["config", "validate"] and method == "GET":
            return 200, admin_ops.validation(router)
        if parts == ["config", "reload"] and method == "POST":
            before = audit.config_summary(router.config)
            result = await admin_ops.reload(router)
            after = {**audit.config_summary(router.config), "reloaded": result["reloaded"]}
            await self._audit(request, "config.reload", router.config.source, before, after)
            return 200, result
        if parts == ["stats"] and method == "GET":
            bodies = self.accounting.bodies
            stats = await admin_ops.stats(self._store(), request.query())
            return 200, {**stats, "body_log": bodies.state() if bodies is not None else None}
        return None

    async def one_request(self, request_id: str) -> dict[str, Any]:
        rows = await self._store().page_requests(1, filters=RequestFilters(request_id=request_id))
        if not rows:
            raise NoSuchRequest(f"No request with id {request_id!r} in the ledger (yet).", param="id")
        row = rows[0]
        bodies = self.accounting.bodies
        row["bodies"] = await bodies.get(request_id) if bodies is not None else None
        row["body_logging"] = bodies is not None
        return row

    async def model_action(self, router: Router, request: Request, send: Send) -> None:
        """POST /admin/models/{name}/load or /unload (admin_local), audited."""
        result = await admin_local.run_model_action(router, request)
        action = "model.load" if result.get("loaded") else "model.unload"
        state = {"state": (result.get("status") or {}).get("state")}
        await self._audit(request, action, f"{result['provider']}/{result['model']}", None, {**state, **result})
        await send_bytes(send, 200, msgspec.json.encode(result), JSON_HEADERS)

    async def _audit(
        self,
        request: Request,
        action: str,
        target: str | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        """One audit row for an operator's action (none without a ledger: there is nowhere to keep it)."""
        store = self.accounting.store
        if store is not None:
            if after is not None:  # a model's whole status row is not a change
                after = {k: v for k, v in after.items() if k != "status"}
            await audit.record(
                store, await _actor(request, self.accounting, self.console), action, target, before, after
            )

    def _store(self) -> Store:
        if self.accounting.store is None:
            raise NoLedger("The ledger is disabled, so there are no keys or records: set ledger.path or database_url.")
        return self.accounting.store

    def _public(self, key: Any) -> dict[str, Any]:
        spend = self.accounting.keys.spend(key.id) if key.budget_usd is not None else None
        return key.public(time.time(), spend)  # type: ignore[no-any-return]

    async def create(self, body: Any, actor: str) -> dict[str, Any]:
        store = self._store()
        fields = await _with_team(store, _key_fields(body, creating=True), creating=True)
        try:
            key, secret = await self.accounting.create_key(fields.pop("name"), **fields)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        await audit.record(store, actor, "key.create", key.id, None, key.public(time.time()))
        return {"key": secret, **self._public(key)}

    async def one_key(self, method: str, key_id: str, request: Request) -> dict[str, Any]:
        store = self._store()
        try:
            if method == "GET":
                found = await store.get_key(key_id)
                if found is None:
                    raise KeyNotFound(key_id)
                return self._public(found)
            before = (await keyops.find_key(store, key_id)).public(time.time())
            if method == "DELETE":
                changed = await self.accounting.revoke_key(key_id)
            else:
                changes = await _with_team(store, _key_fields(await request.json(), creating=False))
                changed = await self.accounting.update_key(key_id, changes)
            action = "key.revoke" if method == "DELETE" else "key.update"
            await audit.record(
                store,
                await _actor(request, self.accounting, self.console),
                action,
                changed.id,
                before,
                changed.public(time.time()),
            )
            return self._public(changed)
        except (KeyNotFound, AmbiguousKey):
            raise NoSuchKey(f"No key with id {key_id!r}.", param="id") from None
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

    async def reload(self, body: Any) -> dict[str, Any]:
        """Re-read the config here; with `{"all": true}`, on every instance sharing state too."""
        everywhere = isinstance(body, dict) and body.get("all") is True
        router = self.accounting.router
        reloaded = await router.reload_from_source()
        shared = router.shared
        told = False
        if everywhere and shared is not None:
            published = shared.publish(RELOAD_CHANNEL, b"")
            told = published is not None
            if published is not None:
                await published
        return {"reloaded": reloaded, "broadcast": told}

    async def instances(self) -> dict[str, Any]:
        """Every live worker and instance of this gateway, with config drift flagged."""
        router = self.accounting.router
        shared = router.shared
        if shared is None:
            return with_drift([{**describe(router.config, router.pipeline.active, "local"), "id": "local"}])
        return with_drift(await shared.refresh_instances())

    async def cache(self, method: str, query: dict[str, str]) -> dict[str, Any]:
        cache = self.accounting.router.cache
        if cache is None:
            raise NoCache("No route uses the response cache: set cache: on a route in routing_strategy.")
        if method == "GET":
            return await cache.stats()
        key = query.get("key")
        if key is not None:
            named = [k.id for k in self.accounting.keys.keys() if k.name == key]  # noqa: SIM118 (a KeyRing, not a dict)
            key = named[0] if len(named) == 1 else key
        return {"removed": await cache.clear(query.get("model"), key)}

    async def usage(self, query: dict[str, str]) -> dict[str, Any]:
        by = query.get("by", "model")
        if by not in REPORT_GROUPS:
            raise InvalidRequest(f"'by' must be one of {', '.join(REPORT_GROUPS)}.", param="by")
        since = _moment(query.get("since", DEFAULT_SINCE), "since")
        until = _moment(query["until"], "until") if "until" in query else None
        tag = query.get("tag")
        if tag is not None:
            check_tag(tag, "tag")
        filters = report_filters(query.get("key"), query.get("model"), tag)
        return await usage_report(self._store(), since, until, by, filters)

    async def requests(self, query: dict[str, str]) -> dict[str, Any]:
        limit = _int(query.get("limit", "50"), "limit", 1, MAX_PAGE)
        before = _int(query["before"], "before") if "before" in query else None
        rows = await self._store().page_requests(
            limit,
            before,
            _text(query, "key"),
            _text(query, "model"),
            query.get("errors", "").lower() in ("1", "true", "yes"),
            filters(query),
        )
        next_before = rows[-1]["id"] if len(rows) == limit else None
        return {"data": rows, "next_before": next_before}


async def _actor(request: Request, accounting: Accounting, console: Console | None = None) -> str:
    """Who an audit row names: an admin-scoped key by id and name, the master key, or whose console session."""
    if request.key is not None:
        return _key_actor(request.key.id, request.key.name)
    if request.header(b"authorization") or request.header(b"x-api-key"):
        return "master key"
    # No key sent: the console's session cookie, opened with the master key or an admin key.
    session = await console.session(request) if console is not None else None
    if session is None or session.who == "master":
        return "console"
    key = accounting.keys.get(session.who)
    return "console, " + _key_actor(session.who, key.name if key is not None else "?")


def _key_actor(key_id: str, name: str) -> str:
    return f"key:{key_id} ({name})"


def _rotation(report: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """What a provider action changes: its health state and whether requests are routed to it."""
    row = next((r for r in report if r["name"] == name), None)
    return None if row is None else {"state": row["state"], "routable": row["routable"]}


async def _with_team(store: Store, fields: dict[str, Any], *, creating: bool = False) -> dict[str, Any]:
    """`team` (an id or name) as the key's `team_id`; an unknown team is a 400 that says so."""
    try:
        return await teamops.resolve_team_field(store, fields, creating=creating)
    except teamops.TeamNotFound as exc:
        raise InvalidRequest(f"{exc.args[0]}: create it first (POST /admin/teams).", param="team") from None


def _key_fields(body: Any, *, creating: bool) -> dict[str, Any]:
    """The changes a key body asks for, as `keys.apply_changes` names them."""
    decoded = decode_key_body(body)
    if creating and decoded.name is msgspec.UNSET:
        raise InvalidRequest("A key needs a 'name'.", param="name")
    fields = {
        FIELD_NAMES.get(name, name): value
        for name in decoded.__struct_fields__
        if (value := getattr(decoded, name)) is not msgspec.UNSET
    }
    if "expires_at" in fields:
        expires = fields["expires_at"]
        fields["expires_at"] = None if expires is None else _moment(expires, "expires", future=True)
    return fields


def _moment(text: str, param: str, *, future: bool = False) -> float:
    try:
        return parse_moment(text, time.time(), future=future)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param=param) from None


def _int(text: str, param: str, low: int = 0, high: int = 2**63 - 1) -> int:
    # isdigit() alone admits '²' and other digits int() refuses; the bounds keep it inside a database integer.
    if not (text.isascii() and text.isdigit()) or len(text) > 19 or not low <= int(text) <= high:
        raise InvalidRequest(f"'{param}' must be an integer from {low} to {high}.", param=param)
    return int(text)


def _text(query: dict[str, str], param: str) -> str | None:
    value = query.get(param)
    if value is not None and not value.isprintable():
        raise InvalidRequest(f"'{param}' contains control characters.", param=param)
    return value
