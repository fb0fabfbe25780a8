"""The leak test: plant distinctive secrets, drive every door, then search every byte that left the gateway.

Secrets: the master key, three provider keys (OpenAI-compatible behind a proxy that echoes
every request header in its errors, Anthropic, Ollama Cloud), and the virtual keys. Searched:
every response body and header, the gateway's whole stdout/stderr at debug level, the
ledger's SQLite files, /metrics, and the output of the CLI commands an operator runs.
The one place a secret may appear is where it is handed out on purpose: a new key's
creation reply, shown once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from security.served import Served
from upstreams.anthropic_server import FakeAnthropic
from upstreams.header_echo import HeaderEchoOpenAI
from upstreams.ollama_server import FakeOllama

MASTER = "sk-master-LEAKTEST-a1b2c3d4e5f6a7b8"
ALPHA_KEY = "alphaLEAKTEST-provider-9c8b7a6f5e4d"
CLAUDE_KEY = "claudeLEAKTEST-provider-1f2e3d4c5b6a"
OLLAMA_KEY = "ollamaLEAKTEST-provider-7a7b7c7d7e7f"
WRONG_KEY = "sk-llmmux-wrongLEAKTEST-00112233445566"
USER = [{"role": "user", "content": "hello"}]


def config(alpha: HeaderEchoOpenAI, claude: FakeAnthropic, ollama: FakeOllama, folder: Path) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER},
        "ledger": {"path": str(folder / "ledger.db"), "flush_interval": 0.05},
        "logging": {"format": "json", "bodies": ["gpt-a"]},
        "health_checks": {"enabled": False},
        "routing_strategy": {"max_wait_seconds": 0},  # a cooled-down provider answers at once
        "providers": {
            "alpha": {
                "type": "openai_compatible",
                "base_url": alpha.url,
                "api_key": ALPHA_KEY,
                "models": ["gpt-a", "boom-401", "boom-500"],
            },
            "claude": {
                "type": "anthropic",
                "base_url": claude.url,
                "api_key": CLAUDE_KEY,
                "models": ["claude-haiku-4-5"],
            },
            "cloud": {"type": "ollama", "base_url": ollama.url, "api_key": OLLAMA_KEY, "models": ["llama3.2:latest"]},
        },
        "routing": {"exact_matches": {"chat": {"provider": "alpha", "model": "gpt-a", "fallback": ["boom-500"]}}},
    }


class Traffic:
    """Every exchange with the gateway, as one searchable text."""

    def __init__(self, gw: Served) -> None:
        self.gw = gw
        self.seen: list[str] = []

    def call(self, method: str, path: str, key: str | None, body: Any = None, raw: bytes | None = None) -> None:
        headers = self.gw.headers(key, {"x-llmmux-capability": "code"} if path.endswith("?cap") else None)
        path = path.removesuffix("?cap")
        if raw is not None:
            headers["content-type"] = "application/json"
        try:
            response = httpx.request(
                method, self.gw.url + path, json=body if raw is None else None, content=raw, headers=headers, timeout=60
            )
        except httpx.TimeoutException:
            raise AssertionError(f"the gateway did not answer {method} {path} {body}") from None
        self.seen.append(_text(response))


def _text(response: httpx.Response) -> str:
    headers = "\n".join(f"{name}: {value}" for name, value in response.headers.items())
    return f"{response.status_code}\n{headers}\n{response.text}"


def drive(t: Traffic, keys: dict[str, str]) -> None:
    for who in (MASTER, keys["plain"], keys["narrow"], keys["admin"], WRONG_KEY, None):
        models = ("chat", "boom-401", "boom-500", "claude-haiku-4-5", "llama3.2:latest", "nope")
        for model in models if who in (MASTER, keys["narrow"]) else models[1:2]:
            t.call("POST", "/v1/chat/completions", who, {"model": model, "messages": USER})
            t.call("POST", "/v1/chat/completions", who, {"model": model, "messages": USER, "stream": True})
            if model != "boom-500":  # a 5xx on /v1/completions waits for the client to give up: see the report
                t.call("POST", "/v1/completions", who, {"model": model, "prompt": "hi"})
            t.call("POST", "/v1/embeddings", who, {"model": model, "input": "hi"})
            t.call("POST", "/v1/responses", who, {"model": model, "input": "hi"})
            t.call("POST", "/v1/messages", who, {"model": model, "max_tokens": 8, "messages": USER})
            t.call("POST", "/v1/messages", who, {"model": model, "max_tokens": 8, "messages": USER, "stream": True})
            t.call("POST", "/v1/messages/count_tokens", who, {"model": model, "messages": USER})
            t.call("POST", "/api/chat", who, {"model": model, "messages": USER})
            t.call("POST", "/api/generate", who, {"model": model, "prompt": "hi", "stream": False})
            t.call("POST", "/api/embed", who, {"model": model, "input": "hi"})
            t.call("POST", "/api/embeddings", who, {"model": model, "prompt": "hi"})
            t.call("POST", "/api/show", who, {"model": model})
            t.call("POST", "/v1/chat/completions?cap", who, {"model": model, "messages": USER})
        for path in ("/v1/models", "/v1/models/gpt-a", "/api/tags", "/api/ps", "/api/version", "/", "/health"):
            t.call("GET", path, who)
        for path in ("/health/providers", "/metrics", "/admin/keys", "/admin/models", "/admin/usage?by=key"):
            t.call("GET", path, who)
        t.call("GET", "/admin/requests?limit=500&errors=true", who)
        t.call("GET", "/admin/usage?by=upstream", who)
        t.call("POST", "/api/pull", who, {"model": "mistral:7b", "stream": False})
        t.call("POST", "/api/pull", who, {"model": "http://169.254.169.254/x", "insecure": True})
        t.call("DELETE", "/api/delete", who, {"model": "mistral:7b"})
        t.call("POST", "/v1/chat/completions", who, raw=b'{"model": "gpt-a", "messages": [')
        t.call("POST", "/admin/keys", who, {"name": 7})
        t.call("PATCH", f"/admin/keys/{keys['narrow_id']}", who, {"rpm": 1000})
        t.call("GET", "/v1/responses/resp_unknown", who)
        t.call("POST", "/admin/models/llama3.2:latest/load", who, {})


def cli(gw: Served, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "llmmux", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, **(env or {})},
    )
    return f"$ llmmux {' '.join(args)}\n{done.stdout}\n{done.stderr}"


@pytest.mark.timeout(900)  # about a minute; minutes on a loaded machine
def test_no_secret_leaves_the_gateway(tmp_path: Path) -> None:
    with (
        HeaderEchoOpenAI(api_key=ALPHA_KEY) as alpha,
        FakeAnthropic(api_key=CLAUDE_KEY) as claude,
        FakeOllama(api_key=OLLAMA_KEY) as ollama,
        Served(tmp_path, config(alpha, claude, ollama, tmp_path), MASTER, ["--log-level", "debug"]) as gw,
    ):
        made = {
            "plain": gw.key("plain"),
            "narrow": gw.key("narrow", models=["gpt-a"]),
            "admin": gw.key("admin", scopes=["admin", "metrics"]),
        }
        keys: dict[str, str] = {
            **made,
            "narrow_id": next(k["id"] for k in gw.get("/admin/keys", MASTER).json()["data"] if k["name"] == "narrow"),
        }
        created = subprocess.run(
            [sys.executable, "-m", "llmmux", "keys", "create", "-c", str(gw.config_path), "--name", "cli"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        made["cli"] = created.stdout.strip()
        traffic = Traffic(gw)
        drive(traffic, keys | {"plain": made["cli"]})
        time.sleep(0.5)  # the ledger writes in batches every 50 ms
        outputs = [
            cli(gw, "keys", "list", "-c", str(gw.config_path)),
            cli(gw, "keys", "list", "-c", str(gw.config_path), "--json"),
            cli(gw, "usage", "-c", str(gw.config_path), "--by", "key"),
            cli(gw, "usage", "-c", str(gw.config_path), "--by", "upstream", "--json"),
            cli(gw, "validate", "-c", str(gw.config_path)),
            cli(gw, "route", "-c", str(gw.config_path), "chat"),
            cli(gw, "providers", "list", "-c", str(gw.config_path)),
            cli(gw, "health", "--url", gw.url, "--json", env={"LLMMUX_API_KEY": MASTER}),
            cli(gw, "health", "-c", str(gw.config_path), "--json"),
            cli(gw, "ps", "--url", gw.url),
        ]
    assert len(alpha.requests) > 20 and claude.requests and ollama.requests  # the upstreams were used
    ledger = b"".join(p.read_bytes() for p in tmp_path.glob("ledger.db*"))
    assert b"proxy rejected token" in ledger  # failed attempts are recorded, with their (masked) messages
    searched = {
        "responses": "\n".join(traffic.seen),
        "gateway output": gw.output,
        "ledger": ledger.decode("utf-8", "replace"),
        "CLI output": "\n".join(outputs),
    }
    assert "proxy rejected token" in searched["responses"]  # the echoing proxy did echo
    assert '"logger":"llmmux.requests"' in searched["gateway output"]
    secrets = {"master key": MASTER, "alpha key": ALPHA_KEY, "claude key": CLAUDE_KEY, "ollama key": OLLAMA_KEY}
    secrets |= {"rejected key": WRONG_KEY} | {f"virtual key {n}": s for n, s in made.items()}
    for where, text in searched.items():
        for what, secret in secrets.items():
            assert secret not in text, f"the {what} appears in the {where}"
            assert secret[-12:] not in text, f"the end of the {what} appears in the {where}"
