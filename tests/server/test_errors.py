"""Bad input gets OpenAI's error shape with the right status, never a traceback or a hang."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from support import Gateway
from upstreams import FakeOpenAI

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as up:
        yield up


@pytest.fixture(scope="module")
def gateway(upstream: FakeOpenAI) -> Iterator[Gateway]:
    config = {
        "server": {"master_key": "sk-master-0123456789", "max_body_size": "4KB"},
        "providers": {
            "up": {"type": "openai_compatible", "base_url": upstream.url, "models": ["gpt-4o-mini", "llama3.1:8b"]}
        },
    }
    with Gateway(config) as gw:
        yield gw


def post(
    gateway: Gateway,
    body: bytes | dict[str, object],
    key: str | None = "sk-master-0123456789",
    path: str = "/chat/completions",
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    if isinstance(body, dict):
        return httpx.post(gateway.url + path, json=body, headers=headers)
    return httpx.post(gateway.url + path, content=body, headers={**headers, "content-type": "application/json"})


def error_of(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) >= {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def test_malformed_json_is_400(gateway: Gateway) -> None:
    response = post(gateway, b'{"model": "gpt-4o-mini", "messages": [')
    assert response.status_code == 400
    assert "JSON" in str(error_of(response)["message"])


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": USER}, "model"),
        ({"model": "gpt-4o-mini"}, "messages"),
        ({"model": "gpt-4o-mini", "messages": []}, "messages"),
        ({"model": 5, "messages": USER}, "model"),
        ({"model": "gpt-4o-mini", "messages": [{"content": "x"}]}, "messages[0].role"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "gpt-4o-mini", "messages": USER, "temperature": "hot"}, "temperature"),
        (
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
        ),
    ],
)
def test_schema_problems_are_400_naming_the_field(gateway: Gateway, body: dict[str, object], param: str) -> None:
    response = post(gateway, body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


def test_unknown_model_is_404_with_suggestions(gateway: Gateway) -> None:
    response = post(gateway, {"model": "gpt-4o-mni", "messages": USER})
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "model_not_found"
    assert "gpt-4o-mini" in str(error["message"])


def test_body_over_the_limit_is_413(gateway: Gateway) -> None:
    response = post(gateway, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 5000}]})
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_too_large"


@pytest.mark.parametrize("key", [None, "sk-wrong"])
def test_missing_or_wrong_key_is_401(gateway: Gateway, key: str | None) -> None:
    response = post(gateway, {"model": "gpt-4o-mini", "messages": USER}, key=key)
    assert response.status_code == 401
    assert error_of(response)["type"] == "authentication_error"
    if key is not None:
        with (
            openai.OpenAI(base_url=gateway.url, api_key=key, max_retries=0) as sdk,
            pytest.raises(openai.AuthenticationError),
        ):
            sdk.chat.completions.create(model="gpt-4o-mini", messages=USER)  # type: ignore[arg-type]


def test_the_master_key_opens_the_gateway(gateway: Gateway) -> None:
    with openai.OpenAI(base_url=gateway.url, api_key="sk-master-0123456789", max_retries=0) as sdk:
        done = sdk.chat.completions.create(model="llama3.1:8b", messages=USER)  # type: ignore[arg-type]
    assert done.model == "llama3.1:8b"
    # Health stays open for load balancers.
    assert httpx.get(gateway.root_url + "/health").status_code == 200


def test_unknown_path_and_wrong_method(gateway: Gateway) -> None:
    assert post(gateway, {}, path="/nothing/here").status_code == 404
    response = httpx.get(gateway.url + "/chat/completions")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"


def test_the_key_never_appears_in_error_bodies(gateway: Gateway) -> None:
    response = post(gateway, {"model": "nope", "messages": USER})
    assert "sk-master" not in response.text
