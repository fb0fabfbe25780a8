"""Virtual keys end to end: the admin API creates them, the openai SDK uses them, the gateway refuses them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from llmmux.ledger import keyops
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
                "models": [{"name": "m1", "pricing": PRICES}, "m2"],
            }
        },
        "routing": {
            "exact_matches": {
                "chat-a": {"provider": "main", "model": "m1"},
                "chat-b": {"provider": "main", "model": "m1"},
                "other": {"provider": "main", "model": "m2"},
            }
        },
    }


@pytest.fixture
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as up:
        yield up


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return str(tmp_path / "llmmux.db")


def create(gw: Gateway, **fields: Any) -> dict[str, Any]:
    response = gw.post_json("/admin/keys", fields, MASTER)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def client(gw: Gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url, api_key=key, max_retries=0)


def test_a_budget_stops_the_key_within_one_request_of_its_limit(upstream: FakeOpenAI, ledger_url: str) -> None:
    with Gateway(config(upstream, ledger_url)) as gw:
        key = create(gw, name="capped", budget=0.02)
        with client(gw, key["key"]) as sdk:
            answered = 0
            with pytest.raises(openai.RateLimitError) as refused:
                for _ in range(10):
                    sdk.chat.completions.create(model="chat-a", messages=USER)
                    answered += 1
        # 0.008, 0.016 (under), 0.024: the request that crossed the limit finished; the next was refused.
        assert answered == 3
        error = refused.value.body
        assert isinstance(error, dict) and error["code"] == "insufficient_quota"
        assert "Budget exceeded for API key 'capped': spent $0.0240 of $0.02 this month" in error["message"]
        listed = gw.get(f"/admin/keys/{key['id']}", MASTER).json()
        assert listed["spend_usd"] == pytest.approx(3 * COST)
    # The spend is in the ledger, so a restarted gateway still refuses the key.
    with Gateway(config(upstream, ledger_url)) as gw, client(gw, key["key"]) as sdk:
        with pytest.raises(openai.RateLimitError, match="Budget exceeded"):
            sdk.chat.completions.create(model="chat-a", messages=USER)


def test_wrong_model_revoked_and_expired_keys_are_refused_in_openai_shape(
    upstream: FakeOpenAI, sqlite_url: str
) -> None:
    with Gateway(config(upstream, sqlite_url)) as gw:
        scoped = create(gw, name="scoped", models=["chat-*"])
        with client(gw, scoped["key"]) as sdk:
            assert sdk.chat.completions.create(model="chat-b", messages=USER).model == "chat-b"
            with pytest.raises(openai.PermissionDeniedError) as denied:
                sdk.chat.completions.create(model="other", messages=USER)
            assert denied.value.body == {
                "message": "The API key 'scoped' may not use model 'other' (allowed: chat-*).",
                "type": "permission_error",
                "param": "model",
                "code": "model_not_allowed",
            }
            assert gw.delete(f"/admin/keys/{scoped['id']}", MASTER).json()["state"] == "revoked"
            with pytest.raises(openai.AuthenticationError, match="The API key 'scoped' has been revoked"):
                sdk.chat.completions.create(model="chat-b", messages=USER)
        expired = create(gw, name="old", expires="2020-01-01")
        with (
            client(gw, expired["key"]) as sdk,
            pytest.raises(openai.AuthenticationError, match="expired at 2020-01-01"),
        ):
            sdk.chat.completions.create(model="chat-a", messages=USER)
        with (
            client(gw, "sk-llmmux-not-a-real-key") as sdk,
            pytest.raises(openai.AuthenticationError, match="Incorrect API key"),
        ):
            sdk.chat.completions.create(model="chat-a", messages=USER)
        gw.wait_for_ledger(5)
        refusals = gw.get("/admin/requests?errors=true", MASTER).json()["data"]
    # Refusals are records too, charged to the key that was refused.
    assert sorted((r["status"], r["key_id"] or "") for r in refusals) == sorted(
        [(403, scoped["id"]), (401, scoped["id"]), (401, expired["id"]), (401, "")]
    )


def test_rate_limits_answer_429_with_retry_after(upstream: FakeOpenAI, sqlite_url: str) -> None:
    with Gateway(config(upstream, sqlite_url)) as gw:
        key = create(gw, name="slow", rpm=2)
        with client(gw, key["key"]) as sdk:
            sdk.chat.completions.create(model="chat-a", messages=USER)
            sdk.chat.completions.create(model="chat-a", messages=USER)
            with pytest.raises(openai.RateLimitError, match="2 requests per minute") as limited:
                sdk.chat.completions.create(model="chat-a", messages=USER)
        assert int(limited.value.response.headers["retry-after"]) >= 20


def test_a_key_created_elsewhere_works_at_once(upstream: FakeOpenAI, sqlite_url: str) -> None:
    with Gateway(config(upstream, sqlite_url)) as gw:

        async def from_the_cli() -> str:
            store = make_store(sqlite_url)  # what `llmmux keys create` does: another connection, another process
            await store.open()
            try:
                _, secret = await keyops.create_key(store, "cli")
                return secret
            finally:
                await store.close()

        secret = asyncio.run(from_the_cli())
        with client(gw, secret) as sdk:
            assert (
                sdk.chat.completions.create(model="chat-a", messages=USER).choices[0].message.content
                == "echo: hello there"
            )


def test_the_admin_api_needs_the_master_key_and_never_shows_a_secret(upstream: FakeOpenAI, sqlite_url: str) -> None:
    with Gateway(config(upstream, sqlite_url)) as gw:
        key = create(
            gw,
            name="team",
            budget=25,
            budget_period="weekly",
            rpm=60,
            tpm=100_000,
            models="gpt-4o,llama*",
            expires="30d",
        )
        assert key["key"].startswith("sk-llmmux-") and key["key_hint"] == "sk-llmmux-..." + key["key"][-4:]
        assert (key["budget_usd"], key["budget_period"], key["rpm"], key["tpm"], key["models"], key["state"]) == (
            25.0,
            "weekly",
            60,
            100_000,
            ["gpt-4o", "llama*"],
            "active",
        )
        listed = gw.get("/admin/keys", MASTER)
        assert key["key"] not in listed.text and "hash" not in listed.text
        assert [k["name"] for k in listed.json()["data"]] == ["team"]
        updated = gw.patch_json(
            f"/admin/keys/{key['id']}", {"rpm": None, "models": [], "name": "team-b"}, MASTER
        ).json()
        assert (updated["name"], updated["rpm"], updated["models"]) == ("team-b", None, [])
        bad = gw.patch_json(f"/admin/keys/{key['id']}", {"budget_period": "yearly"}, MASTER)
        assert bad.status_code == 400 and "budget_period: expected one of" in bad.json()["error"]["message"]
        assert gw.get("/admin/keys/key_nope", MASTER).status_code == 404
        assert gw.get("/admin/keys").status_code == 401
        assert gw.get("/admin/keys", key["key"]).status_code == 403
        assert gw.get("/admin/models", key["key"]).status_code == 403  # every admin path, not only the keys API
        assert gw.get("/admin/nothing", MASTER).status_code == 404  # the one path table: unknown is 404 everywhere


def test_usage_and_request_pages_over_the_admin_api(upstream: FakeOpenAI, sqlite_url: str) -> None:
    with Gateway(config(upstream, sqlite_url)) as gw:
        key = create(gw, name="team")
        with client(gw, key["key"]) as sdk, client(gw, MASTER) as admin:
            for _ in range(3):
                sdk.chat.completions.create(model="chat-a", messages=USER)
            admin.chat.completions.create(model="other", messages=USER)
        gw.wait_for_ledger(4)
        usage = gw.get("/admin/usage?since=1h&by=key", MASTER).json()
        by_key = {r["group"]: (r["name"], r["requests"], r["cost_usd"]) for r in usage["rows"]}
        assert by_key == {key["id"]: ("team", 3, pytest.approx(3 * COST)), "": ("(master key or none)", 1, 0.0)}
        assert usage["totals"]["requests"] == 4 and usage["totals"]["p50_latency_ms"] > 0
        first = gw.get("/admin/requests?limit=3", MASTER).json()
        assert len(first["data"]) == 3 and first["data"][0]["public_model"] == "other"
        rest = gw.get(f"/admin/requests?limit=3&before={first['next_before']}", MASTER).json()
        assert len(rest["data"]) == 1 and rest["next_before"] is None
        assert gw.get("/admin/usage?by=colour", MASTER).status_code == 400
        assert gw.get("/admin/usage?since=soon", MASTER).json()["error"]["param"] == "since"
