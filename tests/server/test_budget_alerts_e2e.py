"""Budget alerts: the admin's webhook hears when a key's budget is nearly spent and when it is all spent."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import openai
import pytest

from llmmux.config import load_config
from support import Gateway
from support.ledgers import ledger_config
from upstreams import FakeOpenAI

MASTER = "sk-master-0123456789abcdef"
USER = [{"role": "user", "content": "hello there"}]
PRICES = {"input": 1000, "output": 2000}  # $0.008 a request


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        Hook.received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook?token=s3cret-token"
    server.shutdown()
    server.server_close()


def test_the_webhook_hears_the_threshold_and_the_end_of_a_budget_once_each(webhook: str, tmp_path: Path) -> None:
    config = {
        "server": {"master_key": MASTER},
        "alerts": {"threshold": 0.5, "webhook_url": webhook},
    }
    with FakeOpenAI() as up:
        config |= {
            "ledger": ledger_config(str(tmp_path / "l.db"), flush_interval=0.05),
            "providers": {
                "main": {"type": "openai_compatible", "base_url": up.url, "models": [{"name": "m1", "pricing": PRICES}]}
            },
            "routing": {"exact_matches": {"chat": {"provider": "main", "model": "m1"}}},
        }
        with Gateway(config) as gw:
            key = gw.post_json("/admin/keys", {"name": "app", "budget": 0.02}, MASTER).json()
            with openai.OpenAI(base_url=gw.url, api_key=key["key"], max_retries=0) as sdk:
                for _ in range(3):  # 0.008, 0.016 (past half), 0.024 (past all)
                    sdk.chat.completions.create(model="chat", messages=USER)
                with pytest.raises(openai.RateLimitError):
                    sdk.chat.completions.create(model="chat", messages=USER)
            deadline = time.monotonic() + 10
            while len(Hook.received) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
    assert [(e["level"], e["kind"], e["name"], e["fraction"]) for e in Hook.received] == [
        ("threshold", "key", "app", 0.5),
        ("exhausted", "key", "app", 1.0),
    ]
    assert Hook.received[1]["spent_usd"] == pytest.approx(0.024)


def test_a_webhook_url_must_be_http_and_the_threshold_a_fraction(tmp_path: Path) -> None:
    path = tmp_path / "llmmux.yaml"
    path.write_text("alerts: {webhook_url: 'file:///etc/passwd', threshold: 2}\n")
    _, problems = load_config(path)
    assert sorted(p.path for p in problems.errors) == ["alerts.threshold", "alerts.webhook_url"]


def test_each_budget_alerts_at_its_own_threshold_end_users_included(webhook: str, tmp_path: Path) -> None:
    config: dict[str, Any] = {"server": {"master_key": MASTER}, "alerts": {"threshold": 0.9, "webhook_url": webhook}}
    with FakeOpenAI() as up:
        config |= {
            "ledger": ledger_config(str(tmp_path / "l.db"), flush_interval=0.05),
            "providers": {
                "main": {"type": "openai_compatible", "base_url": up.url, "models": [{"name": "m1", "pricing": PRICES}]}
            },
            "routing": {"exact_matches": {"chat": {"provider": "main", "model": "m1"}}},
        }
        with Gateway(config) as gw:
            body = {
                "name": "app",
                "budget": 1.0,
                "alert_at": 0.01,
                "end_user_limits": {"budget": 0.02, "alert_at": 0.3},
            }
            key = gw.post_json("/admin/keys", body, MASTER).json()
            assert key["alert_at"] == 0.01 and key["end_user_limits"]["alert_at"] == 0.3
            bad = gw.post_json("/admin/keys", {"name": "x", "alert_at": 1.5}, MASTER)
            assert bad.status_code == 400 and "alert_at" in bad.text
            with openai.OpenAI(base_url=gw.url, api_key=key["key"], max_retries=0) as sdk:
                sdk.chat.completions.create(model="chat", messages=USER, user="alice")  # 0.008: 40% of alice's
                sdk.chat.completions.create(model="chat", messages=USER, user="bob")  # 0.016: past 1% of the key's
            deadline = time.monotonic() + 10
            while len(Hook.received) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
    assert sorted((e["level"], e["kind"], e["end_user"], e["fraction"]) for e in Hook.received) == [
        ("threshold", "end_user", "alice", 0.3),
        ("threshold", "end_user", "bob", 0.3),
        ("threshold", "key", None, 0.01),
    ]
    assert {e["name"] for e in Hook.received} == {"app"}
    assert all(e["resets_at"] and e["budget_period"] == "monthly" for e in Hook.received)
