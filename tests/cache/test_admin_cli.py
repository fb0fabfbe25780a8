"""`llmmux cache stats | clear`, /admin/cache and the cache's metrics, against a running gateway."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from cache.test_exact_e2e import MASTER, ask, config, post, settle
from llmmux.cli import main
from support import Gateway
from upstreams import FakeOpenAI


@pytest.fixture
def up() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def gw(up: FakeOpenAI, tmp_path: Path) -> Iterator[Gateway]:
    cfg = config(up, tmp_path / "ledger.db")
    cfg["routing_strategy"]["routes"]["plain"] = {"cache": True}
    with Gateway(cfg) as gateway:
        yield gateway


def cli(gw: Gateway, *args: str) -> str:
    result = CliRunner().invoke(main, ["cache", *args, "--url", gw.root_url], env={"LLMMUX_MASTER_KEY": MASTER})
    assert result.exit_code == 0, result.output
    return result.output


def test_stats_and_clear_by_model_and_key(gw: Gateway, up: FakeOpenAI) -> None:
    made = httpx.post(gw.root_url + "/admin/keys", json={"name": "ci"}, headers={"authorization": f"Bearer {MASTER}"})
    ci = made.json()["key"]
    for body, key in ((ask("a"), MASTER), (ask("b"), MASTER), ({**ask("a"), "model": "plain"}, MASTER), (ask("a"), ci)):
        post(gw, body, key)
    settle(gw)
    assert post(gw, ask("a")).headers["x-llmmux-cache"] == "hit"
    stats = json.loads(cli(gw, "stats", "--json"))
    assert stats["entries"] == 4 and stats["hits"] == 1 and stats["misses"] == 4 and stats["bytes"] > 0
    assert stats["store"] == "memory"
    assert "hit rate" in cli(gw, "stats")

    assert cli(gw, "clear", "--key", "ci") == "removed 1 cached answer(s)\n"
    assert cli(gw, "clear", "--model", "plain") == "removed 1 cached answer(s)\n"
    assert post(gw, ask("a")).headers["x-llmmux-cache"] == "hit"  # the master key's own answers stay
    assert post(gw, {**ask("a"), "model": "plain"}).headers["x-llmmux-cache"] == "miss"
    assert post(gw, ask("a"), ci).headers["x-llmmux-cache"] == "miss"
    removed = httpx.delete(gw.root_url + "/admin/cache", headers={"authorization": f"Bearer {MASTER}"})
    assert removed.json()["removed"] >= 2
    assert post(gw, ask("b")).headers["x-llmmux-cache"] == "miss"


def test_admin_cache_needs_the_master_key(gw: Gateway) -> None:
    made = httpx.post(gw.root_url + "/admin/keys", json={"name": "u"}, headers={"authorization": f"Bearer {MASTER}"})
    user = made.json()["key"]
    refused = httpx.delete(gw.root_url + "/admin/cache", headers={"authorization": f"Bearer {user}"})
    assert refused.status_code in (401, 403)


def test_metrics_count_hits_misses_and_savings(gw: Gateway) -> None:
    post(gw, ask("m"))
    settle(gw)
    post(gw, ask("m"))
    text = httpx.get(gw.root_url + "/metrics", headers={"authorization": f"Bearer {MASTER}"}).text
    assert 'llmmux_cache_lookups_total{model="chat",result="hit"} 1' in text
    assert 'llmmux_cache_lookups_total{model="chat",result="miss"} 1' in text
    assert 'llmmux_cache_saved_usd_total{model="chat"}' in text
    assert "llmmux_cache_entries 1" in text and "llmmux_cache_bytes " in text


def test_no_cache_configured_is_a_clear_404(up: FakeOpenAI, tmp_path: Path) -> None:
    cfg = config(up, tmp_path / "l.db")
    del cfg["routing_strategy"]
    with Gateway(cfg) as gw:
        answer = httpx.get(gw.root_url + "/admin/cache", headers={"authorization": f"Bearer {MASTER}"})
    assert answer.status_code == 404 and "routing_strategy" in answer.json()["error"]["message"]
