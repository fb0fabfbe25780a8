"""The ASGI application: a path table, key checks, error rendering and lifespan.

Pure ASGI with no framework: a request costs a dict lookup before its handler runs.
"""

from __future__ import annotations

import asyncio
import logging

from ..accounting import Accounting
from ..config.model import ServerConfig
from ..console import Console
from ..errors import LLMMuxError, TooDeeplyNested
from ..events import ClientApi, new_request_id
from ..metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ..reload import DEFAULT_INTERVAL_S, ConfigWatcher
from ..router import Router
from ..shared.instances import describe
from . import admin_local, anthropic_api, completions_api, health_api, ollama_api, openai_api
from .admin import RELOAD_CHANNEL, AdminAPI
from .authentication import Authentication
from .dispatch import Access, Door, ErrorRenderer, PathTable
from .http import JSON_HEADERS, ClientDisconnected, Receive, Request, Scope, Send, header_list, send_bytes
from .responses_api import ResponsesDoor
from .responses_store import ResponseStore

log = logging.getLogger("llmmux.server")

HEALTH_BODY = b'{"status":"ok"}'
METRICS_HEADERS = [(b"content-type", METRICS_CONTENT_TYPE)]
OPENAI = Door(ClientApi.OPENAI, openai_api.render_error)
ANTHROPIC = Door(ClientApi.ANTHROPIC, anthropic_api.render_error)
OLLAMA = Door(ClientApi.OLLAMA, ollama_api.render_error)
CONSOLE_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")  # the console answers each itself
FAMILIES = (("/api/", OLLAMA), ("/v1/messages/", ANTHROPIC))
"""The shape an unknown path answers in: `/api/...` is Ollama's, so its clients can parse it."""


class App:
    """`llmmux serve` runs this under uvicorn; tests and embedders can mount it anywhere ASGI runs.

    `accounting` (default: built from the router's config) prices, records and counts every
    request, checks virtual keys and serves /metrics and /admin/. Each request is one lookup
    in the path table (`paths`), then authentication as the path asks, then its handler.
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
        self.accounting = accounting or Accounting.from_config(router)
        if self._watcher is not None:
            self._watcher.on_reloaded = self.accounting.audit_reload
        self._metrics = self.accounting.metrics if router.config.metrics.enabled else None
        self.admin = AdminAPI(self.accounting)
        self.responses = ResponsesDoor(ResponseStore(shared=router.shared))  # this app's stored responses
        if router.shared is not None:
            shared = router.shared
            shared.describe = lambda: describe(
                router.config, router.pipeline.active, shared.kind, router.limiter.in_flight_by_provider()
            )
            shared.listen(RELOAD_CHANNEL, self._reload_asked)
        self._reloads: set[asyncio.Task[bool]] = set()
        ui = router.config.ui
        self.console = (
            Console(
                ui, key, self.accounting.authenticate, self.accounting.keys.get, router.shared, self.accounting.store
            )
            if ui.enabled
            else None
        )
        self.admin.console = self.console  # the audit log names who a console session belongs to
        self.authentication = Authentication(
            key,
            self.accounting.authenticate,
            self.accounting.key_service.check_identity,
            console=self.console,
            metrics_public=router.config.metrics.public,
        )
        self.paths = self._path_table()

    def _path_table(self) -> PathTable:
        table = PathTable(OPENAI, FAMILIES)
        add = table.add
        responses = self.responses
        for prefix in ("/v1", ""):
            add(f"{prefix}/chat/completions", {"POST": openai_api.chat_completions}, OPENAI)
            add(f"{prefix}/completions", {"POST": completions_api.completions}, OPENAI)
            add(f"{prefix}/responses", {"POST": responses.create}, OPENAI)
            add(f"{prefix}/responses/{{id:path}}", {"GET": responses.retrieve, "DELETE": responses.delete}, OPENAI)
            add(f"{prefix}/embeddings", {"POST": openai_api.embeddings}, OPENAI)
            add(f"{prefix}/models", {"GET": openai_api.list_models}, OPENAI)
        add("/v1/models/{model:path}", {"GET": openai_api.retrieve_model}, OPENAI)
        add("/v1/messages", {"POST": anthropic_api.messages}, ANTHROPIC)
        add("/v1/messages/count_tokens", {"POST": anthropic_api.count_tokens}, ANTHROPIC)
        add("/", {"GET": ollama_api.root}, OLLAMA, Access.OPEN)  # Ollama clients probe it without a key
        add("/api/chat", {"POST": ollama_api.chat}, OLLAMA)
        add("/api/generate", {"POST": ollama_api.generate}, OLLAMA)
        add("/api/tags", {"GET": ollama_api.tags}, OLLAMA)
        add("/api/show", {"POST": ollama_api.show}, OLLAMA)
        add("/api/ps", {"GET": ollama_api.ps}, OLLAMA)
        add("/api/embed", {"POST": ollama_api.embed}, OLLAMA)
        add("/api/embeddings", {"POST": ollama_api.embeddings}, OLLAMA)
        add("/api/version", {"GET": ollama_api.version}, OLLAMA)
        add("/api/pull", {"POST": self.admin.audited(ollama_api.pull, "model.pull")}, OLLAMA, Access.MANAGE)
        add("/api/delete", {"DELETE": self.admin.audited(ollama_api.delete, "model.delete")}, OLLAMA, Access.MANAGE)
        add("/health", {"GET": _health}, OPENAI, Access.OPEN)
        add("/health/providers", {"GET": health_api.providers}, OPENAI)
        if self._metrics is not None:
            add("/metrics", {"GET": self._send_metrics}, OPENAI, Access.METRICS)
        add("/admin/models", {"GET": admin_local.list_local_models}, OPENAI, Access.MANAGE)
        add("/admin/models/{name:path}", {"POST": self.admin.model_action}, OPENAI, Access.MANAGE)  # audited
        self.admin.register(table, OPENAI)
        if self.console is not None:
            console = self.console

            async def page(router: Router, request: Request, send: Send) -> None:
                await console.handle(request, send)

            every = dict.fromkeys(CONSOLE_METHODS, page)
            add(console.base, every, OPENAI, Access.OPEN)  # the console keeps its own sessions
            add(console.base + "/", every, OPENAI, Access.OPEN)
            add(console.base + "/{page:path}", every, OPENAI, Access.OPEN)
        return table

    def begin_shutdown(self) -> None:
        """The server is stopping (a signal): end the streams only the app would end.

        The ASGI server waits for open responses before the lifespan's shutdown: the
        console's live tail would stay open for as long as someone watched it, and an
        in-process generation for as long as the model went on (minutes, on a slow one).
        """
        self.admin.tail.end_all()
        self.router.stop_generating()

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
        path, method = scope["path"], scope["method"]
        found = self.paths.match(path, method)
        request_id = new_request_id()
        request = Request(scope, receive, self.settings.max_body_bytes, request_id, self.router.masker)
        if found.params:
            request.params = found.params
        try:
            if found.error is not None:
                raise found.error
            assert found.endpoint is not None and found.handler is not None
            await self.authentication.check(request, found.endpoint.access)
            await found.handler(self.router, request, send)
        except (LLMMuxError, RecursionError) as caught:
            # RecursionError: JSON that decoded but is too deep for what walks it next (a schema, an encoder).
            exc = caught if isinstance(caught, LLMMuxError) else TooDeeplyNested()
            endpoint = found.endpoint
            if endpoint is not None and endpoint.access is not Access.OPEN and not request.routed and method == "POST":
                self.accounting.rejected(request.context(found.door.client_api), exc, request.model)
            await self._send_error(send, exc, found.door.render, request_id)
        except ClientDisconnected:
            return
        except Exception:
            log.exception("unhandled error on %s (request %s)", path, request_id)
            await self._send_error(
                send, LLMMuxError("Internal error; see the gateway log."), found.door.render, request_id
            )

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

    async def _send_metrics(self, router: Router, request: Request, send: Send) -> None:
        assert self._metrics is not None
        text = self.router.masker.scrub(self._metrics.render())
        await send_bytes(send, 200, text.encode(), METRICS_HEADERS)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.router.start(probe_now=True)  # background health checks, the first now
                try:
                    await self.accounting.start()
                    if self.console is not None:
                        await self.console.start()  # after the ledger is open: it reads logouts there
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
                if self.console is not None:
                    await self.console.aclose()
                # Requests in flight have finished (the server waits for them): write their records.
                await self.accounting.aclose()
                await self.router.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _health(router: Router, request: Request, send: Send) -> None:
    """For load balancers: no key, no work."""
    await send_bytes(send, 200, HEALTH_BODY, JSON_HEADERS)
