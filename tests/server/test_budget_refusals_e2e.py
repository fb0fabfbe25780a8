"""A spent budget is a 429 on every door, in that door's own error shape, naming the budget and its reset;
and a team's end-user limits apply to each end user across all the team's keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from support import Gateway
from support.ledgers import ledger_config
from upstreams import FakeOpenAI

MASTER = "sk-master-0123456789abcdef"
USER = [{"role": "user", "content": "hello there"}]
PRICES = {"input": 1000, "output": 2000}  # $0.008 a request
SAYS = "Budget exceeded for team 'search': spent $0.0080 of $0.01 this week; it resets at "


def config(up: FakeOpenAI, tmp_path: Path) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER},
        "ledger": ledger_config(str(tmp_path / "l.db"), flush_interval=0.05),
        "providers": {
            "main": {"type": "openai_compatible", "base_url": up.url, "models": [{"name": "m1", "pricing": PRICES}]}
        },
        "routing": {"exact_matches": {"chat": {"provider": "main", "model": "m1"}}},
    }


def admin(gw: Gateway, path: str, body: dict[str, Any]) -> Any:
    answer = gw.post_json(path, body, MASTER)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_spent_team_budget_is_a_429_in_each_doors_own_shape(tmp_path: Path) -> None:
    with FakeOpenAI() as up, Gateway(config(up, tmp_path)) as gw:
        admin(gw, "/admin/teams", {"name": "search", "budget": 0.01, "budget_period": "weekly"})
        key = admin(gw, "/admin/keys", {"name": "app", "team": "search"})["key"]
        with openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0) as sdk:
            sdk.chat.completions.create(model="chat", messages=USER)  # $0.008 of $0.01
            sdk.chat.completions.create(model="chat", messages=USER)  # crosses it: the last one let through
            with pytest.raises(openai.RateLimitError) as chat:
                sdk.chat.completions.create(model="chat", messages=USER)
            with pytest.raises(openai.RateLimitError) as responses:
                sdk.responses.create(model="chat", input="hello there")
        with anthropic.Anthropic(base_url=gw.root_url, api_key=key, max_retries=0) as claude:
            with pytest.raises(anthropic.RateLimitError) as messages:
                claude.messages.create(model="chat", max_tokens=16, messages=USER)  # type: ignore[arg-type]
        ollama = httpx.post(
            f"{gw.root_url}/api/chat",
            json={"model": "chat", "messages": USER, "stream": False},
            headers={"authorization": f"Bearer {key}"},
        )
    says = SAYS.replace("$0.0080", "$0.0160")
    for refused in (chat.value, responses.value):
        body: Any = refused.body
        assert body["code"] == "insufficient_quota" and body["message"].startswith(says), body
    claude_body: Any = messages.value.body
    assert claude_body["type"] == "error" and claude_body["error"]["type"] == "rate_limit_error"
    assert claude_body["error"]["message"].startswith(says)
    assert ollama.status_code == 429 and ollama.json()["error"].startswith(says)
    assert len(up.requests) == 2


def test_a_teams_end_user_limits_hold_for_each_end_user_across_its_keys(tmp_path: Path) -> None:
    with FakeOpenAI() as up, Gateway(config(up, tmp_path)) as gw:
        admin(gw, "/admin/teams", {"name": "app", "end_user_limits": {"rpm": 2}})
        one = admin(gw, "/admin/keys", {"name": "web", "team": "app"})["key"]
        two = admin(gw, "/admin/keys", {"name": "mobile", "team": "app"})["key"]
        with (
            openai.OpenAI(base_url=gw.url, api_key=one, max_retries=0) as web,
            openai.OpenAI(base_url=gw.url, api_key=two, max_retries=0) as mobile,
        ):
            web.chat.completions.create(model="chat", messages=USER, user="alice")
            mobile.chat.completions.create(model="chat", messages=USER, user="alice")
            with pytest.raises(openai.RateLimitError, match="end user 'alice' of team 'app': 2 requests per minute"):
                web.chat.completions.create(model="chat", messages=USER, user="alice")
            mobile.chat.completions.create(model="chat", messages=USER, user="bob")  # another end user: own limit
