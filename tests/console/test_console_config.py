"""`ui:` and `logging.bodies` / `logging.body_store` in the config: on, off, elsewhere, and bad values."""

from __future__ import annotations

from typing import Any

import httpx

from llmmux.config.loader import config_from_dict
from support import Gateway
from upstreams import FakeOpenAI

MASTER = "sk-console-config-master-0123456"


def gateway(up: FakeOpenAI, tmp: Any, **extra: Any) -> Gateway:
    return Gateway(
        {
            "server": {"master_key": MASTER},
            "ledger": {"path": str(tmp / "llmmux.db")},
            "providers": {"p": {"type": "openai_compatible", "base_url": up.url, "models": ["m"]}},
            **extra,
        }
    )


def test_the_console_can_be_turned_off(tmp_path: Any) -> None:
    with FakeOpenAI() as up, gateway(up, tmp_path, ui={"enabled": False}) as gw:
        response = httpx.get(f"{gw.root_url}/ui/login")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        # Without the console, the admin API takes no session cookies at all.
        assert httpx.get(f"{gw.root_url}/admin/keys", cookies={"llmmux_console": "x.y"}).status_code == 401


def test_the_console_moves_to_its_configured_path(tmp_path: Any) -> None:
    with FakeOpenAI() as up, gateway(up, tmp_path, ui={"path": "/ops/console/"}) as gw:
        assert httpx.get(f"{gw.root_url}/ops/console/login").status_code == 200
        moved = httpx.get(f"{gw.root_url}/ops/console/keys")
        assert moved.status_code == 303 and moved.headers["location"] == "/ops/console/login"
        assert httpx.get(f"{gw.root_url}/ui/login").status_code == 404


def test_without_a_master_key_the_console_says_how_to_enable_it(tmp_path: Any) -> None:
    with FakeOpenAI() as up:
        config = {"providers": {"p": {"type": "openai_compatible", "base_url": up.url, "models": ["m"]}}}
        with Gateway(config) as gw:
            page = httpx.get(f"{gw.root_url}/ui/login")
            assert page.status_code == 200 and "server.master_key" in page.text
            assert httpx.post(f"{gw.root_url}/ui/login", data={"key": "anything"}).status_code == 403


def test_body_logging_is_off_unless_asked_for(tmp_path: Any) -> None:
    with FakeOpenAI() as up:
        with gateway(up, tmp_path) as gw:
            assert gw.app.accounting.bodies is None
        with gateway(up, tmp_path, logging={"bodies": True}) as gw:
            assert gw.app.accounting.bodies is not None
        with gateway(up, tmp_path, logging={"bodies": True, "body_store": {"enabled": False}}) as gw:
            assert gw.app.accounting.bodies is None


def test_config_values_are_parsed_and_bad_ones_named() -> None:
    config, problems = config_from_dict(
        {
            "ui": {"path": "/console/", "session_ttl": "30m"},
            "logging": {
                "bodies": True,
                "body_store": {"max_bytes": "16KB", "max_age": "2d", "max_total": "512MB", "redact": ["\\d{9}"]},
            },
        }
    )
    assert not problems.errors
    assert (config.ui.path, config.ui.session_ttl_s) == ("/console", 1800.0)
    assert config.logging.bodies == ["*"]
    store = config.logging.body_store
    assert (store.max_bytes, store.max_age_s, store.max_total_bytes, store.redact) == (
        16 * 1024,
        2 * 86400.0,
        512 * 1024**2,
        ["\\d{9}"],
    )
    assert config_from_dict({"ui": False})[0].ui.enabled is False
    _, bad = config_from_dict(
        {
            "ui": {"path": "/v1", "session_ttl": "soon"},
            "logging": {"bodies": 3, "body_store": {"max_bytes": "lots", "redact": ["("]}},
        }
    )
    paths = sorted(p.path for p in bad.errors)
    assert paths == [
        "logging.bodies",
        "logging.body_store.max_bytes",
        "logging.body_store.redact[0]",
        "ui.path",
        "ui.session_ttl",
    ]
