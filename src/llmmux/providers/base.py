"""What every provider offers, whatever API it speaks.

A provider translates and sends; it holds no routing, retry or accounting logic. The
interface is the seeds' (list models, complete, stream, health, validate config, info),
async, so a native API is one module.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .. import forwarding, params
from ..config.env import lookup
from ..config.fields import FieldReader
from ..config.model import ProviderConfig, TypedOptions
from ..errors import NotSupported
from ..pricing import Price, Pricing
from ..types import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ModelInfo, Usage
from ..wire.openai import decode_chat_request
from .options import ProviderOptions

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


@dataclass(slots=True)
class HealthResult:
    ok: bool
    latency_ms: float
    status: int | None = None
    detail: str = ""
    url: str = ""


@dataclass(frozen=True, slots=True)
class ProviderType:
    """One row of the registry: how to build a provider and the defaults of its service.

    `factory` is the provider class, or its "module:Class" path: a native API's module (and
    what it pulls in, such as the in-process engines) is then imported only when a config
    names the type, which keeps it off the start-up of every gateway that does not.
    `params` narrows the generation parameters the service honours (default: what the
    provider class honours); `options` names further config keys a row accepts beyond its
    class's typed `options_type` (a third-party row's own settings), so validation does not
    call them unknown.
    """

    name: str
    factory: type[Provider] | str
    base_url: str = ""
    env_var: str | None = None
    health_endpoint: str | None = None
    cloud: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    params: frozenset[str] | None = None
    options: frozenset[str] = frozenset()
    alt_env_vars: tuple[str, ...] = ()  # further variables the service's own tools read the key from
    credential_options: tuple[str, ...] = ()  # config keys holding a credential other than a key (a token)
    root_api_path: str = "/v1"  # what an OpenAI-format base URL without a path gets appended
    # Client headers passed on to this service as the client sent them; a provider's config
    # adds more with `forward_headers: [...]`. Credentials never pass (`forwarding.NEVER_FORWARDED`).
    forward_headers: tuple[str, ...] = ()
    # The service's models that take `reasoning_effort` (a regex), where it refuses the field
    # elsewhere (OpenAI's gpt-4o); None: every model is sent it.
    reasoning_models: str | None = None

    @property
    def provider_class(self) -> type[Provider]:
        """The class `factory` names, imported on first use."""
        if not isinstance(self.factory, str):
            return self.factory
        module, _, attribute = self.factory.partition(":")
        found: type[Provider] = getattr(importlib.import_module(module), attribute)
        return found

    def has_credential_option(self, config: ProviderConfig) -> bool:
        return any(config.extra.get(option) for option in self.credential_options)

    def key_from_env(self) -> str | None:
        """The API key from the service's environment variables, in order of preference."""
        for var in (self.env_var, *self.alt_env_vars):
            key = lookup(var) if var else None
            if key:
                return key
        return None

    in_process: bool = False  # runs models inside llmmux: no base URL, no API key


class Provider(abc.ABC):
    """An upstream backend. Subclasses implement `complete`, `stream` and `list_models`; those
    that call their upstream over HTTP derive from `http_provider.HTTPProvider`."""

    wire: str = ""
    # The canonical generation parameters (see `llmmux.params`) this API can honour.
    supported_params: frozenset[str] = params.ALL
    # Fields only the client's own API has (`ChatRequest.wire_only`) that this provider maps
    # into its API's terms, so they are not reported dropped.
    mapped_fields: frozenset[str] = frozenset()
    # The config keys this class reads beyond the common ones, as typed fields (providers/options.py).
    options_type: ClassVar[type[ProviderOptions]] = ProviderOptions
    # Takes a legacy /v1/completions body as sent (prompt, suffix, token prompts) instead of chat.
    native_completions: bool = False
    _local: tuple[str, bool] | None = None  # (base URL, is_local) as last worked out

    def __init__(self, config: ProviderConfig, kind: ProviderType) -> None:
        self.config = config
        self.kind = kind
        self.name = config.name
        if kind.params is not None:
            self.supported_params = kind.params
        # Read once, by validation, onto `config.options`; a config that did not pass through
        # `llmmux.loading` (built in code) is read here, a wrong value kept at its default and
        # reported by `validate_config`.
        self.option_problems: list[str] = []
        if isinstance(config.options, self.options_type):
            self.options = config.options
        else:
            self.options, self.option_problems = self.options_type.from_config(config.extra, config.name)
        self.forward_headers = forwarding.allow_list((*kind.forward_headers, *self.options.forward_headers))

    @classmethod
    def read_options(cls, config: ProviderConfig, reader: FieldReader, path: str) -> TypedOptions:
        """The entry's own keys as this class reads them; problems go to `reader` under `path`."""
        return cls.options_type.from_mapping(config.extra, reader, path)

    @abc.abstractmethod
    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        """Send one non-streaming chat request for upstream model `model`."""

    @abc.abstractmethod
    def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        """Send one streaming chat request; errors before the first chunk are raised by the first `__anext__`."""

    def stream_batches(self, request: ChatRequest, model: str) -> AsyncIterator[list[ChatChunk]]:
        """The same stream, one non-empty list per upstream read: the events that arrived
        together travel the gateway together (one pass through the stall watch and the
        door, one write to the client) instead of one trip each. By default one chunk a
        list; providers that parse their upstream's reads themselves override it."""
        return one_per_batch(self.stream(request, model))

    @abc.abstractmethod
    async def list_models(self) -> list[ModelInfo]:
        """The models the backend itself reports (live where its API allows)."""

    def dropped_for(self, request: ChatRequest, model: str) -> list[str]:
        """Fields this provider leaves out for upstream model `model` that a canonical parameter
        check cannot see (a translated `reasoning_effort` for a model without reasoning)."""
        return []

    def forwarded_headers(self, request: ChatRequest) -> dict[str, str] | None:
        """The client's headers this provider passes on for `request` (its `forward_headers`)."""
        return forwarding.select(request.client_headers, self.forward_headers)

    @property
    def embedding_batch_size(self) -> int | None:
        """The most inputs one upstream embeddings call takes (`embedding_batch_size:`), if limited."""
        return self.options.embedding_batch_size

    async def embed(self, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        """Embed the request's inputs with upstream model `model`."""
        raise NotSupported(f"{self.name} ({self.config.type}) does not serve embeddings", provider=self.name)

    async def chat(self, model: str, messages: list[dict[str, Any]], **params: Any) -> ChatResponse:
        """Convenience for library use: OpenAI-style arguments, straight to this provider."""
        return await self.complete(decode_chat_request({"model": model, "messages": messages, **params}), model)

    async def health(self, timeout: float = 5.0) -> HealthResult:
        """Probe the health endpoint; any 2xx is healthy."""
        url = self.health_url()
        started = time.perf_counter()
        try:
            status, body = await self._get(url, timeout)
        except Exception as exc:  # a probe reports every failure, it never raises
            return HealthResult(False, _ms(started), None, probe_failure(exc), url)
        ok = 200 <= status < 300
        return HealthResult(ok, _ms(started), status, "" if ok else body[:200].decode("utf-8", "replace"), url)

    async def _get(self, url: str, timeout: float) -> tuple[int, bytes]:
        raise NotImplementedError

    def health_url(self) -> str:
        endpoint = self.config.health_endpoint or self.kind.health_endpoint or "/"
        if endpoint.startswith(("http://", "https://")):
            return endpoint
        return server_root(self.base_url()) + "/" + endpoint.lstrip("/")

    def base_url(self) -> str:
        return (self.config.base_url or self.kind.base_url).rstrip("/")

    @property
    def is_local(self) -> bool:
        # Pricing asks on every answer of a model without a listed price: the URL is parsed
        # once per base URL (a managed server's may change when it restarts), not per request.
        url = self.base_url()
        seen = self._local
        if seen is not None and seen[0] == url:
            return seen[1]
        host = urlsplit(url).hostname or ""
        local = host in LOOPBACK_HOSTS or host.endswith(".local") or _is_private(host)
        self._local = (url, local)
        return local

    def validate_config(self) -> list[str]:
        """Problems with this provider's settings, as sentences."""
        problems = []
        url = self.base_url()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"base_url {url!r} is not an http(s) URL with a host")
        missing = self.missing_credential()
        if missing is not None:
            problems.append(missing)
        return problems + self.option_problems

    def missing_credential(self) -> str | None:
        """What to set when this provider has no credential its service needs, else None.

        The router skips such a provider (it would only answer 401) and validation reports it."""
        if self.kind.cloud and not self.config.api_key and not self.kind.has_credential_option(self.config):
            source = self.config.env_var or self.kind.env_var
            return f"no API key: set {source}" if source else "no API key configured"
        return None

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.config.type,
            "wire": self.wire,
            "base_url": self.base_url(),
            "status": self.config.status,
            "local": self.is_local,
            "models": self.config.model_names(),
            "description": self.config.description,
            "api_key": "set" if self.config.api_key else "unset",
        }

    async def account(self) -> dict[str, Any]:
        """Live account facts the backend reports (credits, limits); empty where it has none."""
        return {}

    @property
    def is_cloud(self) -> bool:
        return self.kind.cloud

    def live_price(self, model: str) -> Price | None:
        """The price this backend publishes for `model` (None: it publishes none)."""
        return None

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """USD for a request of `model`, priced as billing prices it (pricing.Pricing): `pricing:`
        on the model, a price the backend publishes, else the built-in table; local and
        unpriced models cost nothing."""
        usage = Usage(prompt_tokens=input_tokens, completion_tokens=output_tokens)
        return Pricing({self.name: self}).cost(self.name, model, usage)

    def bind(self, peers: Mapping[str, Provider]) -> None:
        """Called once every provider of a router is built, with all of them by name
        (providers that share state, such as a swap group of managed servers, find each
        other here)."""

    async def start(self) -> None:
        """Start background work once the event loop runs (server startup): preloading."""

    def stop_generating(self) -> None:
        """The server is stopping: end in-process generations now, which would otherwise
        hold the shutdown for as long as they run (the server waits for open responses)."""

    async def aclose(self) -> None:
        """Release connection pools."""


async def one_per_batch(chunks: AsyncIterator[ChatChunk]) -> AsyncIterator[list[ChatChunk]]:
    try:
        async for chunk in chunks:
            yield [chunk]
    finally:
        await _close(chunks)  # now, not when the collector finds it: it holds an upstream connection


async def each_chunk(batches: AsyncIterator[list[ChatChunk]]) -> AsyncIterator[ChatChunk]:
    """A batched stream one chunk at a time (`Provider.stream` of a provider that batches)."""
    try:
        async for batch in batches:
            for chunk in batch:
                yield chunk
    finally:
        await _close(batches)


async def _close(iterator: AsyncIterator[Any]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


async def in_batches(
    inputs: list[str] | list[list[int]],
    size: int | None,
    call: Callable[[Any], Awaitable[EmbeddingResponse]],
) -> EmbeddingResponse:
    """Embed in upstream-sized batches, concurrently, and join the vectors in input order."""
    if size is None or len(inputs) <= size:
        return await call(inputs)
    parts = await asyncio.gather(*(call(inputs[i : i + size]) for i in range(0, len(inputs), size)))
    usage = Usage(
        prompt_tokens=sum(p.usage.prompt_tokens for p in parts if p.usage),
        total_tokens=sum(p.usage.total_tokens for p in parts if p.usage),
        estimated=any(p.usage.estimated for p in parts if p.usage),
    )
    return EmbeddingResponse(model=parts[0].model, vectors=[v for p in parts for v in p.vectors], usage=usage)


def server_root(url: str) -> str:
    """`scheme://host:port` plus any path prefix before a trailing `/v1`."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[:-3]
    return f"{parts.scheme}://{parts.netloc}{path}"


def _is_private(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_private
    except ValueError:
        return False


def probe_failure(exc: BaseException) -> str:
    """What a failed probe says: the gateway's own errors their message; anything else (a custom
    provider that is not HTTP) its type and text, so an error whose text is empty still says what
    happened. Secrets in the text are masked where it leaves (health endpoint, logs)."""
    message = getattr(exc, "message", None)
    if isinstance(message, str) and message:
        return message
    text = str(exc)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
