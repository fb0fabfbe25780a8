"""What of the client's request passes to the upstream besides the body: headers on each
provider's allow-list (never credentials), Anthropic's query string and betas; and the log
line of a request refused before routing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from llmmux.events import RequestRecord
from llmmux.logs import request_line
from llmmux.providers.options import ProviderOptions
from support import Gateway
from upstreams import FakeOpenAI
from upstreams.anthropic_server import API_KEY, FakeAnthropic

BODY = {"model": "claude-x", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def test_client_betas_join_the_ones_the_provider_configures() -> None:
    with FakeAnthropic() as up:
        provider = {
            "type": "anthropic",
            "base_url": up.url,
            "api_key": API_KEY,
            "headers": {"anthropic-beta": "context-1m-2025-08-07,effort-2025-11-24"},
            "models": ["claude-x"],
        }
        with Gateway({"providers": {"claude": provider}}) as gw:
            headers = {"anthropic-beta": "effort-2025-11-24,context-management-2025-06-27", "x-api-key": "sk-c"}
            answer = httpx.post(gw.url + "/messages?beta=true", json=BODY, headers=headers, timeout=10)
            assert answer.status_code == 200, answer.text
            sent = up.last_request
    assert sent.headers["anthropic-beta"] == "context-1m-2025-08-07,effort-2025-11-24,context-management-2025-06-27"
    assert sent.query == {"beta": "true"} and sent.headers["x-api-key"] == API_KEY


def test_forward_headers_in_config_extend_the_allow_list_and_never_pass_credentials() -> None:
    with FakeOpenAI(api_key="sk-up") as up:
        provider = {
            "type": "openai_compatible",
            "base_url": up.url,
            "api_key": "sk-up",
            "models": ["m"],
            "forward_headers": ["X-Trace-Id"],  # naming Cookie would be a config error at load
        }
        with Gateway({"providers": {"p": provider}}) as gw:
            headers = {"x-trace-id": "t-1", "x-other": "o", "cookie": "session=s", "authorization": "Bearer sk-client"}
            body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            answer = httpx.post(gw.url + "/chat/completions", json=body, headers=headers, timeout=10)
            assert answer.status_code == 200, answer.text
            sent = up.last_request
    assert sent.headers["x-trace-id"] == "t-1"
    assert "x-other" not in sent.headers and "cookie" not in sent.headers
    assert sent.headers["authorization"] == "Bearer sk-up"


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        (["x-trace-id"], None),
        (["Authorization"], "cannot pass on authorization"),
        (["Cookie"], "cannot pass on cookie"),
        ("x-trace-id", "expected a list of names"),
        ([""], "expected a list of names"),
    ],
)
def test_forward_headers_settings_are_checked(setting: Any, needle: str | None) -> None:
    _, problems = ProviderOptions.from_config({"forward_headers": setting})
    assert (needle is None and problems == []) or (needle is not None and problems[0].startswith("forward_headers: "))
    assert needle is None or needle in problems[0]


def test_a_request_refused_before_routing_is_logged_with_its_model_and_client_api() -> None:
    with FakeAnthropic() as up:
        provider = {"type": "anthropic", "base_url": up.url, "api_key": API_KEY, "models": ["claude-x"]}
        with Gateway({"providers": {"claude": provider}}) as gw:
            records: list[RequestRecord] = []
            gw.router.events.subscribe(records.append)
            body = {**BODY, "messages": [{"role": "wizard", "content": "hi"}]}
            answer = httpx.post(gw.url + "/messages", json=body, timeout=10)
            assert answer.status_code == 400 and answer.json()["type"] == "error"
    (record,) = records
    line = request_line(record)
    assert (line.model, line.client_api, line.status) == ("claude-x", "anthropic", 400)
    assert line.msg.startswith("POST /v1/messages claude-x 400")
