"""The Ollama-compatible surface: /api/chat, /api/generate, /api/tags, /api/show, /api/ps, /api/embed.

Any Ollama client (Open WebUI, the `ollama` library, editors) pointed at llmmux sees every
model its key may use. Model management (/api/pull, /api/delete) is forwarded to an Ollama
backend when one is configured, for the admin only (the master key or an admin-scoped key).
Every call to a backend goes through the router (`Router.call_provider`): its health and
limits apply, and a pull or delete is recorded like a request.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from ..bounds import check_model_name
from ..errors import InvalidRequest, LLMMuxError, ModelNotFound, NotSupported
from ..events import ClientApi
from ..providers.ollama import OllamaProvider
from ..router import Router
from ..routing import ChatStream
from ..types import EmbeddingRequest
from ..wire import ollama_frontdoor as wire
from . import access, admin_local
from .http import JSON_HEADERS, Request, Send, header_list, send_bytes
from .streaming import routing_headers, send_answer, send_stream

NDJSON_HEADERS = [(b"content-type", b"application/x-ndjson")]
API_VERSION = "0.12.0"
"""The Ollama API level llmmux speaks, reported when no Ollama backend is configured."""

_encode = msgspec.json.encode


async def chat(router: Router, request: Request, send: Send) -> None:
    await _answer(router, request, send, wire.decode_chat_request(await request.json()), generate=False)


async def generate(router: Router, request: Request, send: Send) -> None:
    await _answer(router, request, send, wire.decode_generate_request(await request.json()), generate=True)


async def _answer(router: Router, request: Request, send: Send, chat: Any, *, generate: bool) -> None:
    context = request.context(ClientApi.OLLAMA)
    timing = wire.Timing()
    if not chat.stream:
        encode = wire.encode_generate_response if generate else wire.encode_chat_response
        await send_answer(router, chat, context, request, send, lambda done: encode(done.response, done.public, timing))
        return
    stream = await router.open_stream(chat, context=context)
    await _send_ndjson(stream, wire.StreamEncoder(stream.public, generate=generate, timing=timing), request, send)


async def _send_ndjson(stream: ChatStream, encoder: wire.StreamEncoder, request: Request, send: Send) -> None:
    # Ollama ends a failed stream with an error line.
    await send_stream(
        stream,
        request,
        send,
        NDJSON_HEADERS,
        encode=encoder.encode,
        finish=encoder.close,
        fail=lambda exc: wire.encode_error(exc) + b"\n",
    )


async def tags(router: Router, request: Request, send: Send) -> None:
    names = access.visible_names(router, request)
    await send_bytes(send, 200, _encode({"models": [_tag(router, name) for name in names]}), JSON_HEADERS)


def _tag(router: Router, name: str) -> dict[str, Any]:
    candidate = router.table.routes()[name].candidates[0]
    entry = next((m for m in candidate.provider.config.models if m.name == candidate.model), None)
    return {
        "name": name,
        "model": name,
        "modified_at": _iso(time.time()),
        "size": int(entry.extra.get("size_bytes", 0)) if entry else 0,
        "digest": "",
        "details": _details(entry),
    }


def _details(entry: Any) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": str(entry.extra.get("format", "gguf")) if entry else "gguf",
        "family": str(entry.extra.get("family", "")) if entry else "",
        "families": None,
        "parameter_size": (entry.size or "") if entry else "",
        "quantization_level": str(entry.extra.get("quantization", "")) if entry else "",
    }


async def show(router: Router, request: Request, send: Send) -> None:
    body = await request.json()
    name = body.get("model") or body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str):
        raise InvalidRequest("'model' is required.", param="model")
    check_model_name(name)
    candidate = access.visible_route(router, request, name).candidates[0]
    provider = candidate.provider
    if isinstance(provider, OllamaProvider):
        # The backend knows its model best: template, parameters, model_info.
        shown = await router.call_provider(provider, lambda p: p.show(candidate.model), model=candidate.model)
        await send_bytes(send, 200, shown, JSON_HEADERS)
        return
    entry = next((m for m in candidate.provider.config.models if m.name == candidate.model), None)
    info: dict[str, Any] = {"general.architecture": "llmmux", "general.basename": candidate.model}
    if entry is not None and entry.context_length:
        info["llmmux.context_length"] = entry.context_length
    reply = {
        "modelfile": "",
        "parameters": "",
        "template": "",
        "details": _details(entry),
        "model_info": info,
        "capabilities": ["completion", "tools"],
        "modified_at": _iso(time.time()),
    }
    await send_bytes(send, 200, _encode(reply), JSON_HEADERS)


async def ps(router: Router, request: Request, send: Send) -> None:
    """Models loaded in llmmux itself and on the Ollama backends, as each reports them."""
    loaded: list[Any] = admin_local.loaded_ollama_rows(router)
    for provider in _ollama_providers(router):
        try:
            loaded.extend(await router.call_provider(provider, OllamaProvider.running))
        except LLMMuxError:
            continue  # a backend that is down, or at its limits, has nothing to show; the others' listing stands
    if access.restriction(request) is not None:
        loaded = [row for row in loaded if access.may_see_model(router, request, str(row.get("name", "")))]
    await send_bytes(send, 200, _encode({"models": loaded}), JSON_HEADERS)


async def embed(router: Router, request: Request, send: Send) -> None:
    body = await request.json()
    started = time.perf_counter_ns()
    embedding = _embedding_request(body, "input")
    done = await router.embed(embedding, context=request.context(ClientApi.OLLAMA))
    usage = done.response.usage
    reply = {
        "model": done.public,
        "embeddings": done.response.vectors,
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": 0,
        "prompt_eval_count": usage.prompt_tokens if usage else 0,
    }
    await send_bytes(send, 200, _encode(reply), header_list(JSON_HEADERS, routing_headers(done, request.request_id)))


async def embeddings(router: Router, request: Request, send: Send) -> None:
    """The older single-text endpoint: `{"model", "prompt"}` in, `{"embedding": [...]}` out."""
    embedding = _embedding_request(await request.json(), "prompt")
    done = await router.embed(embedding, context=request.context(ClientApi.OLLAMA))
    await send_bytes(send, 200, _encode({"embedding": done.response.vectors[0]}), JSON_HEADERS)


def _embedding_request(body: Any, field: str) -> EmbeddingRequest:
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        raise InvalidRequest("'model' is required.", param="model")
    value = body.get(field)
    inputs = [value] if isinstance(value, str) else value
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) and i for i in inputs):
        raise InvalidRequest(f"'{field}' must be a non-empty string or list of strings.", param=field)
    extra = {k: body[k] for k in ("truncate", "keep_alive", "options") if k in body}
    return EmbeddingRequest(model=body["model"], inputs=inputs, dimensions=body.get("dimensions"), extra=extra)


async def version(router: Router, request: Request, send: Send) -> None:
    providers = _ollama_providers(router)
    found = API_VERSION
    if providers:
        try:
            found = await router.call_provider(providers[0], OllamaProvider.version)
        except LLMMuxError:
            pass
    await send_bytes(send, 200, _encode({"version": found}), JSON_HEADERS)


async def pull(router: Router, request: Request, send: Send) -> None:
    """Admin-only (the app checks); a URL for a name is refused: the gateway never fetches where a client says."""
    body = await request.json()
    provider, model = _management_target(router, body)
    if "://" in model:
        raise InvalidRequest(
            "Pull takes a model name such as 'llama3.2' or 'registry.example.com/team/model:tag', not a URL.",
            param="model",
        )
    insecure = bool(body.get("insecure"))
    context = request.context(ClientApi.OLLAMA)  # a pull is recorded like a request: ledger, metrics, logs
    if body.get("stream") is False:

        async def pulled(p: OllamaProvider) -> Any:
            async for progress in p.pull(model, insecure=insecure):
                last = progress
            return last

        last = await router.call_provider(provider, pulled, model=model, context=context, record=True)
        await send_bytes(send, 200, _encode(last), JSON_HEADERS)
        return
    await send({"type": "http.response.start", "status": 200, "headers": NDJSON_HEADERS})

    async def streamed(p: OllamaProvider) -> None:
        async for progress in p.pull(model, insecure=insecure):
            await send({"type": "http.response.body", "body": _encode(progress) + b"\n", "more_body": True})

    try:
        await router.call_provider(provider, streamed, model=model, context=context, record=True)
    except LLMMuxError as exc:
        body = request.masker.scrub_bytes(wire.encode_error(exc) + b"\n")
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def delete(router: Router, request: Request, send: Send) -> None:
    provider, model = _management_target(router, await request.json())
    context = request.context(ClientApi.OLLAMA)
    await router.call_provider(provider, lambda p: p.delete(model), model=model, context=context, record=True)
    await send_bytes(send, 200, b"", [])


def _management_target(router: Router, body: Any) -> tuple[OllamaProvider, str]:
    """The Ollama backend a pull or delete goes to: the one the model routes to, else the only one."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    name = body.get("model") or body.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("'model' is required.", param="model")
    check_model_name(name)
    try:
        for candidate in router.route(name).candidates:
            if isinstance(candidate.provider, OllamaProvider):
                return candidate.provider, candidate.model
    except ModelNotFound:
        pass
    providers = _ollama_providers(router)
    if not providers:
        raise NotSupported("Model management needs an Ollama backend; none is configured.")
    if len(providers) > 1:
        names = ", ".join(p.name for p in providers)
        raise InvalidRequest(f"Several Ollama backends ({names}) could take '{name}': route it in the config first.")
    return providers[0], name


def _ollama_providers(router: Router) -> list[OllamaProvider]:
    return [p for p in router.providers.values() if isinstance(p, OllamaProvider)]


def render_error(error: LLMMuxError) -> tuple[int, bytes]:
    return error.status, wire.encode_error(error)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


ROOT_BODY = b"Ollama is running"


async def root(router: Router, request: Request, send: Send) -> None:
    """Ollama clients probe `/` for this exact text before anything else."""
    await send_bytes(send, 200, ROOT_BODY, [(b"content-type", b"text/plain; charset=utf-8")])
