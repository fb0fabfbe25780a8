"""The admin API, master key only: virtual keys, usage reports and recent requests.

POST   /admin/keys            {"name": "ci", "budget": 25, "budget_period": "monthly", "rpm": 60,
                               "tpm": 100000, "models": ["gpt-4o", "llama*"], "expires": "30d"}
                              -> 201 with "key": the secret, shown this once
GET    /admin/keys            every key, never a secret
GET    /admin/keys/{id}       one key, with its spend this period
PATCH  /admin/keys/{id}       change any field above (null clears a limit)
DELETE /admin/keys/{id}       revoke (the key and its records stay)
GET    /admin/usage?since=7d&by=model|provider|key|day|upstream|tag|user|team&tag=<tag>
GET    /admin/audit?limit=50&before=<id>   who changed what and when, newest first (never a secret)
/admin/teams                  teams: see admin_teams.py
GET    /admin/requests?limit=50&before=<id>&key=<id>&model=<name>&errors=true
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from .. import audit
from ..accounting import Accounting
from ..errors import InvalidRequest, LLMMuxError, PermissionDenied
from ..ledger import REPORT_GROUPS, Store, keyops, teamops
from ..ledger.keyops import AmbiguousKey, KeyNotFound
from ..ledger.reports import usage_report
from ..periods import parse_moment
from ..router import Router
from ..tags import check as check_tag
from .admin_teams import TeamsAdmin
from .http import JSON_HEADERS, Request, Send, send_bytes

PREFIX = "/admin/"
DEFAULT_SINCE = "7d"


class NoSuchKey(InvalidRequest):
    status = 404
    code = "key_not_found"


class NoLedger(LLMMuxError):
    status = 503
    code = "ledger_disabled"


class AdminAPI:
    """Serves `/admin/...` for an App; every call needs the master key."""

    def __init__(self, accounting: Accounting) -> None:
        self.accounting = accounting
        self.teams = TeamsAdmin(accounting)

    async def handle(self, router: Router, request: Request, send: Send) -> None:
        if not request.admin:
            raise PermissionDenied(
                "The admin API needs the master key (server.master_key)."
                if router.config.server.master_key
                else "The admin API is off: set server.master_key to use it."
            )
        path = request.path.removeprefix(PREFIX).strip("/")
        status, body = await self._route(request, path.split("/"))
        await send_bytes(send, status, msgspec.json.encode(body), JSON_HEADERS)

    async def _route(self, request: Request, parts: list[str]) -> tuple[int, Any]:
        method = request.method
        if parts == ["usage"] and method == "GET":
            return 200, await self.usage(request.query())
        if parts == ["requests"] and method == "GET":
            return 200, await self.requests(request.query())
        if parts == ["keys"] and method == "GET":
            return 200, {"data": [self._public(k) for k in await self._store().list_keys()]}
        if parts == ["keys"] and method == "POST":
            return 201, await self.create(await request.json(), _actor(request))
        if len(parts) == 2 and parts[0] == "keys" and method in ("GET", "PATCH", "DELETE"):
            return 200, await self.one_key(method, parts[1], request)
        if parts[0] == "teams" and len(parts) <= 2:
            body = await request.json() if method in ("POST", "PATCH") else None
            return await self.teams.route(self._store(), method, parts, body, _actor(request))
        if parts == ["audit"] and method == "GET":
            query = request.query()
            before = _int(query["before"], "before") if "before" in query else None
            rows = await audit.page(self._store(), _int(query.get("limit", "50"), "limit"), before)
            return 200, {"data": rows, "next_before": rows[-1]["id"] if rows else None}
        raise InvalidRequest(f"No admin endpoint {method} /admin/{'/'.join(parts)}.")

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
            await audit.record(store, _actor(request), action, changed.id, before, changed.public(time.time()))
            return self._public(changed)
        except (KeyNotFound, AmbiguousKey):
            raise NoSuchKey(f"No key with id {key_id!r}.", param="id") from None
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

    async def usage(self, query: dict[str, str]) -> dict[str, Any]:
        by = query.get("by", "model")
        if by not in REPORT_GROUPS:
            raise InvalidRequest(f"'by' must be one of {', '.join(REPORT_GROUPS)}.", param="by")
        since = _moment(query.get("since", DEFAULT_SINCE), "since")
        until = _moment(query["until"], "until") if "until" in query else None
        tag = query.get("tag")
        if tag is not None:
            check_tag(tag, "tag")
        return await usage_report(self._store(), since, until, by, tag)

    async def requests(self, query: dict[str, str]) -> dict[str, Any]:
        limit = _int(query.get("limit", "50"), "limit")
        before = _int(query["before"], "before") if "before" in query else None
        rows = await self._store().page_requests(
            limit, before, query.get("key"), query.get("model"), query.get("errors", "").lower() in ("1", "true", "yes")
        )
        next_before = rows[-1]["id"] if len(rows) == limit else None
        return {"data": rows, "next_before": next_before}


def _actor(request: Request) -> str:
    """Who an audit row names: the master key, or (with admin-scoped keys) the key's id."""
    return "master key" if request.admin else f"key:{request.key_id}"


async def _with_team(store: Store, fields: dict[str, Any], *, creating: bool = False) -> dict[str, Any]:
    """`team` (an id or name) as the key's `team_id`; an unknown team is a 400 that says so."""
    try:
        return await teamops.resolve_team_field(store, fields, creating=creating)
    except teamops.TeamNotFound as exc:
        raise InvalidRequest(f"{exc.args[0]}: create it first (POST /admin/teams).", param="team") from None


def _key_fields(body: Any, *, creating: bool) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("Expected a JSON object.")
    fields = dict(body)
    if "budget" in fields:
        fields["budget_usd"] = fields.pop("budget")
    if "expires" in fields:
        expires = fields.pop("expires")
        fields["expires_at"] = None if expires is None else _moment(str(expires), "expires", future=True)
    if creating and not isinstance(fields.get("name"), str):
        raise InvalidRequest("A key needs a 'name'.", param="name")
    return fields


def _moment(text: str, param: str, *, future: bool = False) -> float:
    try:
        return parse_moment(text, time.time(), future=future)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param=param) from None


def _int(text: str, param: str) -> int:
    if not text.isdigit():
        raise InvalidRequest(f"'{param}' must be a non-negative integer.", param=param)
    return int(text)
