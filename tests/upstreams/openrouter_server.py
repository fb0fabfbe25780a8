"""A fake OpenRouter (openrouter.ai/api/v1): FakeOpenAI's chat plus OpenRouter's own endpoints.

`/models` lists models with OpenRouter's pricing (USD per token, as decimal strings) and
context lengths; `/key` describes the calling key; `/credits` answers only management keys.
Errors are OpenRouter's `{"error": {"code": <int>, "message": ...}}`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from .base import Endpoint, Exchange, HttpError, RecordedRequest, send_json
from .openai_server import FakeOpenAI

__all__ = ["MODELS", "FakeOpenRouter", "openrouter_error"]

# Two entries of OpenRouter's documented /models shape.
MODELS = [
    {
        "id": "openai/gpt-4",
        "canonical_slug": "openai/gpt-4",
        "name": "GPT-4",
        "created": 1692901234,
        "description": "GPT-4 is a large multimodal model that can solve difficult problems with greater accuracy.",
        "context_length": 8192,
        "architecture": {
            "input_modalities": ["text"],
            "output_modalities": ["text"],
            "modality": "text->text",
            "tokenizer": "GPT",
            "instruct_type": "chatml",
        },
        "pricing": {"prompt": "0.00003", "completion": "0.00006", "request": "0", "image": "0"},
        "top_provider": {"context_length": 8192, "max_completion_tokens": 4096, "is_moderated": True},
        "per_request_limits": None,
        "supported_parameters": ["temperature", "top_p", "max_tokens", "tools"],
    },
    {
        "id": "meta-llama/llama-3.1-8b-instruct:free",
        "canonical_slug": "meta-llama/llama-3.1-8b-instruct",
        "name": "Meta: Llama 3.1 8B Instruct (free)",
        "created": 1721692800,
        "description": "Llama 3.1 8B.",
        "context_length": 131072,
        "architecture": {
            "input_modalities": ["text"],
            "output_modalities": ["text"],
            "modality": "text->text",
            "tokenizer": "Llama3",
            "instruct_type": None,
        },
        "pricing": {"prompt": "0", "completion": "0"},
        "top_provider": {"context_length": 131072, "max_completion_tokens": None, "is_moderated": False},
        "per_request_limits": None,
        "supported_parameters": ["temperature", "top_k"],
    },
]
MESSAGES = {
    401: "No auth credentials found",
    402: "Insufficient credits. Add more using https://openrouter.ai/credits",
    403: "Only management keys can perform this operation",
    429: "Rate limit exceeded: free-models-per-day",
    502: "Provider returned error",
    503: "No available model provider that meets your routing requirements",
}


def openrouter_error(status: int, message: str | None = None) -> HttpError:
    return HttpError(status, {"error": {"code": status, "message": message or MESSAGES.get(status, f"HTTP {status}")}})


class FakeOpenRouter(FakeOpenAI):
    """A fake OpenRouter on 127.0.0.1; `url` ends in `/api/v1`."""

    base_path = "/api/v1"

    def __init__(self, *, key: str, management_key: str | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.key = key
        self.management_key = management_key

    def endpoints(self) -> Sequence[tuple[str, str, Endpoint]]:
        return [
            ("POST", "/api/v1/chat/completions", self._chat),
            ("GET", "/api/v1/models", self._openrouter_models),
            ("GET", "/api/v1/key", self._key),
            ("GET", "/api/v1/credits", self._credits),
        ]

    def error_payload(self, status: int, message: str | None = None) -> Mapping[str, Any]:
        return openrouter_error(status, message).body

    def _check_auth(self, record: RecordedRequest) -> None:
        if record.headers.get("Authorization") not in (f"Bearer {self.key}", f"Bearer {self.management_key}"):
            raise openrouter_error(401)

    async def _openrouter_models(self, ex: Exchange) -> web.StreamResponse:
        return await send_json(ex, {"data": MODELS})  # public: no key needed

    async def _key(self, ex: Exchange) -> web.StreamResponse:
        self._check_auth(ex.record)
        return await send_json(
            ex,
            {
                "data": {
                    "label": "sk-or-v1-au7...890",
                    "limit": 100,
                    "limit_remaining": 74.5,
                    "limit_reset": "monthly",
                    "include_byok_in_limit": False,
                    "usage": 25.5,
                    "usage_daily": 25.5,
                    "usage_weekly": 25.5,
                    "usage_monthly": 25.5,
                    "byok_usage": 17.38,
                    "is_free_tier": False,
                    "is_management_key": False,
                    "is_provisioning_key": False,
                    "expires_at": "2027-12-31T23:59:59Z",
                    "rate_limit": {
                        "requests": 1000,
                        "interval": "1h",
                        "note": "This field is deprecated and safe to ignore.",
                    },
                }
            },
        )

    async def _credits(self, ex: Exchange) -> web.StreamResponse:
        self._check_auth(ex.record)
        if ex.record.headers.get("Authorization") != f"Bearer {self.management_key}":
            raise openrouter_error(403)
        return await send_json(ex, {"data": {"total_credits": 100.5, "total_usage": 25.75}})
