"""Client input never produces a 500: each hole found in issue 12 (item 6), against `llmmux serve`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from security.bad_input_gateway import Served, served

DEPTH = 5000  # far past the ~1,000 levels at which decoding ran out of stack
DEEP = "[" * DEPTH + "]" * DEPTH

OPENAI_DOORS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"]
ANTHROPIC_DOORS = ["/v1/messages", "/v1/messages/count_tokens"]
OLLAMA_DOORS = ["/api/chat", "/api/generate", "/api/embed", "/api/embeddings", "/api/show", "/api/pull"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("no500")) as gw:
        yield gw
    assert "Traceback" not in gw.output[0], gw.output[0][-3000:]


@pytest.mark.parametrize("path", OPENAI_DOORS + ["/admin/keys"])
def test_deep_json_is_a_400_in_openai_shape(gateway: Served, path: str) -> None:
    with gateway.client() as http:
        response = http.post(path, content='{"model": "chat", "messages": ' + DEEP + "}")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"] == "The JSON body of your request is nested too deeply."


@pytest.mark.parametrize("path", ANTHROPIC_DOORS)
def test_deep_json_is_a_400_in_anthropic_shape(gateway: Served, path: str) -> None:
    with gateway.client() as http:
        response = http.post(path, content='{"model": "chat", "max_tokens": 5, "messages": ' + DEEP + "}")
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "nested too deeply" in body["error"]["message"]


@pytest.mark.parametrize("path", OLLAMA_DOORS)
def test_deep_json_is_a_400_in_ollama_shape(gateway: Served, path: str) -> None:
    with gateway.client() as http:
        response = http.post(path, content='{"model": "chat", "messages": ' + DEEP + "}")
    assert response.status_code == 400, response.text
    assert response.json() == {"error": "The JSON body of your request is nested too deeply."}


@pytest.mark.parametrize("field", ["store", "now", "hash", "id"])
def test_an_admin_key_body_with_an_unknown_field_is_a_400_naming_it(gateway: Served, field: str) -> None:
    with gateway.client() as http:
        response = http.post("/admin/keys", json={"name": "x", field: 1})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == field and f"Unknown field '{field}'" in error["message"]
        assert all(k["name"] != "x" for k in http.get("/admin/keys").json()["data"])


def test_an_admin_key_patch_with_an_unknown_field_is_a_400(gateway: Served) -> None:
    with gateway.client() as http:
        key = http.post("/admin/keys", json={"name": "patchme"}).json()
        response = http.patch(f"/admin/keys/{key['id']}", json={"created_at": 0})
    assert response.status_code == 400 and response.json()["error"]["param"] == "created_at"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"name": "x", "expires": "99999999999d"}, "expires"),
        ({"name": "x", "expires": "9" * 400 + "d"}, "expires"),
        ({"name": "x", "rpm": 10**30}, "rpm"),
        ({"name": "x", "budget": 1e13}, "budget"),
        ({"name": "x", "rpm": "60"}, "rpm"),
        ({"name": ""}, "name"),
        ({"name": "x" * 100_000}, "name"),
    ],
)
def test_admin_key_values_out_of_range_are_400s(gateway: Served, body: dict[str, object], param: str) -> None:
    with gateway.client() as http:
        response = http.post("/admin/keys", json=body)
        assert all(k["name"] != "x" for k in http.get("/admin/keys").json()["data"])
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_a_budget_of_1e400_is_a_400(gateway: Served) -> None:
    with gateway.client() as http:
        response = http.post("/admin/keys", content='{"name": "inf", "budget": 1e400}')
        assert response.status_code == 400, response.text
        assert all(k["name"] != "inf" for k in http.get("/admin/keys").json()["data"])


@pytest.mark.parametrize(
    "query",
    [
        "/admin/usage?since=99999999999d",
        "/admin/usage?until=99999999999d",
        "/admin/usage?since=9999-12-31T23:59:59-12:00",
        "/admin/requests?limit=99999999999999999999999",
        "/admin/requests?limit=0",
        "/admin/requests?limit=%C2%B2",
        "/admin/requests?before=99999999999999999999999",
        "/admin/requests?model=a%00b",
    ],
)
def test_admin_queries_out_of_range_are_400s(gateway: Served, query: str) -> None:
    with gateway.client() as http:
        response = http.get(query)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"
