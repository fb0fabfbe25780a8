"""Shared-state tests run against both stores: a real redis-server and the holder process."""

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
