"""AWS Bedrock through its Converse API (`type: bedrock`): Converse and ConverseStream,
plus InvokeModel for the Titan and Cohere embedding models.

Two ways to authenticate, as AWS's own SDKs offer them:

* a Bedrock API key (`api_key`, or `AWS_BEARER_TOKEN_BEDROCK`) sent as a bearer token;
* SigV4, signed by botocore's signer with credentials from AWS's standard chain
  (environment, shared config and credentials files, SSO, container and instance roles).

The region comes from `region:`, else `AWS_REGION` / `AWS_DEFAULT_REGION` / the profile.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
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
from ..wire import decode_json
from ..wire.bedrock import StreamDecoder
from ..wire.eventstream import Decoder
from .aws_auth import (
    INSTALL_HINT,
    NoCredentials,
    SigV4Signer,
    botocore_available,
    default_region,
)
from .base import ProviderType, in_batches
from .http_provider import ErrorFormat, HTTPProvider
from .options import ProviderOptions
from .transport import Transport

SERVICE = "bedrock"  # the signing name of both bedrock-runtime and the bedrock control plane
FALLBACK_REGION = "us-east-1"
_JSON = {"content-type": "application/json"}


@dataclass(frozen=True, slots=True)
class BedrockOptions(ProviderOptions):
    region: str | None = None
    """The AWS region; else AWS_REGION / AWS_DEFAULT_REGION / the profile's, else us-east-1."""
    profile: str | None = None
    """The AWS profile whose credentials sign requests."""
    control_url: str | None = None
    """Where models are listed, if not the `bedrock` control plane beside the runtime URL."""


class BedrockProvider(HTTPProvider):
    """`type: bedrock`; models are Bedrock model ids, inference profile ids or ARNs."""

    errors = ErrorFormat(wire.error_message, wire.classify_error)
    wire = wire.WIRE
    mapped_fields = frozenset({"cache_control"})  # as cachePoint blocks
    # inferenceConfig's settings are the ones every Bedrock model honours; others are model-specific
    # and travel in `additionalModelRequestFields`.
    supported_params = frozenset({"temperature", "top_p", "max_tokens", "stop"})
    options_type = BedrockOptions
    options: BedrockOptions

    def __init__(self, config: ProviderConfig, kind: ProviderType, *, transport: Transport | None = None) -> None:
        super().__init__(config, kind, transport=transport)
        self.profile = self.options.profile
        self.region = self.options.region or default_region(self.profile) or FALLBACK_REGION
        self.signer = (
            None
            if config.api_key or not botocore_available()
            else SigV4Signer(SERVICE, self.region, profile=self.profile)
        )

    def base_url(self) -> str:
        return (self.config.base_url or self.kind.base_url).replace("{region}", self.region).rstrip("/")

    def control_url(self) -> str:
        """Where models are listed: the `bedrock` control plane next to the `bedrock-runtime` one."""
        configured = self.options.control_url
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
        headers = await self._headers("POST", url, body, {})
        return await self.call(
            "POST", url, body, decode=lambda data: wire.decode_response(data, model), headers=headers
        )

    async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
        url, body = self._url(model, "converse-stream"), wire.encode_request(request)
        headers = await self._headers("POST", url, body, {"accept": wire.CONTENT_TYPE})
        decoder, frames = StreamDecoder(model), Decoder()
        async with self.open_stream(url, body, headers) as chunks:
            async for data in chunks:
                # Frame by frame, so the chunks of the frames before a broken one still reach the client.
                for frame in frames.feed(data):
                    for chunk in decoder.feed(frame):
                        yield chunk
        if not decoder.finished or frames.pending:
            raise UpstreamBadResponse(f"{self.name} ended the stream before messageStop", provider=self.name)

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
            headers = await self._headers("POST", url, body, {"accept": "application/json"})
            return await self.call(
                "POST",
                url,
                body,
                decode=lambda data: embeddings.decode_embed_response(family, data, model, inputs),
                headers=headers,
            )

        size = embeddings.batch_limit(family)
        return await in_batches(texts, min(self.embedding_batch_size or size, size), batch)

    # -- models and health --

    async def list_models(self) -> list[ModelInfo]:
        """The foundation models that produce text, from the control plane."""
        url = self._models_url()
        headers = await self._headers("GET", url, b"", {})
        listing = await self.call(
            "GET", url, decode=_model_list, headers=headers, timeout=self.config.timeout, what="/foundation-models"
        )
        return [ModelInfo(id=m.model_id, provider=self.name, owned_by=m.provider_name) for m in listing.model_summaries]

    def _models_url(self) -> str:
        return f"{self.control_url()}/foundation-models?{urlencode({'byOutputModality': 'TEXT'})}"

    def health_url(self) -> str:
        return self.config.health_endpoint or self._models_url()

    async def _get(self, url: str, timeout: float) -> tuple[int, bytes]:
        headers = await self._headers("GET", url, b"", {})
        response = await self.exchange(self.request("GET", url, headers=headers, timeout=timeout))
        return response.status, response.body

    def missing_credential(self) -> str | None:
        if not self.config.api_key and self.signer is None:
            return f"no API key: {INSTALL_HINT} to sign with AWS credentials, or set AWS_BEARER_TOKEN_BEDROCK"
        return super().missing_credential()

    def info(self) -> dict[str, Any]:
        auth = "api key" if self.config.api_key else ("sigv4" if self.signer else "none")
        return {**super().info(), "region": self.region, "auth": auth}


class _Model(msgspec.Struct, rename="camel"):
    model_id: str
    provider_name: str | None = None


class _ModelList(msgspec.Struct, rename="camel"):
    model_summaries: list[_Model] = []


def _model_list(data: bytes) -> _ModelList:
    return decode_json(data, _ModelList, "/foundation-models")
