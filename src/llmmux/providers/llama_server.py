"""`type: llama_cpp_server`: llama.cpp's llama-server, reached over HTTP (often started by llmmux).

OpenAI's wire format, plus one thing llama-server offers: asked with `return_progress`, a
stream reports each batch of the prompt it has read (`prompt_progress` chunks) before the
first token. The provider swallows those chunks and reports the progress, which keeps a
long prompt's first-token wait alive (`routing.first_token`).
"""

from __future__ import annotations

from typing import ClassVar

from ..types import ChatRequest
from .openai import OpenAIProvider

PROGRESS_MARKER = b'"prompt_progress"'


def asking_for_progress(body: bytes) -> bytes:
    """An encoded chat request (a JSON object) with `return_progress` on."""
    return body[:-1] + b',"return_progress":true}'


class LlamaServerProvider(OpenAIProvider):
    progress_marker: ClassVar[bytes | None] = PROGRESS_MARKER

    def encode(self, request: ChatRequest, model: str, *, stream: bool) -> bytes:
        body = super().encode(request, model, stream=stream)
        return asking_for_progress(body) if stream else body
