"""A fake Azure OpenAI resource: FakeOpenAI's answers behind Azure's URLs, keys and errors.

Serves `POST /openai/deployments/{deployment}/chat/completions?api-version=...`, the
version-less `POST /openai/v1/chat/completions` (the deployment in `model`), and
`GET /openai/models`. Requests need `api-key: <api_key>` or `Authorization: Bearer
<ad_token>`; answers name the deployment's underlying model, as Azure's do. Errors are
Azure's `{"error": {"code": ..., "message": ...}}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from aiohttp import web

from .base import Endpoint, Exchange, HttpError, RecordedRequest, send_json
from .openai_server import FakeOpenAI
from .replay import ReplayMixin

__all__ = ["CONTENT_FILTER_ERROR", "FakeAzure", "azure_error"]

API_VERSIONS = ("2024-06-01", "2024-10-21", "2025-04-01-preview")
MESSAGES = {
    401: (
        "401",
        (
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
            "key for an active subscription and use a correct regional API endpoint for your resource."
        ),
    ),
    404: ("404", "Resource not found"),
    429: (
        "429",
        (
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have "
            "exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds."
        ),
    ),
    500: ("InternalServerError", "The server had an error while processing your request. Sorry about that!"),
}
# Azure's documented refusal of a prompt by its content filter.
CONTENT_FILTER_ERROR = {
    "error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
        "Please modify your prompt and retry. To learn more about our content filtering policies please read "
        "our documentation: https://go.microsoft.com/fwlink/?linkid=2198766",
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {
            "code": "ResponsibleAIPolicyViolation",
            "content_filter_result": {
                "hate": {"filtered": False, "severity": "safe"},
                "self_harm": {"filtered": False, "severity": "safe"},
                "sexual": {"filtered": False, "severity": "safe"},
                "violence": {"filtered": True, "severity": "medium"},
            },
        },
    }
}


def azure_error(status: int, message: str | None = None, code: str | None = None) -> HttpError:
    default_code, default_message = MESSAGES.get(status, (str(status), f"HTTP {status}"))
    return HttpError(status, {"error": {"code": code or default_code, "message": message or default_message}})


class FakeAzure(ReplayMixin, FakeOpenAI):
    """A fake Azure OpenAI resource on 127.0.0.1; `url` is the resource endpoint."""

    base_path = ""

    def __init__(
        self,
        *,
        key: str | None = None,
        ad_token: str | None = None,
        deployments: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.key = key
        self.ad_token = ad_token
        self.deployments = dict(deployments or {"gpt-4o-prod": "gpt-4o-2024-08-06"})

    def endpoints(self) -> Sequence[tuple[str, str, Endpoint]]:
        return [
            ("POST", "/openai/deployments/{deployment}/chat/completions", self._deployment_chat),
            ("POST", "/openai/v1/chat/completions", self._v1_chat),
            ("GET", "/openai/models", self._azure_models),
            ("GET", "/openai/v1/models", self._azure_models),
        ]

    def error_payload(self, status: int, message: str | None = None) -> Mapping[str, Any]:
        return azure_error(status, message).body

    def response_headers(self, record: RecordedRequest) -> Mapping[str, str]:
        return {"apim-request-id": f"00000000-0000-4000-8000-{record.seq:012d}", "x-ms-region": "Sweden Central"}

    async def _deployment_chat(self, ex: Exchange) -> web.StreamResponse:
        self._check_access(ex.record)
        if ex.request.query.get("api-version") not in API_VERSIONS:
            raise azure_error(404)
        return await self._deployment_answer(ex, ex.request.match_info["deployment"])

    async def _v1_chat(self, ex: Exchange) -> web.StreamResponse:
        self._check_access(ex.record)
        body = ex.record.json
        return await self._deployment_answer(ex, body.get("model", "") if isinstance(body, dict) else "")

    async def _deployment_answer(self, ex: Exchange, deployment: str) -> web.StreamResponse:
        if deployment not in self.deployments:
            raise azure_error(
                404,
                "The API deployment for this resource does not exist. If you created the "
                "deployment within the last 5 minutes, please wait a moment and try again.",
                "DeploymentNotFound",
            )
        body = {**ex.record.json, "model": self.deployments[deployment]}
        return await self._chat(Exchange(ex.request, replace(ex.record, json=body), ex.reply))

    async def _azure_models(self, ex: Exchange) -> web.StreamResponse:
        self._check_access(ex.record)
        data = [
            {
                "id": model,
                "object": "model",
                "status": "succeeded",
                "lifecycle_status": "generally-available",
                "capabilities": {"chat_completion": True},
            }
            for model in sorted(set(self.deployments.values()))
        ]
        return await send_json(ex, {"object": "list", "data": data})

    def _check_access(self, record: RecordedRequest) -> None:
        key, bearer = record.headers.get("api-key"), record.headers.get("Authorization")
        if self.key is not None and key == self.key:
            return
        if self.ad_token is not None and bearer == f"Bearer {self.ad_token}":
            return
        raise azure_error(401)
