"""A fake AWS Bedrock (runtime and control plane) speaking the Converse API's exact wire format.

Serves `POST /model/{modelId}/converse`, `POST /model/{modelId}/converse-stream` (AWS
binary event stream frames), `POST /model/{modelId}/invoke` for the Titan Text Embeddings
and Cohere Embed bodies (vectors from `fake_embedding`) and `GET /foundation-models`. Every request must be signed
with SigV4 for the configured credentials, region and service `bedrock` (checked by the
independent verifier in `sigv4`), or carry a Bedrock API key as a bearer token. Errors
are AWS's: the exception name in `x-amzn-ErrorType`, `{"message": ...}` as the body.

Answers are derived from the request as `FakeOpenAI` derives them: content is
`echo_prefix` + the last user text, a token is a whitespace-separated word.
"""

from __future__ import annotations

import itertools
import json
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from .base import (
    Endpoint,
    Exchange,
    FakeUpstream,
    HttpError,
    RecordedRequest,
    send_json,
    send_sse,
)
from .openai_server import count_tokens, fake_embedding, split_text
from .replay import ReplayMixin
from .sigv4 import AwsCredentials, SignatureRejected, verify

__all__ = ["EXCEPTIONS", "FakeBedrock", "bedrock_error", "event_frame", "exception_frame"]

STREAM_TYPE = "application/vnd.amazon.eventstream"
# AWS pads event payloads with a `p` field so their sizes do not reveal the text.
PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456"
EXCEPTIONS = {
    400: ("ValidationException", "Malformed input request, please reformat your input and try again."),
    403: ("AccessDeniedException", "You don't have access to the model with the specified model ID."),
    404: ("ResourceNotFoundException", "Could not resolve the foundation model from the provided model identifier."),
    408: ("ModelTimeoutException", "Model has timed out in processing the request. Try your request again."),
    424: (
        "ModelErrorException",
        "The system encountered an unexpected error during processing. Try your request again.",
    ),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error while processing the request."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}
DEFAULT_MODELS = (
    "anthropic.claude-3-haiku-20240307-v1:0",
    "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
    "meta.llama3-70b-instruct-v1:0",
    "amazon.titan-embed-text-v2:0",
    "cohere.embed-english-v3",
)
TITAN_DIMENSIONS = (1024, 512, 256)  # Titan Text Embeddings V2's accepted sizes, the default first
COHERE_DIMENSIONS = 1024
COHERE_BATCH_LIMIT = 96
COHERE_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")


def bedrock_error(status: int, message: str | None = None, error_type: str | None = None) -> HttpError:
    """An AWS error reply: `{"message": ...}` with the exception named in `x-amzn-ErrorType`."""
    default_type, default_message = EXCEPTIONS.get(status, ("InternalServerException", f"HTTP {status}"))
    kind = error_type or default_type
    return HttpError(
        status,
        {"message": message or default_message},
        {"x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"},
    )


def _frame(headers: Mapping[str, str], payload: bytes) -> bytes:
    """AWS event stream framing, written out here independently of the gateway's codec."""
    encoded = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack(">II", 16 + len(encoded) + len(payload), len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event_frame(event_type: str, payload: Mapping[str, Any]) -> bytes:
    body = json.dumps({**payload, "p": PADDING}, separators=(",", ":")).encode()
    return _frame({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}, body)


def exception_frame(exception_type: str, message: str) -> bytes:
    body = json.dumps({"message": message}).encode()
    return _frame(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}, body
    )


class FakeBedrock(ReplayMixin, FakeUpstream):
    """A fake Bedrock on 127.0.0.1 for `region`; `url` is the runtime endpoint (and the control plane)."""

    def __init__(
        self,
        *,
        credentials: Sequence[AwsCredentials] = (),
        bearer_token: str | None = None,
        region: str = "us-east-1",
        models: Sequence[str] | None = None,
        stream_chunks: int = 3,
        echo_prefix: str = "echo: ",
    ) -> None:
        super().__init__()
        self.credentials = {c.access_key: c for c in credentials}
        self.bearer_token = bearer_token
        self.region = region
        self.models = tuple(models) if models is not None else DEFAULT_MODELS
        self.stream_chunks = stream_chunks
        self.echo_prefix = echo_prefix

    def endpoints(self) -> Sequence[tuple[str, str, Endpoint]]:
        return [
            ("POST", "/model/{model:.+}/converse", self._converse),
            ("POST", "/model/{model:.+}/converse-stream", self._converse_stream),
            ("POST", "/model/{model:.+}/invoke", self._invoke),
            ("GET", "/foundation-models", self._list_models),
        ]

    def error_payload(self, status: int, message: str | None = None) -> Mapping[str, Any]:
        return bedrock_error(status, message).body

    def response_headers(self, record: RecordedRequest) -> Mapping[str, str]:
        return {"x-amzn-RequestId": f"00000000-0000-4000-8000-{record.seq:012d}"}

    # -- endpoints ---------------------------------------------------------

    async def _converse(self, ex: Exchange) -> web.StreamResponse:
        _model, body = self._checked(ex)
        blocks, stop = self._answer(body, ex)
        reply = {
            "output": {"message": {"role": "assistant", "content": blocks}},
            "stopReason": stop,
            "usage": self._usage(body, blocks, ex),
            "metrics": {"latencyMs": 321},
        }
        return await send_json(ex, reply)

    async def _converse_stream(self, ex: Exchange) -> web.StreamResponse:
        _model, body = self._checked(ex)
        blocks, stop = self._answer(body, ex)
        frames = [event_frame("messageStart", {"role": "assistant"})]
        for index, block in enumerate(blocks):
            frames += self._block_frames(index, block, ex.reply.chunks or self.stream_chunks)
        frames.append(event_frame("messageStop", {"stopReason": stop}))
        frames.append(event_frame("metadata", {"usage": self._usage(body, blocks, ex), "metrics": {"latencyMs": 321}}))
        return await send_sse(ex, frames, headers={"Content-Type": STREAM_TYPE})

    async def _invoke(self, ex: Exchange) -> web.StreamResponse:
        """InvokeModel for the embedding models only: Titan's and Cohere's native bodies."""
        self._authenticate(ex)
        model, body = ex.request.match_info["model"], ex.record.json
        if model not in self.models:
            raise bedrock_error(400, "The provided model identifier is invalid.")
        if not isinstance(body, dict):
            raise bedrock_error(400)
        if model.startswith("amazon.titan-embed"):
            return await send_json(ex, _titan(body))
        if model.startswith("cohere.embed-"):
            return await send_json(ex, _cohere(body, ex.record.seq))
        raise bedrock_error(400, "The fake serves InvokeModel for embedding models only.")

    async def _list_models(self, ex: Exchange) -> web.StreamResponse:
        self._authenticate(ex)
        modality = ex.request.query.get("byOutputModality")
        summaries = [self._model_json(m) for m in self.models]
        summaries = [s for s in summaries if modality is None or modality in s["outputModalities"]]
        return await send_json(ex, {"modelSummaries": summaries})

    # -- checks, in AWS's order -------------------------------------------

    def _checked(self, ex: Exchange) -> tuple[str, dict[str, Any]]:
        self._authenticate(ex)
        model = ex.request.match_info["model"]
        if model not in self.models:
            raise bedrock_error(400, "The provided model identifier is invalid.")
        body = ex.record.json
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            raise bedrock_error(
                400,
                "Malformed input request: #: required key [messages] not found, please reformat "
                "your input and try again.",
            )
        self._check_turns(body)
        return model, body

    def _authenticate(self, ex: Exchange) -> None:
        headers = ex.record.headers
        if self.bearer_token is not None and headers.get("Authorization") == f"Bearer {self.bearer_token}":
            return
        raw_path, _, query = ex.request.raw_path.partition("?")
        try:
            verify(
                ex.request.method, raw_path, query, headers, ex.record.body, self.credentials, self.region, "bedrock"
            )
        except SignatureRejected as exc:
            raise bedrock_error(403, exc.message, exc.error_type) from None

    @staticmethod
    def _check_turns(body: Mapping[str, Any]) -> None:
        roles = [m.get("role") for m in body["messages"]]
        if roles[0] != "user":
            raise bedrock_error(
                400,
                "A conversation must start with a user message. Try again with a conversation "
                "that starts with a user message.",
            )
        if any(a == b for a, b in itertools.pairwise(roles)) or not set(roles) <= {"user", "assistant"}:
            raise bedrock_error(
                400,
                "A conversation must alternate between user and assistant roles. Make sure the "
                "conversation alternates between user and assistant roles and try again.",
            )
        uses_tools = any("toolUse" in b or "toolResult" in b for m in body["messages"] for b in m.get("content", ()))
        if uses_tools and not body.get("toolConfig"):
            raise bedrock_error(
                400, "The toolConfig field must be defined when using toolUse and toolResult content blocks."
            )

    # -- answers -----------------------------------------------------------

    def _answer(self, body: Mapping[str, Any], ex: Exchange) -> tuple[list[dict[str, Any]], str]:
        calls = ex.reply.tool_calls if body.get("toolConfig") else ()
        blocks: list[dict[str, Any]] = []
        if ex.reply.content is not None or not calls:
            text = ex.reply.content if ex.reply.content is not None else self.echo_prefix + _last_user_text(body)
            blocks.append({"text": text})
        for i, call in enumerate(calls):
            blocks.append(
                {
                    "toolUse": {
                        "toolUseId": call.id or f"tooluse_fake{ex.record.seq:04d}x{i}",
                        "name": call.name,
                        "input": json.loads(call.arguments),
                    }
                }
            )
        return blocks, ex.reply.finish_reason or ("tool_use" if calls else "end_turn")

    def _usage(self, body: Mapping[str, Any], blocks: list[dict[str, Any]], ex: Exchange) -> Mapping[str, Any]:
        if ex.reply.usage is not None:
            return ex.reply.usage
        prompt = sum(count_tokens(b.get("text", "")) for m in body["messages"] for b in m["content"])
        prompt += sum(count_tokens(s.get("text", "")) for s in body.get("system", ()))
        output = sum(
            count_tokens(b["text"]) if "text" in b else count_tokens(json.dumps(b["toolUse"]["input"])) for b in blocks
        )
        return {"inputTokens": prompt, "outputTokens": output, "totalTokens": prompt + output}

    @staticmethod
    def _block_frames(index: int, block: Mapping[str, Any], parts: int) -> list[bytes]:
        if "text" in block:
            deltas = [{"text": piece} for piece in split_text(block["text"], parts)]
            frames = []
        else:
            use = block["toolUse"]
            frames = [
                event_frame(
                    "contentBlockStart",
                    {
                        "start": {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}},
                        "contentBlockIndex": index,
                    },
                )
            ]
            deltas = [{"toolUse": {"input": piece}} for piece in split_text(json.dumps(use["input"]), parts)]
        frames += [event_frame("contentBlockDelta", {"delta": d, "contentBlockIndex": index}) for d in deltas]
        return frames + [event_frame("contentBlockStop", {"contentBlockIndex": index})]

    @staticmethod
    def _model_json(model: str) -> dict[str, Any]:
        provider = model.split(".")[-2] if model.count(".") > 1 else model.split(".")[0]
        output = ["EMBEDDING"] if "embed" in model else ["TEXT"]
        return {
            "modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{model}",
            "modelId": model,
            "modelName": model,
            "providerName": provider.capitalize(),
            "inputModalities": ["TEXT"],
            "outputModalities": output,
            "responseStreamingSupported": True,
            "customizationsSupported": [],
            "inferenceTypesSupported": ["ON_DEMAND"],
            "modelLifecycle": {"status": "ACTIVE"},
        }


def _titan(body: Mapping[str, Any]) -> dict[str, Any]:
    text, size = body.get("inputText"), body.get("dimensions", TITAN_DIMENSIONS[0])
    if not isinstance(text, str) or set(body) - {"inputText", "dimensions", "normalize", "embeddingTypes"}:
        raise bedrock_error(
            400,
            "Malformed input request: #: required key [inputText] not found, please reformat your input and try again.",
        )
    if size not in TITAN_DIMENSIONS:
        raise bedrock_error(
            400,
            f"Malformed input request: #/dimensions: {size} is not a valid enum value, please "
            "reformat your input and try again.",
        )
    vector = fake_embedding(text, size)
    return {"embedding": vector, "embeddingsByType": {"float": vector}, "inputTextTokenCount": count_tokens(text)}


def _cohere(body: Mapping[str, Any], seq: int) -> dict[str, Any]:
    texts = body.get("texts")
    if not isinstance(texts, list) or body.get("input_type") not in COHERE_INPUT_TYPES:
        raise bedrock_error(
            400,
            "Malformed input request: #: required key [input_type] not found, please reformat "
            "your input and try again.",
        )
    if len(texts) > COHERE_BATCH_LIMIT:
        raise bedrock_error(
            400,
            f"Malformed input request: #/texts: expected maximum item count: {COHERE_BATCH_LIMIT}, "
            f"found: {len(texts)}, please reformat your input and try again.",
        )
    return {
        "id": f"fake-embed-{seq:06d}",
        "embeddings": [fake_embedding(t, COHERE_DIMENSIONS) for t in texts],
        "response_type": "embeddings_floats",
        "texts": texts,
    }


def _last_user_text(body: Mapping[str, Any]) -> str:
    texts = [b["text"] for m in body["messages"] if m["role"] == "user" for b in m["content"] if "text" in b]
    return texts[-1] if texts else ""
