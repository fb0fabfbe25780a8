"""A fake Together AI (api.together.xyz/v1): FakeOpenAI's chat plus Together's model listing.

`GET /v1/models` answers as Together's API does (its OpenAPI spec's ModelInfoList): a bare
JSON array, not OpenAI's `{"data": [...]}`, of models with `type`, `organization`,
`context_length` and `pricing: {hourly, input, output, base, finetune}`, `input` and `output`
in USD per million tokens. Models billed otherwise (images, dedicated hardware) list 0. The
listing needs the key, as Together's does. Errors are OpenAI's shape, which Together's is.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from .base import Endpoint, Exchange, send_json
from .openai_server import FakeOpenAI, openai_error

__all__ = ["CHEAP", "DEAR", "IMAGE", "MODELS", "FakeTogether", "together_model"]

DEAR = "meta-llama/Llama-3.3-70B-Instruct-Turbo"
CHEAP = "Qwen/Qwen2.5-7B-Instruct-Turbo"
IMAGE = "black-forest-labs/FLUX.1-schnell"
NO_KEY = "Invalid API key provided. You can find your API key at https://api.together.xyz/settings/api-keys."


def together_model(
    id: str, *, type: str = "chat", context_length: int | None = 131072, input: float = 0.0, output: float = 0.0
) -> dict[str, Any]:
    """One entry of Together's listing, every documented field present."""
    organization, _, name = id.partition("/")
    return {
        "id": id,
        "object": "model",
        "created": 1733875200,
        "type": type,
        "running": False,
        "display_name": name.replace("-", " "),
        "organization": organization,
        "link": f"https://huggingface.co/{id}",
        "license": "other",
        "context_length": context_length,
        "config": {"chat_template": None, "stop": ["<|eot_id|>"], "bos_token": None, "eos_token": None},
        "pricing": {"hourly": 0, "input": input, "output": output, "base": 0, "finetune": 0},
    }


# Made-up rates in the listing's units, chosen so a test can tell them apart.
MODELS = [
    together_model(DEAR, input=8.0, output=20.0),
    together_model(CHEAP, context_length=32768, input=0.5, output=1.0),
    together_model("BAAI/bge-large-en-v1.5", type="embedding", context_length=512, input=0.02),
    together_model(IMAGE, type="image", context_length=None),
]


class FakeTogether(FakeOpenAI):
    """A fake Together on 127.0.0.1; `url` ends in `/v1`. Set `listing` to change what `/v1/models` lists."""

    def __init__(self, *, key: str, **options: Any) -> None:
        super().__init__(api_key=key, **options)
        self.key = key
        self.listing: list[dict[str, Any]] = copy.deepcopy(MODELS)

    def endpoints(self) -> Sequence[tuple[str, str, Endpoint]]:
        return [
            ("POST", "/v1/chat/completions", self._chat),
            ("GET", "/v1/models", self._together_models),
        ]

    async def _together_models(self, ex: Exchange) -> web.StreamResponse:
        if ex.record.headers.get("Authorization") != f"Bearer {self.key}":
            raise openai_error(401, NO_KEY, code="invalid_api_key")
        return await send_json(ex, self.listing)
