"""No secret in any log line, metric, admin answer or ledger row: a real `llmmux serve`, then grep."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from support import free_port
from support.postgres import TempPostgres
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI, status

MASTER = "sk-master-SECRET-0000000000"
PROVIDER_KEY = "sk-upstream-SECRET-1111111111"
DB_PASSWORD = "pg-SECRET-2222222222"
BAD_KEY = "sk-wrong-SECRET-3333333333"
TYPED_KEY = "sk-proj-SECRET-4444444444"

CONFIG = """
server: {{master_key: "{master}"}}
ledger: {{database_url: "{db}", flush_interval: 0.05}}
logging: {{format: json, bodies: [debug-chat]}}
providers:
  main: {{type: openai_compatible, base_url: "{url}", api_key: "{key}", models: [m1]}}
  angry: {{type: openai_compatible, base_url: "{url}", api_key: "{key}", models: [m1]}}
routing:
  exact_matches:
    chat: {{provider: main, model: m1}}
    debug-chat: {{provider: main, model: m1}}
    angry: {{provider: angry, model: m1, fallback: none}}
"""


def test_secrets_never_leave_the_gateway(tmp_path: Path, postgres: TempPostgres) -> None:
    db = postgres.create_database("secrets").replace("llmmux@", f"llmmux:{DB_PASSWORD}@")  # trust auth ignores it
    with FakeOpenAI(api_key=PROVIDER_KEY) as up:
        config = tmp_path / "llmmux.yaml"
        config.write_text(CONFIG.format(master=MASTER, db=db, url=up.url, key=PROVIDER_KEY))
        created = subprocess.run(
            [sys.executable, "-m", "llmmux", "keys", "create", "-c", str(config), "--name", "ci"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        virtual = created.stdout.strip()
        assert created.returncode == 0 and virtual.startswith("sk-llmmux-"), created.stderr
        port = free_port()
        process = start_serve(config, port, ["--log-level", "debug", "--workers", "2"], stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(port, process)
            _traffic(base, virtual, up)
            scraped = httpx.get(base + "/metrics", headers={"authorization": f"Bearer {MASTER}"}).text
            admin = httpx.get(base + "/admin/requests?limit=1000", headers={"authorization": f"Bearer {MASTER}"}).text
            keys = httpx.get(base + "/admin/keys", headers={"authorization": f"Bearer {MASTER}"}).text
        finally:
            logs = stop_serve(process)
    lines = [line for line in logs.splitlines() if line.strip()]
    assert any('"logger":"llmmux.requests"' in line for line in lines)
    for line in lines:
        if not line.startswith("llmmux: "):  # the startup banner is for people
            json.loads(line)  # every log line is one JSON object
    secrets = {
        "master key": MASTER,
        "provider key": PROVIDER_KEY,
        "database password": DB_PASSWORD,
        "virtual key": virtual,
        "rejected key": BAD_KEY,
        "key typed in a prompt": TYPED_KEY,
    }
    for where, text in {"logs": logs, "metrics": scraped, "admin requests": admin, "admin keys": keys}.items():
        for what, secret in secrets.items():
            assert secret not in text, f"the {what} appears in the {where}"
            assert secret[-16:] not in text, f"the end of the {what} appears in the {where}"
    assert "debug-chat" in logs and "request_messages" in logs  # bodies were logged, masked, where asked
    assert sum('"request_messages"' in line for line in lines) == 1


def _traffic(base: str, virtual: str, up: FakeOpenAI) -> None:
    for key in (MASTER, virtual):
        with openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0) as sdk:
            sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
            list(sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}], stream=True))
    with openai.OpenAI(base_url=base + "/v1", api_key=virtual, max_retries=0) as sdk:
        sdk.chat.completions.create(
            model="debug-chat", messages=[{"role": "user", "content": f"my key is {TYPED_KEY}"}]
        )
        # An upstream that echoes the key it was sent in its error message.
        up.script(
            status(
                401,
                {
                    "error": {
                        "message": f"Incorrect API key provided: {PROVIDER_KEY}",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
            )
        )
        with pytest.raises(openai.APIStatusError):
            sdk.chat.completions.create(model="angry", messages=[{"role": "user", "content": "hi"}])
    with (
        openai.OpenAI(base_url=base + "/v1", api_key=BAD_KEY, max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError),
    ):
        sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    httpx.post(base + "/v1/chat/completions", content=b"{oops", headers={"authorization": f"Bearer {virtual}"})
