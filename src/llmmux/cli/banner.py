"""What `llmmux serve` prints when it starts: where to point each client, what it serves, from
where, where the ledger is, and one request to try.

    llmmux: listening on http://127.0.0.1:4000 (llmmux 0.1.0, 1 worker)
    llmmux:   OpenAI clients     base_url http://127.0.0.1:4000/v1
    llmmux:   Anthropic clients  ANTHROPIC_BASE_URL=http://127.0.0.1:4000
    llmmux:   Ollama clients     OLLAMA_HOST=http://127.0.0.1:4000
    llmmux:   models (1)         smollm2-135m  <- local: llama_cpp, in-process (/path/to/model.gguf)
    llmmux:   ledger             /home/me/.local/share/llmmux/llmmux.db
    llmmux:   try                curl http://127.0.0.1:4000/v1/chat/completions -H 'content-type: application/json' -d '...'

Every line starts with `llmmux: `, like the gateway's other messages for people, so a log
collector reading the JSON log lines on the same stream can tell them apart.
"""

from __future__ import annotations

import json
import shlex
from urllib.parse import urlsplit, urlunsplit

from .. import __version__
from ..config.model import Config, ProviderConfig
from ..router import Router

MODELS_SHOWN = 12
LABEL_WIDTH = 18
MASTER_KEY_ENV = "LLMMUX_MASTER_KEY"
PREFIX = "llmmux: "


def startup_lines(config: Config, router: Router, host: str, port: int, workers: int, ledger: str | None) -> list[str]:
    """The lines printed (to stderr) once the config is loaded and before the server starts."""
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    root = f"http://{shown_host}:{port}"
    lines = [
        f"listening on http://{host}:{port} (llmmux {__version__}, {workers} worker{'s' if workers != 1 else ''})",
        _row("OpenAI clients", f"base_url {root}/v1"),
        _row("Anthropic clients", f"ANTHROPIC_BASE_URL={root}"),
        _row("Ollama clients", f"OLLAMA_HOST={root}"),
    ]
    routes = {name: route for name, route in router.table.routes().items() if route.source != "provider/model name"}
    names = list(routes)
    label = f"models ({len(names)})"
    width = max((len(name) for name in names[:MODELS_SHOWN]), default=0)
    for index, name in enumerate(names[:MODELS_SHOWN]):
        first = routes[name].candidates[0] if routes[name].candidates else None
        where = _origin(config.providers.get(first.provider.name)) if first is not None else "no candidate"
        upstream = f" as {first.model}" if first is not None and first.model != name else ""
        lines.append(_row(label if index == 0 else "", f"{name:<{width}}  <- {where}{upstream}"))
    if len(names) > MODELS_SHOWN:
        lines.append(_row("", f"and {len(names) - MODELS_SHOWN} more: `llmmux models` lists them all"))
    if router.skipped:
        lines.append(_row("not routed", ", ".join(f"{n} ({why})" for n, why in router.skipped.items())))
    lines.append(_row("ledger", ledger or "off"))
    if names:
        lines.append(_row("try", _curl(root, names[0], bool(config.server.master_key))))
    return [PREFIX + line for line in lines]


def _row(label: str, text: str) -> str:
    return f"  {label:<{LABEL_WIDTH}} {text}"


def _origin(provider: ProviderConfig | None) -> str:
    """Where a provider's models come from, without credentials."""
    if provider is None:
        return "unknown provider"
    if provider.type in ("llama_cpp", "mlx"):
        paths = [str(m.extra.get("path", "")) for m in provider.models if m.extra.get("path")]
        where = f" ({paths[0]})" if len(paths) == 1 else ""
        return f"{provider.name}: {provider.type}, in-process{where}"
    url = _without_credentials(provider.base_url)
    return f"{provider.name}: {provider.type}" + (f" at {url}" if url else "")


def _without_credentials(url: str) -> str:
    """`https://user:secret@host/v1` → `https://host/v1`: a URL may carry a password."""
    if "@" not in url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _curl(root: str, model: str, keyed: bool) -> str:
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": "hi"}]}, ensure_ascii=False, separators=(",", ":")
    )
    # The key itself is never printed: the example reads it from the environment.
    auth = f' -H "authorization: Bearer ${MASTER_KEY_ENV}"' if keyed else ""
    return f"curl {root}/v1/chat/completions -H 'content-type: application/json'{auth} -d {shlex.quote(body)}"
