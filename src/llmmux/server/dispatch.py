"""The server's one path table: every path the gateway answers, by method, with who may call it
and the door whose error shape its clients parse.

    table = PathTable()
    table.add("/v1/chat/completions", {"POST": chat_completions}, OPENAI_DOOR)
    table.add("/admin/keys/{id}", {"GET": get_key, "DELETE": revoke_key}, OPENAI_DOOR, Access.ADMIN)
    found = table.match("/admin/keys/key_1", "GET")    # found.handler, found.params == {"id": "key_1"}

A fixed path is one dict lookup; a path with `{name}` (one segment) or `{name:path}` (the rest,
slashes included: model names such as `openai/gpt-4o`) is matched in the order added. A path
that exists under other methods is a 405 naming them (`Allow`); a path that exists under none
is a 404. Either is answered in the shape of the door the path belongs to, or for an unknown
path, of the family it looks like (`/api/...` is Ollama's).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from ..bounds import clip
from ..errors import LLMMuxError, MethodNotAllowed, NotFound
from ..events import ClientApi
from ..router import Router
from .http import Request, Send

Handler = Callable[[Router, Request, Send], Awaitable[None]]
ErrorRenderer = Callable[[LLMMuxError], tuple[int, bytes]]
_PARAM = re.compile(r"\{(\w+)(:path)?\}")


class Access(enum.Enum):
    """Who may call a path; the authentication middleware enforces it before the handler runs."""

    OPEN = "open"  # no key asked: health, Ollama's root probe, the console's own pages (it has sessions)
    KEY = "key"  # the master key or a virtual key, once the gateway has a master key; anyone before
    METRICS = "metrics"  # /metrics: open unless a master key is set and metrics.public is not
    MANAGE = "manage"  # changes a backend: the master key or an admin-scoped key (anyone on an open gateway)
    ADMIN = "admin"  # the admin API: the master key or an admin-scoped key; off without a master key


@dataclass(frozen=True, slots=True)
class Door:
    """A client API's error shape, and the name its requests are recorded under."""

    client_api: ClientApi
    render: ErrorRenderer


@dataclass(frozen=True, slots=True)
class Endpoint:
    methods: Mapping[str, Handler]
    door: Door
    access: Access = Access.KEY

    def handler(self, method: str) -> Handler | None:
        found = self.methods.get(method)
        if found is None and method == "HEAD":
            return self.methods.get("GET")
        return found

    def allow(self) -> tuple[str, ...]:
        names: list[str] = []
        for method in self.methods:
            names += [method, "HEAD"] if method == "GET" and "HEAD" not in self.methods else [method]
        return tuple(names)


@dataclass(slots=True)
class Match:
    """What a request's path and method found: its endpoint and handler, or the error to answer with.

    Shared between requests for fixed paths: read it, never change it."""

    door: Door
    endpoint: Endpoint | None = None
    handler: Handler | None = None
    params: dict[str, str] = field(default_factory=dict)
    error: LLMMuxError | None = None


class PathTable:
    """Every path the server answers; see the module docstring."""

    def __init__(self, fallback: Door, families: tuple[tuple[str, Door], ...] = ()) -> None:
        self._fixed: dict[str, Endpoint] = {}
        self._ready: dict[str, dict[str, Match]] = {}  # fixed path -> method -> its Match, made once
        self._patterns: list[tuple[re.Pattern[str], Endpoint]] = []
        self._fallback = fallback
        self._families = families  # (prefix, door): the shape an unknown path under `prefix` answers in

    def add(self, path: str, methods: Mapping[str, Handler], door: Door, access: Access = Access.KEY) -> None:
        endpoint = Endpoint(dict(methods), door, access)
        if "{" not in path:
            if path in self._fixed:
                raise ValueError(f"{path} is in the table twice")
            self._fixed[path] = endpoint
            self._ready[path] = {m: Match(door, endpoint, endpoint.handler(m)) for m in endpoint.allow()}
            return
        self._patterns.append((_compile(path), endpoint))

    def match(self, path: str, method: str) -> Match:
        ready = self._ready.get(path)
        if ready is not None:  # the hot path: two dict lookups, nothing allocated
            ready_match = ready.get(method)
            if ready_match is not None:
                return ready_match
            fixed = self._fixed[path]
            return Match(fixed.door, fixed, error=_not_allowed(path, fixed.allow()))
        allowed: list[str] = []
        first: Endpoint | None = None
        for pattern, endpoint in self._patterns:
            found = pattern.fullmatch(path)
            if found is None:
                continue
            handler = endpoint.handler(method)
            if handler is not None:
                return Match(endpoint.door, endpoint, handler, found.groupdict())
            first = first or endpoint
            allowed += [m for m in endpoint.allow() if m not in allowed]
        if first is not None:
            return Match(first.door, first, error=_not_allowed(path, tuple(allowed)))
        return Match(self.family(path), error=NotFound(f"Unknown path {clip(path)}."))

    def family(self, path: str) -> Door:
        """The door an unknown path answers as: its clients parse errors in that shape."""
        for prefix, door in self._families:
            if path.startswith(prefix):
                return door
        return self._fallback

    def paths(self) -> list[tuple[str, tuple[str, ...], Access]]:
        """(path, methods, access) for every entry, fixed paths first: for docs and tests."""
        rows = [(p, e.allow(), e.access) for p, e in self._fixed.items()]
        return rows + [(pattern.pattern, e.allow(), e.access) for pattern, e in self._patterns]


def _compile(path: str) -> re.Pattern[str]:
    parts, end = [], 0
    for found in _PARAM.finditer(path):
        parts.append(re.escape(path[end : found.start()]))
        parts.append(f"(?P<{found.group(1)}>{'.+' if found.group(2) else '[^/]+'})")
        end = found.end()
    parts.append(re.escape(path[end:]))
    return re.compile("".join(parts))


def _not_allowed(path: str, allow: tuple[str, ...]) -> MethodNotAllowed:
    return MethodNotAllowed(f"{clip(path)} accepts {', '.join(allow)} only.", allow)
