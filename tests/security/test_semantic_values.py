"""Generation parameters outside their ranges are a 400 naming the field, in the door's own words
(issue 12, item 11), unless the route passes them unchecked; against `llmmux serve`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import ollama
import openai
import pytest

from security.bad_input_gateway import MASTER, Served, served

USER: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("values")) as gw:
        yield gw
    assert "Traceback" not in gw.output[0], gw.output[0][-3000:]


@pytest.fixture
def sdk(gateway: Served) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=MASTER, max_retries=0) as client:
        yield client


@pytest.mark.parametrize(
    ("params", "error"),
    [
        (
            {"max_tokens": -1},
            (
                "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got -1 instead.",
                "max_tokens",
                "integer_below_min_value",
            ),
        ),
        (
            {"max_completion_tokens": 0},
            (
                "Invalid 'max_completion_tokens': integer below minimum value. Expected a value >= 1, "
                "but got 0 instead.",
                "max_completion_tokens",
                "integer_below_min_value",
            ),
        ),
        (
            {"max_tokens": 2**40},
            (
                f"Invalid 'max_tokens': integer above maximum value. Expected a value <= {2**31 - 1}, "
                f"but got {2**40} instead.",
                "max_tokens",
                "integer_above_max_value",
            ),
        ),
        (
            {"temperature": -1e308},
            (
                "Invalid 'temperature': decimal below minimum value. Expected a value >= 0, but got -1e+308 instead.",
                "temperature",
                "decimal_below_min_value",
            ),
        ),
        (
            {"temperature": 2.5},
            (
                "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got 2.5 instead.",
                "temperature",
                "decimal_above_max_value",
            ),
        ),
        (
            {"top_p": 1.5},
            (
                "Invalid 'top_p': decimal above maximum value. Expected a value <= 1, but got 1.5 instead.",
                "top_p",
                "decimal_above_max_value",
            ),
        ),
        (
            {"n": -5},
            (
                "Invalid 'n': integer below minimum value. Expected a value >= 1, but got -5 instead.",
                "n",
                "integer_below_min_value",
            ),
        ),
        (
            {"frequency_penalty": -3},
            (
                "Invalid 'frequency_penalty': decimal below minimum value. Expected a value >= -2, but got -3 instead.",
                "frequency_penalty",
                "decimal_below_min_value",
            ),
        ),
    ],
)
def test_openai_chat_refuses_values_out_of_range_as_openai_does(
    gateway: Served, sdk: openai.OpenAI, params: dict[str, Any], error: tuple[str, str, str]
) -> None:
    gateway.openai.reset()
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="chat", messages=USER, **params)
    message, param, code = error
    assert refused.value.body == {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    assert gateway.openai.requests == []


def test_a_non_integer_max_tokens_is_a_400(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="chat", messages=USER, extra_body={"max_tokens": 1e23})
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == "max_tokens"


def test_completions_and_responses_name_their_own_fields(gateway: Served, sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.completions.create(model="chat", prompt="hi", temperature=7)
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.responses.create(model="chat", input="hi", top_p=-0.5)
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["param"] == "top_p" and refused.value.body["code"] == "decimal_below_min_value"


def test_anthropic_refuses_in_anthropics_words_and_range(gateway: Served) -> None:
    with anthropic.Anthropic(base_url=gateway.url, api_key=MASTER, max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError) as refused:
            client.messages.create(model="chat", max_tokens=10, messages=USER, extra_body={"temperature": 1.5})
        assert refused.value.body == {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "temperature: Input should be less than or equal to 1",
            },
        }
        with pytest.raises(anthropic.BadRequestError, match="top_k: Input should be greater than or equal to 0"):
            client.messages.create(model="chat", max_tokens=10, messages=USER, extra_body={"top_k": -1})


def test_ollama_refuses_options_out_of_range_naming_the_option(gateway: Served) -> None:
    client = ollama.Client(host=gateway.url, headers={"authorization": f"Bearer {MASTER}"})
    try:
        with pytest.raises(ollama.ResponseError) as refused:
            client.chat(model="chat", messages=USER, options={"temperature": -1})
    finally:
        client._client.close()
    assert refused.value.status_code == 400
    assert refused.value.error == (
        "Invalid 'options.temperature': decimal below minimum value. Expected a value >= 0, but got -1 instead."
    )


def test_a_route_with_pass_unchecked_params_lets_them_through(gateway: Served, sdk: openai.OpenAI) -> None:
    gateway.openai.reset()
    sdk.chat.completions.create(model="raw", messages=USER, temperature=5, top_p=3)
    sent = gateway.openai.requests[-1].json
    assert (sent["temperature"], sent["top_p"]) == (5, 3)


def test_embedding_dimensions_out_of_range_never_reach_the_upstream(gateway: Served, sdk: openai.OpenAI) -> None:
    """An upstream that honoured `dimensions: 2**40` would answer terabytes (the fake one tries)."""
    gateway.openai.reset()
    with pytest.raises(openai.BadRequestError) as refused:
        sdk.embeddings.create(model="embed", input="hi", dimensions=2**40)
    assert refused.value.body == {
        "message": f"Invalid 'dimensions': integer above maximum value. Expected a value <= 65536, "
        f"but got {2**40} instead.",
        "type": "invalid_request_error",
        "param": "dimensions",
        "code": "integer_above_max_value",
    }
    with gateway.client() as http:
        for dimensions in (0, "64", 1.5):
            response = http.post("/api/embed", json={"model": "embed", "input": "hi", "dimensions": dimensions})
            assert response.status_code == 400, response.text
            assert "'dimensions'" in response.json()["error"]
    assert gateway.openai.requests == []
    assert len(sdk.embeddings.create(model="embed", input="hi", dimensions=8).data[0].embedding) == 8
