"""Azure OpenAI (`type: azure`): OpenAI's wire format behind Azure's deployment URLs and keys.

What differs from OpenAI, and nothing else:

* chat goes to `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...`
  (or, with `api_version: v1`, to Azure's version-less `{endpoint}/openai/v1/chat/completions`
  with the deployment as `model`);
* a model's deployment is its own name unless `deployments:` maps it
  (`deployments: {gpt-4o: prod-gpt4o}`);
* the key travels in `api-key` (`api_key`, or `AZURE_OPENAI_API_KEY`); a Microsoft Entra ID
  token (`azure_ad_token: ${AZURE_OPENAI_AD_TOKEN}`) travels as a bearer token instead;
* streams open with content-filter annotations that carry no choices; they are dropped, as
  clients that index `choices[0]` break on them.

```yaml
providers:
  azure:
    type: azure
    base_url: ${AZURE_OPENAI_ENDPOINT}      # https://my-resource.openai.azure.com
    api_version: "2024-10-21"
    deployments: {gpt-4o: prod-gpt4o}
    models: [gpt-4o]
```
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any, cast
from urllib.parse import quote, urlencode

from .. import params
from ..config.model import ProviderConfig
from ..types import ChatChunk, ChatRequest, Delta, ModelInfo
from .base import ProviderType
from .openai import OpenAIOptions, OpenAIProvider
from .options import AS_TEXT
from .transport import Transport

DEFAULT_API_VERSION = "2024-10-21"  # the latest GA data-plane inference version
V1 = "v1"


@dataclass(frozen=True, slots=True)
class AzureOptions(OpenAIOptions):
    api_version: Annotated[str, AS_TEXT] | None = None
    """A dated data-plane version (`2024-10-21`, the default), or `v1` for the version-less API."""
    deployments: dict[str, str] | None = None
    """Model name -> deployment name, where they differ."""
    azure_ad_token: str | None = None
    """A Microsoft Entra ID token, sent as a bearer token instead of an `api-key`."""


class AzureOpenAIProvider(OpenAIProvider):
    """Azure OpenAI deployments; see the module docstring for the config keys."""

    supported_params = params.OPENAI
    options_type = AzureOptions
    options: AzureOptions

    def __init__(self, config: ProviderConfig, kind: ProviderType, *, transport: Transport | None = None) -> None:
        super().__init__(config, kind, transport=transport)
        self.api_version = self.options.api_version or DEFAULT_API_VERSION
        self.deployments = dict(self.options.deployments or {})
        self.ad_token = self.options.azure_ad_token

    def endpoint(self) -> str:
        """The resource's root, whether the config names it with or without `/openai[/v1]`."""
        root = self.base_url()
        for suffix in ("/openai/v1", "/openai"):
            root = root.removesuffix(suffix)
        return root

    def session_headers(self) -> dict[str, str]:
        headers = {**self.kind.headers, **self.config.headers}
        if self.config.api_key:
            headers.setdefault("api-key", self.config.api_key)
        elif self.ad_token:
            headers.setdefault("Authorization", f"Bearer {self.ad_token}")
        return headers

    def deployment(self, model: str) -> str:
        return self.deployments.get(model, model)

    def url_for(self, model: str) -> str:
        if self.api_version == V1:
            return f"{self.endpoint()}/openai/v1/chat/completions"
        query = urlencode({"api-version": self.api_version})
        return f"{self.endpoint()}/openai/deployments/{quote(self.deployment(model), safe='')}/chat/completions?{query}"

    def encode(self, request: ChatRequest, model: str, *, stream: bool) -> bytes:
        # A deployment URL names the model already; the v1 API reads the deployment from `model`.
        return super().encode(request, self.deployment(model), stream=stream)

    async def stream_batches(self, request: ChatRequest, model: str) -> AsyncIterator[list[ChatChunk]]:
        upstream = cast(AsyncGenerator[list[ChatChunk], None], super().stream_batches(request, model))
        async with contextlib.aclosing(upstream) as batches:
            async for batch in batches:
                kept = [chunk for chunk in batch if not _annotation_only(chunk)]
                if kept:
                    yield kept

    async def list_models(self) -> list[ModelInfo]:
        """The configured deployments: Azure's data-plane API lists base models, not deployments."""
        names = self.config.model_names() or list(self.deployments)
        return [ModelInfo(id=name, provider=self.name, owned_by="azure") for name in names]

    def health_url(self) -> str:
        if self.config.health_endpoint:
            return super().health_url()
        if self.api_version == V1:
            return f"{self.endpoint()}/openai/v1/models"
        return f"{self.endpoint()}/openai/models?{urlencode({'api-version': self.api_version})}"

    def info(self) -> dict[str, Any]:
        auth = "api-key" if self.config.api_key else ("entra id token" if self.ad_token else "none")
        return {**super().info(), "api_version": self.api_version, "deployments": self.deployments, "auth": auth}


def _annotation_only(chunk: ChatChunk) -> bool:
    """Azure's content-filter annotations: no choices (or only empty ones) and no usage."""
    if chunk.usage is not None:
        return False
    return all(c.finish_reason is None and c.delta == _EMPTY for c in chunk.choices)


_EMPTY = Delta()
