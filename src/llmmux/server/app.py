"""The ASGI application: a path table, key checks, error rendering and lifespan.

Pure ASGI with no framework: a request costs a dict lookup before its handler runs.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable

from ..accounting import Accounting
from ..bounds import clip
from ..config.model import ServerConfig
from ..console import Console, is_admin
from ..errors import AuthenticationFailed, LLMMuxError, MethodNotAllowed, NotFound, PermissionDenied, TooDeeplyNested
from ..events import new_request_id
from ..keys import METRICS_SCOPE
from ..metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ..reload import DEFAULT_INTERVAL_S, ConfigWatcher
from ..router import Router
from ..shared.instances import describe
from . import admin_local, anthropic_api, completions_api, health_api, ollama_api, openai_api, responses_api
from .admin import PREFIX as ADMIN_PREFIX
from .admin import RELOAD_CHANNEL, AdminAPI
from .http import (
    JSON_HEADERS,
    ClientDisconnected,
    Receive,
    Request,
    Scope,
    Send,
    header_list,
    send_bytes,
)

log = logging.getLogger("llmmux.server")

Handler = Callable[[Router, Request, Send], Awaitable[None]]
ErrorRenderer = Callable[[LLMMuxError], tuple[int, bytes]]

HEALTH_BODY = b'{"status":"ok"}'
METRICS_PATH = "/metrics"
METRICS_HEADERS = [(b"content-type", METRICS_CONTENT_TYPE)]
ANY_METHOD = "*"
ADMIN_PATHS = ("/admin/", "/admin")
MANAGEMENT_PATHS = frozenset({"/api/pull", "/api/delete"})
"""Paths that change a backend: admin-only, like everything under /admin/."""
UNKNOWN_PATH_RENDERERS: tuple[tuple[str, ErrorRenderer], ...] = (
    ("/api/", ollama_api.render_error),
    ("/v1/messages/", anthropic_api.render_error),
)


class App:
    """`llmmux serve` runs this under uvicorn; tests and embedders can mount it anywhere ASGI runs.

    `accounting` (default: built from the router's config) prices, records and counts every
    request, checks virtual keys and serves /metrics and /admin/.
    """

    def __init__(
        self,
        router: Router,
        settings: ServerConfig | None = None,
        accounting: Accounting | None = None,
        *,
        watch_config: bool = False,
        watch_interval: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.router = router
        self.settings = settings or router.config.server
        self._watcher = ConfigWatcher(router, watch_interval) if watch_config else None
        key = self.settings.master_key
        self._master_key = key.encode() if key else None
        self.accounting = accounting or Accounting.from_config(router)
        if self._watcher is not None:
            self._watcher.on_reloaded = self.accounting.audit_reload
        self._metrics = self.accounting.metrics if router.config.metrics.enabled else None
        # With a master key set, /metrics asks for it (or a metrics-scoped key) unless opened explicitly.
        self._metrics_open = self._master_key is None or router.config.metrics.public
        self.admin = AdminAPI(self.accounting)
        if router.shared is not None:
            shared = router.shared
            shared.describe = lambda: describe(
                router.config, router.pipeline.active, shared.kind, router.limiter.in_flight_by_provider()
            )
            shared.listen(RELOAD_CHANNEL, self._reload_asked)
        self._reloads: set[asyncio.Task[bool]] = set()
        openai, ollama, anthropic = openai_api.render_error, ollama_api.render_error, anthropic_api.render_error
        self._routes: dict[str, tuple[str, Handler, ErrorRenderer]] = {
            "/v1/chat/completions": ("POST", openai_api.chat_completions, openai),
            "/chat/completions": ("POST", openai_api.chat_completions, openai),
            "/v1/completions": ("POST", completions_api.completions, openai),
            "/completions": ("POST", completions_api.completions, openai),
            "/v1/responses": ("POST", responses_api.create, openai),
            "/responses": ("POST", responses_api.create, openai),
            "/v1/embeddings": ("POST", openai_api.embeddings, openai),
            "/embeddings": ("POST", openai_api.embeddings, openai),
            "/v1/models": ("GET", openai_api.list_models, openai),
            "/models": ("GET", openai_api.list_models, openai),
            "/v1/messages": ("POST", anthropic_api.messages, anthropic),
            "/v1/messages/count_tokens": ("POST", anthropic_api.count_tokens, anthropic),
            "/": ("GET", ollama_api.root, ollama),
            "/api/chat": ("POST", ollama_api.chat, ollama),
            "/api/generate": ("POST", ollama_api.generate, ollama),
            "/api/tags": ("GET", ollama_api.tags, ollama),
            "/api/show": ("POST", ollama_api.show, ollama),
            "/api/ps": ("GET", ollama_api.ps, ollama),
            "/api/embed": ("POST", ollama_api.embed, ollama),
            "/api/embeddings": ("POST", ollama_api.embeddings, ollama),
            "/api/version": ("GET", ollama_api.version, ollama),
            "/api/pull": ("POST", ollama_api.pull, ollama),
            "/api/delete": ("DELETE", ollama_api.delete, ollama),
            "/admin/models": ("GET", admin_local.list_local_models, openai),
            "/health/providers": ("GET", health_api.providers, openai),
        }
        self._prefixes: list[tuple[str, str, Handler, ErrorRenderer]] = [
            ("/v1/models/", "GET", openai_api.retrieve_model, openai),
            ("/v1/responses/", "GET", responses_api.retrieve, openai),
            ("/v1/responses/", "DELETE", responses_api.delete, openai),
            ("/responses/", "GET", responses_api.retrieve, openai),
            ("/responses/", "DELETE", responses_api.delete, openai),
            (admin_local.PREFIX, "POST", self.admin.model_action, openai),  # audited
            (ADMIN_PREFIX, ANY_METHOD, self.admin.handle, openai),
        ]
        ui = router.config.ui
        self.console = (
            Console(ui, key, self.accounting.authenticate, self.accounting.keys.get, router.shared)
            if ui.enabled
            else None
        )
        self.admin.console = self.console  # the audit log names who a console session belongs to
        # The client API each error renderer speaks, for records of requests refused before routing.
        self._client_apis: dict[ErrorRenderer, str] = {openai: "openai", anthropic: "anthropic", ollama: "ollama"}

    def begin_shutdown(self) -> None:
        """The server is stopping (a signal): end the streams only the app would end (the live tail).

        The ASGI server waits for open responses before the lifespan's shutdown, and the
        console's live tail would stay open for as long as someone watched it.
        """
        self.admin.tail.end_all()

    def _reload_asked(self, sender: str, payload: bytes) -> None:
        """Another instance ran `llmmux reload --all`: re-read this one's config too."""
        if self.router.shared is not None and sender != self.router.shared.instance:
            log.info("reloading the configuration, as instance %s asked every instance to", sender)
            task = asyncio.ensure_future(self.router.reload_from_source())
            self._reloads.add(task)
            task.add_done_callback(self._reloads.discard)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == "/health":
            await send_bytes(send, 200, HEALTH_BODY, JSON_HEADERS)
            return
        if path == METRICS_PATH and self._metrics is not None and self._metrics_open:
            await self._send_metrics(send)
            return
        request_id = new_request_id()
        entry = self._routes.get(path) or self._match_prefix(path, scope["method"])
        render = entry[2] if entry else self._unknown_path_renderer(path)
        request = Request(scope, receive, self.settings.max_body_bytes, request_id, self.router.masker)
        try:
            if path == METRICS_PATH and self._metrics is not None:
                await self._authenticate(request)
                if not (request.admin or (request.key is not None and request.key.has_scope(METRICS_SCOPE))):
                    raise PermissionDenied("/metrics needs the master key or a key with the 'metrics' scope.")
                await self._send_metrics(send)
                return
            if entry is None:
                if self.console is not None and self.console.owns(path):
                    await self.console.handle(request, send)
                    return
                raise NotFound(f"Unknown path {clip(path)}.")
            method, handler, _ = entry
            if (
                method != ANY_METHOD
                and scope["method"] != method
                and not (method == "GET" and scope["method"] == "HEAD")
            ):
                allow = (method, "HEAD") if method == "GET" else (method,)
                raise MethodNotAllowed(f"{path} accepts {method} only.", allow)
            await self._authenticate(request)
            if (path.startswith(ADMIN_PATHS) or path in MANAGEMENT_PATHS) and not self._may_administer(request):
                raise PermissionDenied(
                    f"{path} changes the gateway or a backend: it needs the master key or a key with the 'admin' scope."
                )
            await handler(self.router, request, send)
        except (LLMMuxError, RecursionError) as caught:
            # RecursionError: JSON that decoded but is too deep for what walks it next (a schema, an encoder).
            exc = caught if isinstance(caught, LLMMuxError) else TooDeeplyNested()
            if entry is not None and not request.routed and scope["method"] == "POST" and render in self._client_apis:
                self.accounting.rejected(request.context(self._client_apis[render]), exc, request.model)
            await self._send_error(send, exc, render, request_id)
        except ClientDisconnected:
            return
        except Exception:
            log.exception("unhandled error on %s (request %s)", path, request_id)
            await self._send_error(send, LLMMuxError("Internal error; see the gateway log."), render, request_id)

    async def _send_error(self, send: Send, error: LLMMuxError, render: ErrorRenderer, request_id: str) -> None:
        """The error in the door's shape, scrubbed: upstream bodies and messages may echo credentials."""
        status, body = render(error)
        scrub = self.router.masker.scrub
        extra = {name: scrub(value) for name, value in error.headers().items()}
        headers = header_list(JSON_HEADERS, {**extra, "x-request-id": request_id})
        try:
            await send_bytes(send, status, self.router.masker.scrub_bytes(body), headers)
        except RuntimeError:
            # The response had already started (a stream); the handler reported it in-band.
            pass

    def _may_administer(self, request: Request) -> bool:
        """The master key or an admin-scoped key; on a gateway with no master key, anyone without a key."""
        return request.admin or (self._master_key is None and request.key is None)

    async def _send_metrics(self, send: Send) -> None:
        assert self._metrics is not None
        text = self.router.masker.scrub(self._metrics.render())
        await send_bytes(send, 200, text.encode(), METRICS_HEADERS)

    @staticmethod
    def _unknown_path_renderer(path: str) -> ErrorRenderer:
        """An unknown path answers in the shape its family's clients parse (`/api/...` is Ollama's)."""
        for prefix, render in UNKNOWN_PATH_RENDERERS:
            if path.startswith(prefix):
                return render
        return openai_api.render_error

    def _match_prefix(self, path: str, method: str) -> tuple[str, Handler, ErrorRenderer] | None:
        """The entry for `path` and `method`; else the path's first entry, so a wrong method is a 405."""
        found = None
        for prefix, allowed, handler, render in self._prefixes:
            if path.startswith(prefix) and len(path) > len(prefix):
                if allowed in (method, ANY_METHOD) or (allowed == "GET" and method == "HEAD"):
                    return allowed, handler, render
                found = found or (allowed, handler, render)
        return found

    async def _authenticate(self, request: Request) -> None:
        """The master key (admin), else a virtual key; with no master key set, the gateway is open."""
        if request.path == "/":  # Ollama clients probe the root without a key
            return
        supplied = request.header(b"authorization") or b""
        if supplied[:7].lower() == b"bearer ":
            supplied = supplied[7:].strip()
        else:
            supplied = request.header(b"x-api-key") or b""
        if self._master_key is not None and supplied and hmac.compare_digest(supplied, self._master_key):
            request.admin = True
            return
        key = await self.accounting.authenticate(supplied) if supplied else None
        if key is not None:
            request.key, request.key_id = key, key.id  # so a refusal is recorded against the key
            self.accounting.keys.check_identity(key)
            request.admin = is_admin(key)
            return
        if self._master_key is None:
            return
        if not supplied and self.console is not None and request.path.startswith(ADMIN_PATHS):
            await self._console_session(request)
            return
        if not supplied:
            raise AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>'.")
        raise AuthenticationFailed("Incorrect API key provided.")

    async def _console_session(self, request: Request) -> None:
        """An admin API call from the console: its session cookie, and on every change the CSRF header."""
        assert self.console is not None
        session = await self.console.session(request)
        if session is None:
            raise AuthenticationFailed("Missing API key: send 'Authorization: Bearer <key>'.")
        if request.method not in ("GET", "HEAD") and not self.console.csrf_ok(request, session):
            raise PermissionDenied("This change needs the console's CSRF token in the X-CSRF-Token header.")
        request.admin = True

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.router.start(probe_now=True)  # background health checks, the first now
                try:
                    await self.accounting.start()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": f"llmmux could not start: {exc}"})
                    return
                if self._watcher is not None:
                    self._watcher.start()  # reload on SIGHUP or when the config files change
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._watcher is not None:
                    await self._watcher.stop()
                # Requests in flight have finished (the server waits for them): write their records.
                await self.accounting.aclose()
                await self.router.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
