"""The local-model surface end to end: the openai SDK against App with SmolLM2, and the
admin endpoints, /api/ps and `llmmux ps` on a running server."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from click.testing import CliRunner

from llmmux.cli import main
from llmmux.router import Router
from llmmux.server.app import App
from local.fixtures import smollm2_path, tiny_gguf  # noqa: F401  (fixtures)
from local.serving import serving


def request(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.load(exc)


def test_openai_sdk_chats_with_the_embedded_smollm2(smollm2_path: Path) -> None:  # noqa: F811
    config = {
        "providers": {
            "local": {
                "type": "llama_cpp",
                "models": [{"name": "smollm2-135m", "path": str(smollm2_path), "n_ctx": 512, "n_threads": 1}],
            }
        }
    }
    with serving(App(Router.from_config(config))) as base, openai.OpenAI(base_url=base + "/v1", api_key="x") as client:
        reply = client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=8,
            temperature=0,
        )
        assert reply.model == "smollm2-135m" and reply.choices[0].message.content
        assert reply.usage is not None and reply.usage.completion_tokens <= 8 and reply.usage.prompt_tokens > 10
        stream = client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == reply.choices[0].message.content  # greedy: the same words either way
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == reply.usage.completion_tokens
        schema = {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
            "additionalProperties": False,
        }
        structured = client.chat.completions.create(
            model="smollm2-135m",
            messages=[{"role": "user", "content": "Is Paris in France?"}],
            max_tokens=24,
            temperature=0,
            response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}},
        )
        assert isinstance(json.loads(structured.choices[0].message.content or "")["ok"], bool)


@pytest.fixture
def server(tiny_gguf: Path) -> Iterator[str]:  # noqa: F811
    config = {
        "providers": {
            "local": {
                "type": "llama_cpp",
                "n_threads": 1,
                "keep_alive": "10m",
                "models": [
                    {"name": "tiny", "path": str(tiny_gguf)},
                    {"name": "other", "path": str(tiny_gguf), "keep_alive": -1},
                ],
            }
        }
    }
    with serving(App(Router.from_config(config))) as base:
        yield base


def test_load_list_and_unload_local_models(server: str) -> None:
    status, listing = request(server + "/admin/models")
    assert status == 200 and {row["model"]: row["state"] for row in listing["data"]} == {
        "tiny": "unloaded",
        "other": "unloaded",
    }
    status, loaded = request(server + "/admin/models/tiny/load", "POST", {"keep_alive": "1h"})
    assert status == 200 and loaded["loaded"] and loaded["status"]["state"] == "ready"
    row = loaded["status"]
    assert row["keep_alive"] == 3600 and row["in_flight"] == 0 and row["memory"] > row["context_length"]
    assert (row["family"], row["quantization"], row["engine"]) == ("llama", "F32", "xllamacpp")
    status, ps = request(server + "/api/ps")
    assert status == 200 and [m["name"] for m in ps["models"]] == ["tiny"]
    model = ps["models"][0]
    assert model["details"]["format"] == "gguf" and model["expires_at"].endswith("Z")
    assert model["size"] == row["memory"] and model["context_length"] == 2048
    status, unloaded = request(server + "/admin/models/tiny/unload", "POST")
    assert status == 200 and unloaded["unloaded"] and unloaded["status"]["state"] == "unloaded"
    status, again = request(server + "/admin/models/tiny/unload", "POST")
    assert status == 200 and again["unloaded"] is False


def test_admin_errors_come_in_openais_shape(server: str) -> None:
    status, body = request(server + "/admin/models/nope/load", "POST")
    assert status == 404 and body["error"]["code"] == "model_not_found"
    status, body = request(server + "/admin/models/tiny/restart", "POST")
    assert status == 400 and "load or" in body["error"]["message"]
    status, body = request(server + "/admin/models/tiny/load", "POST", {"keep_alive": "soon"})
    assert status == 400 and body["error"]["param"] == "keep_alive"
    status, body = request(server + "/admin/models", "POST")
    assert status == 405


def test_llmmux_ps_shows_what_is_loaded(server: str) -> None:
    request(server + "/admin/models/other/load", "POST")
    result = CliRunner().invoke(main, ["ps", "--url", server])
    assert result.exit_code == 0, result.output
    header, *rows = result.output.splitlines()
    assert header.split()[:4] == ["MODEL", "PROVIDER", "KIND", "STATE"]
    other = next(r for r in rows if r.startswith("other"))
    assert "ready" in other and "in-process" in other and other.rstrip().endswith("forever")
    assert any(r.startswith("tiny") and "unloaded" in r for r in rows)
    as_json = CliRunner().invoke(main, ["ps", "--url", server, "--json"])
    assert {row["model"] for row in json.loads(as_json.output)} == {"tiny", "other"}


def test_llmmux_ps_without_a_server_says_so() -> None:
    result = CliRunner().invoke(main, ["ps", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "no llmmux server at http://127.0.0.1:9" in result.output
