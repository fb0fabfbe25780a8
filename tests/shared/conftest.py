"""Shared-state tests run against both stores: a real redis-server and the holder process, and a
representative subset against valkey-server too (`valkey_server`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.redis import TempRedis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[TempRedis]:
    with TempRedis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: TempRedis) -> Iterator[str]:
    redis_server.client().flushall()
    yield redis_server.url


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[TempRedis]:
    with TempRedis(valkey=True) as server:
        yield server


@pytest.fixture
def valkey_url(valkey_server: TempRedis) -> Iterator[str]:
    valkey_server.client().flushall()
    yield valkey_server.url
