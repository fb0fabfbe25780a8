"""Pooled keep-alive upstream clients behind one tiny interface, so the candidates differ
only in the library: post(url, body) -> (status, bytes) and stream(url, body) -> chunks.
Pick with PROXY_CLIENT=aiohttp|httpx|pyreqwest|http1 (http1: llmmux's src/ on PYTHONPATH). Create inside the running event loop.
"""

import os
from collections.abc import AsyncIterator

HEADERS = {"Content-Type": "application/json"}
POOL = 256


class Aiohttp:
    def __init__(self):
        import aiohttp

        connector = aiohttp.TCPConnector(limit=POOL, keepalive_timeout=60)
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def post(self, url: str, body: bytes) -> tuple[int, bytes]:
        async with self.session.post(url, data=body, headers=HEADERS) as r:
            return r.status, await r.read()

    async def stream(self, url: str, body: bytes) -> AsyncIterator[bytes]:
        async with self.session.post(url, data=body, headers=HEADERS) as r:
            async for chunk in r.content.iter_any():
                yield chunk


class Httpx:
    def __init__(self):
        import httpx

        limits = httpx.Limits(max_connections=POOL, max_keepalive_connections=POOL)
        self.client = httpx.AsyncClient(limits=limits, timeout=60)

    async def post(self, url: str, body: bytes) -> tuple[int, bytes]:
        r = await self.client.post(url, content=body, headers=HEADERS)
        return r.status_code, r.content

    async def stream(self, url: str, body: bytes) -> AsyncIterator[bytes]:
        async with self.client.stream("POST", url, content=body, headers=HEADERS) as r:
            async for chunk in r.aiter_raw():
                yield chunk


class Pyreqwest:
    def __init__(self):
        from pyreqwest.client import ClientBuilder

        self.client = ClientBuilder().max_connections(POOL).pool_max_idle_per_host(POOL).build()

    async def post(self, url: str, body: bytes) -> tuple[int, bytes]:
        r = await self.client.post(url).headers(HEADERS).body_bytes(body).build().send()
        return r.status, bytes(await r.bytes())

    async def stream(self, url: str, body: bytes) -> AsyncIterator[bytes]:
        async with self.client.post(url).headers(HEADERS).body_bytes(body).build_streamed() as r:
            while (chunk := await r.body_reader.read_chunk()) is not None:
                yield bytes(chunk)


class Http1:
    """llmmux's own client (providers/http1.py), as its Http1Transport drives it."""

    def __init__(self):
        from llmmux.providers.transport import Http1Transport, UpstreamRequest

        self.transport = Http1Transport(timeout=60, connect_timeout=10, read_timeout=None, max_connections=POOL)
        self.request = UpstreamRequest

    async def post(self, url: str, body: bytes) -> tuple[int, bytes]:
        r = await self.transport.send(self.request("POST", url, HEADERS, body))
        return r.status, r.body

    async def stream(self, url: str, body: bytes) -> AsyncIterator[bytes]:
        async with self.transport.open_stream(self.request("POST", url, HEADERS, body)) as r:
            async for chunk in r.chunks:
                yield chunk


CLIENTS = {"aiohttp": Aiohttp, "httpx": Httpx, "pyreqwest": Pyreqwest, "http1": Http1}


def make_client():
    return CLIENTS[os.environ.get("PROXY_CLIENT", "aiohttp")]()
