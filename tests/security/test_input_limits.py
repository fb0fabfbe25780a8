"""Names a client chooses are bounded wherever the gateway keeps or repeats them (issue 12, items 3, 7, 11),
against `llmmux serve` as a real process."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from security.bad_input_gateway import ADMIN, MASTER, Served, served

USER = [{"role": "user", "content": "hi"}]
TEN_MB = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("limits"), max_body_size="64MB") as gw:
        yield gw
    assert "Traceback" not in gw.output[0], gw.output[0][-3000:]


def metrics_size(gw: Served) -> int:
    with gw.client() as http:
        return len(http.get("/metrics").content)


def ledger_settled(gw: Served, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while gw.ledger_rows("SELECT count(*) FROM requests")[0][0] < count:
        assert time.monotonic() < deadline, "the ledger did not catch up"
        time.sleep(0.05)


def ledger_statuses(gw: Served, model: str, count: int, timeout: float = 10) -> list[int]:
    """The statuses recorded for `model`, once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while len(rows := gw.ledger_rows("SELECT status FROM requests WHERE public_model = ?", (model,))) < count:
        assert time.monotonic() < deadline, "the ledger did not catch up"
        time.sleep(0.05)
    return [status for (status,) in rows]


def test_five_thousand_unknown_names_are_one_metrics_label(gateway: Served) -> None:
    async def flood() -> list[int]:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(base_url=gateway.url, headers=ADMIN, limits=limits, timeout=30) as http:
            gate = asyncio.Semaphore(16)

            async def one(i: int) -> int:
                async with gate:
                    body = {"model": f"no-such-model-{i}-{os.urandom(4).hex()}", "messages": USER}
                    return (await http.post("/v1/chat/completions", json=body)).status_code

            return await asyncio.gather(*(one(i) for i in range(5000)))

    before = metrics_size(gateway)
    statuses = asyncio.run(flood())
    assert set(statuses) == {404}
    after = metrics_size(gateway)
    # One more label value at most (`(unrouted)`, a few histogram lines), not 5,000 of them.
    assert after - before < 8_000, (before, after)
    with gateway.client() as http:
        assert 'model="(unrouted)",provider="",status="404"} 5000' in http.get("/metrics").text


def test_a_ten_megabyte_model_name_is_refused_and_kept_nowhere(gateway: Served) -> None:
    metrics_before = metrics_size(gateway)
    rows_before = gateway.ledger_rows("SELECT count(*) FROM requests")[0][0]
    name = "m" * TEN_MB
    with gateway.client() as http:
        for path, body in [
            ("/v1/chat/completions", {"model": name, "messages": USER}),
            ("/v1/embeddings", {"model": name, "input": "hi"}),
            ("/v1/messages", {"model": name, "max_tokens": 5, "messages": USER}),
            ("/api/chat", {"model": name, "messages": USER}),
        ]:
            response = http.post(path, json=body)
            assert response.status_code == 400, response.text[:300]
            assert len(response.content) < 1_000
            assert "limit is 256" in response.text
        for path in ("/api/show", "/api/pull"):
            response = http.post(path, json={"model": name})
            assert response.status_code == 400 and len(response.content) < 1_000
    assert gateway.openai.requests == [] and gateway.ollama.requests_to("/api/pull") == []
    ledger_settled(gateway, rows_before + 4)
    longest = gateway.ledger_rows("SELECT max(length(public_model)) FROM requests")[0][0]
    assert longest < 300
    assert metrics_size(gateway) - metrics_before < 8_000


def test_an_unknown_model_is_echoed_no_longer_than_the_cap(gateway: Served) -> None:
    with gateway.client() as http:
        response = http.post("/v1/chat/completions", json={"model": "u" * 256, "messages": USER})
        assert response.status_code == 404
        assert len(response.json()["error"]["message"]) < 400
        response = http.post("/v1/chat/completions", json={"model": "u" * 257, "messages": USER})
        assert response.status_code == 400 and response.json()["error"]["code"] == "model_name_too_long"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "chat", "messages": [{"role": "r" * 1_000_000, "content": "hi"}]}),
        ("/api/chat", {"model": "chat", "messages": USER, "format": "f" * 1_000_000}),
        ("/v1/messages", {"model": "chat", "max_tokens": 5, "messages": [{"role": "r" * 1_000_000, "content": "x"}]}),
        ("/v1/chat/completions", {"model": "chat", "messages": USER, "provider_hint": "h" * 1_000_000}),
    ],
)
def test_a_client_value_quoted_in_an_error_is_clipped(gateway: Served, path: str, body: dict[str, object]) -> None:
    with gateway.client() as http:
        response = http.post(path, json=body)
    assert response.status_code == 400, response.text[:300]
    assert len(response.content) < 3_000 and "more characters]" in response.text


@pytest.mark.parametrize("stream", [False, True])
def test_a_pattern_routed_name_beyond_latin1_reaches_the_client(gateway: Served, stream: bool) -> None:
    """`pat/中文` routes and is answered: its header carries the name percent-encoded, and the
    client gets the reply the ledger records, not a 500 or a closed connection after the charge."""
    with gateway.client() as http:
        response = http.post("/v1/chat/completions", json={"model": "pat/中文", "messages": USER, "stream": stream})
        assert response.status_code == 200, response.text
        assert response.headers["x-llmmux-model"] == quote("中文")
        if stream:
            assert response.text.rstrip().endswith("data: [DONE]")
        else:
            assert response.json()["model"] == "pat/中文"
    assert ledger_statuses(gateway, "pat/中文", 1 + stream) == [200] * (1 + stream)


@pytest.mark.parametrize("name", ["pat/x\x00y", "pat/a\r\nx-injected: 1", "pat/tab\there", "chat\x7f"])
def test_a_model_name_with_control_characters_is_refused_before_routing(gateway: Served, name: str) -> None:
    gateway.openai.reset()
    with gateway.client() as http:
        for path, body in [
            ("/v1/chat/completions", {"model": name, "messages": USER}),
            ("/v1/messages", {"model": name, "max_tokens": 5, "messages": USER}),
            ("/api/generate", {"model": name, "prompt": "hi"}),
        ]:
            response = http.post(path, json=body)
            assert response.status_code == 400, response.text
            assert "control or invisible characters" in response.text
    assert gateway.openai.requests == []


def test_an_unknown_ollama_path_answers_in_ollamas_shape(gateway: Served) -> None:
    with gateway.client() as http:
        for method in ("GET", "POST", "DELETE"):
            response = http.request(method, "/api/no-such-endpoint")
            assert response.status_code == 404
            assert response.json() == {"error": "Unknown path /api/no-such-endpoint."}


def test_a_body_over_the_limit_gets_its_413_before_the_connection_closes(gateway: Served) -> None:
    """Guards what the client sees: the 413 arrives while the client is still sending (declared
    length or chunked), and a client that sends everything first still reads it."""
    port = int(gateway.url.rsplit(":", 1)[1])
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {MASTER}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{head}Content-Length: {200 * 1024 * 1024}\r\n\r\n".encode() + b"x" * 1_000_000)
        assert sock.recv(64).startswith(b"HTTP/1.1 413")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"%x\r\n" % 1_000_000 + b"x" * 1_000_000 + b"\r\n"
        for _ in range(70):
            sock.sendall(chunk)
        assert sock.recv(64).startswith(b"HTTP/1.1 413")
    with httpx.Client(timeout=60) as http:
        response = http.post(gateway.url + "/v1/chat/completions", headers=ADMIN, content=b"x" * (80 * 1024 * 1024))
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
