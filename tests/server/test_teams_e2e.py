"""Teams end to end: a budget two keys share, free models past a money budget, moves that keep history."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import pytest

from llmmux.ledger import keyops, teamops
from support import Gateway
from support.ledgers import ledger_config, make_store
from upstreams import FakeOpenAI

MASTER = "sk-master-0123456789abcdef"
USER = [{"role": "user", "content": "hello there"}]
# 2 prompt tokens * $1000/M + 3 completion tokens * $2000/M = $0.008 a request.
PRICES = {"input": 1000, "output": 2000}
COST = 0.008


def config(up: FakeOpenAI, url: str) -> dict[str, Any]:
    return {
        "server": {"master_key": MASTER},
        "ledger": ledger_config(url, flush_interval=0.05),
        "providers": {
            "main": {
                "type": "openai_compatible",
                "base_url": up.url,
                "models": [{"name": "m1", "pricing": PRICES}, {"name": "m2", "pricing": PRICES}],
            },
            "local": {
                "type": "openai_compatible",
                "base_url": up.url,
                "models": [{"name": "tiny", "pricing": {"input": 0, "output": 0}}],
            },
        },
        "routing": {
            "exact_matches": {
                "chat": {"provider": "main", "model": "m1"},
                "free": {"provider": "local", "model": "tiny", "fallback": "none"},
                # Another upstream model: an allow-list judges what is routed, and "chat" names m1.
                "other": {"provider": "main", "model": "m2"},
            }
        },
    }


def admin(gw: Gateway, method: str, path: str, body: Any = None, status: int = 200) -> Any:
    if method == "POST":
        response = gw.post_json(path, body, MASTER)
    elif method == "PATCH":
        response = gw.patch_json(path, body, MASTER)
    elif method == "DELETE":
        response = gw.delete(path, MASTER)
    else:
        response = gw.get(path, MASTER)
    assert response.status_code == status, response.text
    return response.json()


def sdk(gw: Gateway, key: dict[str, Any]) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key=key["key"], max_retries=0)


def test_a_team_budget_shared_by_two_keys_stops_both_at_the_first_request_past_it(ledger_url: str) -> None:
    with FakeOpenAI() as up, Gateway(config(up, ledger_url)) as gw:
        team = admin(gw, "POST", "/admin/teams", {"name": "search", "budget": 0.02, "budget_period": "weekly"}, 201)
        one = admin(gw, "POST", "/admin/keys", {"name": "one", "team": "search"}, 201)
        two = admin(gw, "POST", "/admin/keys", {"name": "two", "team": team["id"], "budget": 100}, 201)
        assert one["team_id"] == two["team_id"] == team["id"]
        with sdk(gw, one) as a, sdk(gw, two) as b:
            a.chat.completions.create(model="chat", messages=USER)  # 0.008
            b.chat.completions.create(model="chat", messages=USER)  # 0.016
            a.chat.completions.create(model="chat", messages=USER)  # 0.024: crossed it
            for client in (a, b):
                with pytest.raises(openai.RateLimitError) as refused:
                    client.chat.completions.create(model="chat", messages=USER)
                message = str(refused.value)
                assert "Budget exceeded for team 'search': spent $0.0240 of $0.02 this week" in message
                assert "it resets at" in message
            # A model priced at zero still answers past a money budget.
            assert b.chat.completions.create(model="free", messages=USER).choices[0].message.content
        shown = admin(gw, "GET", "/admin/teams/search")
        assert shown["spend_usd"] == pytest.approx(3 * COST)
        gw.wait_for_ledger(6)
        by_team = admin(gw, "GET", "/admin/usage?by=team")
    rows = {r["name"]: (r["requests"], r["errors"]) for r in by_team["rows"]}
    assert rows == {"search": (6, 2)}
    # The spend is in the ledger: a restarted gateway still refuses the team's keys.
    with FakeOpenAI() as up, Gateway(config(up, ledger_url)) as gw, sdk(gw, two) as b:
        with pytest.raises(openai.RateLimitError, match="team 'search'"):
            b.chat.completions.create(model="chat", messages=USER)


def test_block_free_refuses_even_free_models_past_the_budget(tmp_path: Path) -> None:
    with FakeOpenAI() as up, Gateway(config(up, str(tmp_path / "l.db"))) as gw:
        key = admin(gw, "POST", "/admin/keys", {"name": "strict", "budget": 0.001, "block_free": True}, 201)
        loose = admin(gw, "POST", "/admin/keys", {"name": "loose", "budget": 0.001}, 201)
        with sdk(gw, key) as strict, sdk(gw, loose) as free_ok:
            strict.chat.completions.create(model="chat", messages=USER)
            free_ok.chat.completions.create(model="chat", messages=USER)
            with pytest.raises(openai.RateLimitError, match="Budget exceeded for API key 'strict'"):
                strict.chat.completions.create(model="free", messages=USER)
            free_ok.chat.completions.create(model="free", messages=USER)
            with pytest.raises(openai.RateLimitError, match="Budget exceeded for API key 'loose'"):
                free_ok.chat.completions.create(model="chat", messages=USER)


def test_team_limits_and_models_apply_to_its_keys_and_a_move_keeps_history(tmp_path: Path) -> None:
    with FakeOpenAI() as up, Gateway(config(up, str(tmp_path / "l.db"))) as gw:
        # rpm 2: admission (identity, budgets, limits) precedes routing, so the request refused
        # for its model below has taken one of the two already.
        admin(gw, "POST", "/admin/teams", {"name": "a", "rpm": 2, "models": ["chat"], "tags": "team:a"}, 201)
        admin(gw, "POST", "/admin/teams", {"name": "b"}, 201)
        key = admin(gw, "POST", "/admin/keys", {"name": "k", "team": "a"}, 201)
        with sdk(gw, key) as client:
            with pytest.raises(openai.PermissionDeniedError, match="team 'a' may not use model 'other'"):
                client.chat.completions.create(model="other", messages=USER)
            client.chat.completions.create(model="chat", messages=USER)
            with pytest.raises(openai.RateLimitError, match="Rate limit reached for team 'a': 2 requests per minute"):
                client.chat.completions.create(model="chat", messages=USER)
            admin(gw, "PATCH", f"/admin/keys/{key['id']}", {"team": "b"})
            client.chat.completions.create(model="other", messages=USER)
        gw.wait_for_ledger(4)
        by_team = {r["name"]: r["requests"] for r in admin(gw, "GET", "/admin/usage?by=team")["rows"]}
        by_tag = {r["group"]: r["requests"] for r in admin(gw, "GET", "/admin/usage?by=tag")["rows"]}
        assert by_team == {"a": 3, "b": 1}  # the key's past requests stay with team a
        assert by_tag == {"team:a": 3, "": 1}
        unknown = gw.patch_json(f"/admin/keys/{key['id']}", {"team": "nope"}, MASTER)
        assert unknown.status_code == 400 and "no team with id or name 'nope'" in unknown.text
        gone = admin(gw, "DELETE", "/admin/teams/b")
        assert gone["keys_removed"] == 1
        assert admin(gw, "GET", f"/admin/keys/{key['id']}")["team_id"] is None
        assert gw.get("/admin/teams/b", MASTER).status_code == 404
        teams = admin(gw, "GET", "/admin/teams")["data"]
        assert [t["name"] for t in teams] == ["a"]
        assert admin(gw, "POST", "/admin/teams", {"name": "a"}, 400)["error"]["message"]


def test_keys_created_in_a_team_take_its_key_defaults(tmp_path: Path) -> None:
    with FakeOpenAI() as up, Gateway(config(up, str(tmp_path / "l.db"))) as gw:
        defaults = {"budget": 0.5, "rpm": 60, "models": ["chat"]}
        admin(gw, "POST", "/admin/teams", {"name": "a", "key_defaults": defaults}, 201)
        key = admin(gw, "POST", "/admin/keys", {"name": "k", "team": "a", "rpm": 5}, 201)
        assert (key["budget_usd"], key["rpm"], key["models"]) == (0.5, 5, ["chat"])
        alone = admin(gw, "POST", "/admin/keys", {"name": "solo"}, 201)
        assert (alone["budget_usd"], alone["rpm"]) == (None, None)
        bad = gw.post_json("/admin/teams", {"name": "b", "key_defaults": {"rpm": -1}}, MASTER)
        assert bad.status_code == 400 and "rpm" in bad.text
        bad = gw.post_json("/admin/teams", {"name": "b", "key_defaults": {"secret": "x"}}, MASTER)
        assert bad.status_code == 400 and "unknown secret" in bad.text
        assert "rpm" in admin(gw, "POST", "/admin/teams", {"name": "c", "rpm": -1}, 400)["error"]["message"]


def test_a_team_and_key_made_by_the_cli_hold_from_the_first_request(tmp_path: Path) -> None:
    url = str(tmp_path / "l.db")
    with FakeOpenAI() as up, Gateway(config(up, url)) as gw:

        async def from_the_cli() -> str:
            store = make_store(url)  # another connection, as `llmmux teams create` and `keys create` use
            await store.open()
            try:
                await teamops.create_team(store, "late", models=["free"])
                _, secret = await keyops.create_key(
                    store, "k", **await teamops.resolve_team_field(store, {"team": "late"})
                )
                return secret
            finally:
                await store.close()

        secret = asyncio.run(from_the_cli())
        with openai.OpenAI(base_url=gw.url, api_key=secret, max_retries=0) as client:
            with pytest.raises(openai.PermissionDeniedError, match="team 'late' may not use model 'chat'"):
                client.chat.completions.create(model="chat", messages=USER)
            client.chat.completions.create(model="free", messages=USER)
