"""The server's one path table: 404 for unknown paths and 405 with Allow for wrong methods,
admin paths included, each in its door's error shape."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmmux.errors import MethodNotAllowed, NotFound
from llmmux.events import ClientApi
from llmmux.server.dispatch import Access, Door, PathTable
from llmmux.server.http import Request, Send
from support import Gateway
from upstreams import FakeOpenAI

MASTER = "sk-master-0123456789"
AUTH = {"authorization": f"Bearer {MASTER}"}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    ledger: Path = tmp_path_factory.mktemp("dispatch") / "ledger.db"
    with FakeOpenAI() as up:
        config = {
            "server": {"master_key": MASTER},
            "ledger": {"path": str(ledger)},
            "providers": {"up": {"type": "openai_compatible", "base_url": up.url, "models": ["gpt-4o-mini"]}},
        }
        with Gateway(config) as gateway:
            yield gateway


def openai_error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]  # type: ignore[no-any-return]


def test_an_unknown_admin_path_is_a_404_not_a_400(gw: Gateway) -> None:
    response = httpx.get(gw.root_url + "/admin/nothing", headers=AUTH)
    assert response.status_code == 404
    assert openai_error(response)["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/admin/reload", "POST"),
        ("POST", "/admin/usage", "GET, HEAD"),
        ("PUT", "/admin/keys", "GET, HEAD, POST"),
        ("POST", "/admin/keys/key_1", "GET, HEAD, PATCH, DELETE"),
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/v1/responses/resp_1", "GET, HEAD, DELETE"),
    ],
)
def test_a_wrong_method_is_a_405_naming_the_allowed_ones(gw: Gateway, method: str, path: str, allow: str) -> None:
    response = httpx.request(method, gw.root_url + path, headers=AUTH)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert openai_error(response)["code"] == "method_not_allowed"


def test_ollamas_paths_answer_in_ollamas_shape(gw: Gateway) -> None:
    unknown = httpx.get(gw.root_url + "/api/nothing", headers=AUTH)
    assert unknown.status_code == 404 and set(unknown.json()) == {"error"}
    assert isinstance(unknown.json()["error"], str)  # Ollama's errors are a bare string
    wrong = httpx.get(gw.root_url + "/api/chat", headers=AUTH)
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
    assert isinstance(wrong.json()["error"], str)


def test_anthropics_paths_answer_in_anthropics_shape(gw: Gateway) -> None:
    wrong = httpx.get(gw.root_url + "/v1/messages", headers=AUTH)
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
    body = wrong.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"


def test_an_admin_path_is_matched_before_the_key_is_asked_for(gw: Gateway) -> None:
    # An existing admin path still needs the key; an unknown one is unknown to everyone.
    assert httpx.get(gw.root_url + "/admin/keys").status_code == 401
    assert httpx.get(gw.root_url + "/admin/nothing").status_code == 404


async def _nothing(router: object, request: Request, send: Send) -> None:
    return None


def test_the_table_takes_path_parameters_one_segment_or_the_rest() -> None:
    door = Door(ClientApi.OPENAI, lambda e: (e.status, b""))
    table = PathTable(door)
    table.add("/admin/keys/{id}", {"GET": _nothing}, door, Access.ADMIN)  # type: ignore[dict-item]
    table.add("/v1/models/{model:path}", {"GET": _nothing}, door)  # type: ignore[dict-item]
    assert table.match("/admin/keys/key_1", "GET").params == {"id": "key_1"}
    assert isinstance(table.match("/admin/keys/key_1/more", "GET").error, NotFound)
    assert table.match("/v1/models/openai/gpt-4o", "GET").params == {"model": "openai/gpt-4o"}
    wrong = table.match("/admin/keys/key_1", "DELETE").error
    assert isinstance(wrong, MethodNotAllowed) and wrong.allow == ("GET", "HEAD")
    with pytest.raises(ValueError, match="twice"):
        table.add("/x", {"GET": _nothing}, door)  # type: ignore[dict-item]
        table.add("/x", {"GET": _nothing}, door)  # type: ignore[dict-item]
