"""Status and control of local models: what is loaded, and load/unload on request.

    GET  /admin/models                    every local model (in-process pools and managed
                                          servers): state, memory, in flight, queued, times
    POST /admin/models/{name}/load        load it now; body (optional): {"keep_alive": "10m", "provider": "local"}
    POST /admin/models/{name}/unload      unload it once its requests in flight finish
    GET  /api/ps                          the loaded ones in Ollama's `/api/ps` shape

Behind the master key like every other path. Models are found on the router's providers
that implement `llmmux.local.runtime.LocalRuntime`.
"""

from __future__ import annotations

import datetime
from typing import Any

import msgspec

from ..config.units import parse_duration
from ..errors import InvalidRequest, ModelNotFound
from ..local.runtime import LocalRuntime
from ..router import Router
from .http import JSON_HEADERS, Request, Send, send_bytes

PREFIX = "/admin/models/"
ACTIONS = ("load", "unload")


def runtimes(router: Router) -> list[LocalRuntime]:
    return [p for p in router.providers.values() if isinstance(p, LocalRuntime)]


def local_models(router: Router) -> list[dict[str, Any]]:
    """One row per local model across every provider that runs models."""
    return [row for runtime in runtimes(router) for row in runtime.runtime_status()]


async def list_local_models(router: Router, request: Request, send: Send) -> None:
    body = msgspec.json.encode({"object": "list", "data": local_models(router)})
    await send_bytes(send, 200, body, JSON_HEADERS)


async def model_action(router: Router, request: Request, send: Send) -> None:
    """POST /admin/models/{name}/load or /unload."""
    result = await run_model_action(router, request)
    await send_bytes(send, 200, msgspec.json.encode(result), JSON_HEADERS)


async def run_model_action(router: Router, request: Request) -> dict[str, Any]:
    """Load or unload the model the path names; what it did, and the model's status after."""
    name, _, action = request.path.removeprefix(PREFIX).rpartition("/")
    if action not in ACTIONS or not name:
        raise InvalidRequest(f"Expected POST {PREFIX}{{model}}/load or {PREFIX}{{model}}/unload.")
    options = await _options(request)
    runtime = _runtime_for(router, name, options.get("provider"))
    if action == "load":
        await runtime.load_model(name, _keep_alive(options))
        result: dict[str, Any] = {"model": name, "provider": runtime.name, "loaded": True}
    else:
        result = {"model": name, "provider": runtime.name, "unloaded": await runtime.unload_model(name)}
    rows = [row for row in runtime.runtime_status() if row["model"] == name]
    result["status"] = rows[0] if rows else None
    return result


def loaded_ollama_rows(router: Router) -> list[dict[str, Any]]:
    """The models loaded in llmmux itself, as Ollama's /api/ps lists them."""
    return [_ollama_row(row) for row in local_models(router) if row["state"] in ("ready", "draining", "loading")]


def _ollama_row(row: dict[str, Any]) -> dict[str, Any]:
    family = row.get("family") or ""
    return {
        "name": row["model"],
        "model": row["model"],
        "size": row.get("memory") or 0,
        "digest": "",
        "details": {
            "parent_model": "",
            "format": "gguf" if row["kind"] == "in-process" else "",
            "family": family,
            "families": [family] if family else None,
            "parameter_size": row.get("parameter_size") or "",
            "quantization_level": row.get("quantization") or "",
        },
        "expires_at": _rfc3339(row.get("expires_at")),
        "size_vram": 0,  # the CPU engines hold nothing in VRAM; offload is not reported by them
        "context_length": row.get("context_length") or 0,
    }


def _rfc3339(timestamp: float | None) -> str:
    if timestamp is None:  # pinned: Ollama shows a far-future time for keep_alive -1
        return "2318-08-07T00:00:00Z"
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat().replace("+00:00", "Z")


async def _options(request: Request) -> dict[str, Any]:
    data = await request.body()
    if not data.strip():
        return {}
    try:
        options = msgspec.json.decode(data)
    except msgspec.DecodeError:
        raise InvalidRequest('The body must be JSON, such as {"keep_alive": "10m"}.') from None
    if not isinstance(options, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return options


def _keep_alive(options: dict[str, Any]) -> float | None:
    if options.get("keep_alive") is None:
        return None
    try:
        return parse_duration(options["keep_alive"])
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="keep_alive") from None


def _runtime_for(router: Router, model: str, provider: Any) -> LocalRuntime:
    candidates = [r for r in runtimes(router) if r.serves(model) and (provider is None or r.name == provider)]
    if not candidates:
        known = sorted({row["model"] for row in local_models(router)})
        raise ModelNotFound(model, [n for n in known if model.lower() in n.lower()][:3])
    if len(candidates) > 1:
        names = ", ".join(r.name for r in candidates)
        raise InvalidRequest(
            f"Model '{model}' is served by several providers ({names}); name one with {{\"provider\": ...}}.",
            param="provider",
        )
    return candidates[0]
