"""AWS Bedrock through its Converse API (`type: bedrock`): Converse and ConverseStream,
plus InvokeModel for the Titan and Cohere embedding models.

Two ways to authenticate, as AWS's own SDKs offer them:

* a Bedrock API key (`api_key`, or `AWS_BEARER_TOKEN_BEDROCK`) sent as a bearer token;
* SigV4, signed by botocore's signer with credentials from AWS's standard chain
  (environment, shared config and credentials files, SSO, container and instance roles).

The region comes from `region:`, else `AWS_REGION` / `AWS_DEFAULT_REGION` / the profile.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import msgspec
from yarl import URL

from ..config.model import ProviderConfig
from ..errors import NotSupported, UpstreamBadResponse, UpstreamClientError
from ..types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    ModelInfo,
)
from ..wire import bedrock as wire
from ..wire import bedrock_embeddings as embeddings
from ..wire.bedrock import StreamDecoder
from ..wire.eventstream import Decoder, EventStreamError
from .aws_auth import (
    INSTALL_HINT,
    NoCredentials,
    SigV4Signer,
    botocore_available,
    default_region,
)
from .base import Provider, ProviderType, in_batches
from .transport import Transport, kwargs_for

SERVICE = "bedrock"  # the signing name of both bedrock-runtime and the bedrock control plane
FALLBACK_REGION = "us-east-1"
_JSON = {"content-type": "application/json"}


class BedrockProvider(Provider):
    """`type: bedrock`; models are Bedrock model ids, inference profile ids or ARNs."""

    wire = wire.WIRE
    mapped_fields = frozenset({"cache_control"})  # as cachePoint blocks
    # inferenceConfig's settings are the ones every Bedrock model honours; others are model-specific
    # and travel in `additionalModelRequestFields`.
    supported_params = frozenset({"temperature", "top_p", "max_tokens", "stop"})
    options = frozenset({"region", "profile", "control_url"})

    def __init__(self, config: ProviderConfig, kind: ProviderType) -> None:
        super().__init__(config, kind)
        self.profile = _option(config, "profile")
        self.region = _option(config, "region") or default_region(self.profile) or FALLBACK_REGION
        self.signer = (
            None
            if config.api_key or not botocore_available()
            else SigV4Signer(SERVICE, self.region, profile=self.profile)
        )
        self.transport = Transport(
            self.name,
            headers={**kind.headers, **config.headers},
            error_message=wire.error_message,
            classify=wire.classify_error,
            **kwargs_for(config),
        )

    def base_url(self) -> str:
        return (self.config.base_url or self.kind.base_url).replace("{region}", self.region).rstrip("/")

    def control_url(self) -> str:
        """Where models are listed: the `bedrock` control plane next to the `bedrock-runtime` one."""
        configured = _option(self.config, "control_url")
        if configured:
            return configured.rstrip("/")
        base = self.base_url()
        host = urlsplit(base).hostname or ""
        return base.replace("//bedrock-runtime.", "//bedrock.", 1) if host.startswith("bedrock-runtime.") else base

    def _url(self, model: str, action: str) -> str:
        # A model id may hold `:` and an ARN `/`; both are escaped, and the URL is signed in the
        # form the HTTP client will send it, so the signature covers the bytes on the wire.
        return str(URL(f"{self.base_url()}/model/{quote(model, safe='')}/{action}"))

    async def _headers(self, method: str, url: str, body: bytes, extra: dict[str, str]) -> dict[str, str]:
        headers = {**_JSON, **extra} if body else dict(extra)
        if self.config.api_key:
            return {**headers, "Authorization": f"Bearer {self.config.api_key}"}
        if self.signer is None:
            raise UpstreamClientError(
                f"{self.name}: no AWS credentials: {INSTALL_HINT}, or set AWS_BEARER_TOKEN_BEDROCK",
                provider=self.name,
                upstream_status=401,
            )
        try:
            return await self.signer.sign(method, url, body, headers)
        except NoCredentials as exc:
            raise UpstreamClientError(f"{self.name}: {exc}", provider=self.name, upstream_status=401) from None

    # -- chat --

    async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
        url, body = self._url(model, "converse"), wire.encode_request(request)
        data = await self.transport.post(url, body, await self._headers("POST", url, body, {}))
        try:
            return wire.decode_response(data, model)
        except wire.MalformedReply as exc:
            raise UpstreamBadResponse(f"{self.name}: {exc}", provider=self.name) from None

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        url, body = self._url(model, "converse-stream"), wire.encode_request(request)
        headers = await self._headers("POST", url, body, {"accept": wire.CONTENT_TYPE})
        decoder, frames = StreamDecoder(model), Decoder()
        async with self.transport.stream(url, body, headers) as chunks:
            async for data in chunks:
                for chunk in self._chunks(decoder, frames, data):
                    yield chunk
        if not decoder.finished or frames.pending:
            raise UpstreamBadResponse(f"{self.name} ended the stream before messageStop", provider=self.name)

    def _chunks(self, decoder: StreamDecoder, frames: Decoder, data: bytes) -> Iterator[ChatChunk]:
        # Lazily, so the chunks of the frames before a broken one still reach the client.
        try:
            for frame in frames.feed(data):
                yield from decoder.feed(frame)
        except wire.BedrockStreamError as exc:
            raise wire.stream_error(exc, self.name) from None
        except (EventStreamError, wire.MalformedReply) as exc:
            raise UpstreamBadResponse(f"{self.name} sent a broken event stream: {exc}", provider=self.name) from None

    # -- embeddings --

    async def embed(self, request: EmbeddingRequest, model: str) -> EmbeddingResponse:
        """InvokeModel in the model family's own body: Titan one text a call, Cohere 96, concurrently."""
        family = embeddings.family_of(model)
        if family is None:
            raise NotSupported(f"{self.name}: {model} is not a Titan or Cohere embedding model", provider=self.name)
        texts = embeddings.text_inputs(request.inputs)
        url = self._url(model, "invoke")

        async def batch(inputs: list[str]) -> EmbeddingResponse:
            body = embeddings.encode_embed_request(family, request, inputs)
            data = await self.transport.post(
                url, body, await self._headers("POST", url, body, {"accept": "application/json"})
            )
            try:
                return embeddings.decode_embed_response(family, data, model, inputs)
            except wire.MalformedReply as exc:
                raise UpstreamBadResponse(f"{self.name}: {exc}", provider=self.name) from None

        size = embeddings.batch_limit(family)
        return await in_batches(texts, min(self.embedding_batch_size or size, size), batch)

    # -- models and health --

    async def list_models(self) -> list[ModelInfo]:
        """The foundation models that produce text, from the control plane."""
        status, data = await self._get(self._models_url(), self.config.timeout)
        if status != 200:
            raise UpstreamBadResponse(
                f"{self.name} /foundation-models returned {status}: {wire.error_message(data)}",
                provider=self.name,
                upstream_status=status,
            )
        try:
            listing = msgspec.json.decode(data, type=_ModelList)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UpstreamBadResponse(f"{self.name} /foundation-models: {exc}", provider=self.name) from None
        return [ModelInfo(id=m.model_id, provider=self.name, owned_by=m.provider_name) for m in listing.model_summaries]

    def _models_url(self) -> str:
        return f"{self.control_url()}/foundation-models?{urlencode({'byOutputModality': 'TEXT'})}"

    def health_url(self) -> str:
        return self.config.health_endpoint or self._models_url()

    async def _get(self, url: str, timeout: float) -> tuple[int, bytes]:
        headers = await self._headers("GET", url, b"", {})
        return await self.transport.send("GET", url, headers=headers, timeout=timeout)

    def validate_config(self) -> list[str]:
        problems = super().validate_config()
        if not self.config.api_key and self.signer is None:
            problems.append(f"no API key: {INSTALL_HINT} to sign with AWS credentials, or set AWS_BEARER_TOKEN_BEDROCK")
        return problems

    def info(self) -> dict[str, Any]:
        auth = "api key" if self.config.api_key else ("sigv4" if self.signer else "none")
        return {**super().info(), "region": self.region, "auth": auth}

    async def aclose(self) -> None:
        await self.transport.aclose()


def _option(config: ProviderConfig, key: str) -> str | None:
    value = config.extra.get(key)
    return str(value) if value else None


class _Model(msgspec.Struct, rename="camel"):
    model_id: str
    provider_name: str | None = None


class _ModelList(msgspec.Struct, rename="camel"):
    model_summaries: list[_Model] = []
