"""llmmux with its per-request features on, for `hotpath.py --features`: what each one costs.

Each feature row is a `llmmux serve --workers N` of its own, configured like the plain row
(the ledger on SQLite, metrics, a log line per request) plus one feature:

* shared state: `state.url` on a Redis (or Valkey) started for the run; every request carries
  a virtual key with rpm, tpm and a budget, the models are priced so each request spends,
  and both providers have rpm and `max_concurrency` limits, so admission takes what a
  limited request takes on a fleet: slices of each limit leased from the store
  (`llmmux/shared/quota.py`), spends and concurrency slots counted there;
* cache, misses: `cache: exact` on every route (the in-memory store), each prompt new
  (`wrk/unique.lua`), so every request is looked up, answered by the upstream and stored;
* cache, hits: the same, every request the same prompt, answered from the cache;
* body logging: `logging.bodies: true`, every prompt and reply redacted and stored in the
  SQLite ledger's body table and indexed for full-text search;
* all: shared state, the cache on the same Redis (misses: the costliest case) and body
  logging together.

The keys are created as an operator would, with `llmmux keys create` on the row's ledger.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent / "tests"))  # for support.redis

if TYPE_CHECKING:
    from support.redis import TempRedis

MASTER_KEY = "sk-bench-master-key-0123456789abcdef"
# Far above what a run sends (a few thousand requests a second), as production limits are, so
# nothing is refused; each instance still leases its slices from the store and returns them.
KEY_LIMITS = ("--rpm", "6000000", "--tpm", "1000000000", "--budget", "100000")
PROVIDER_LIMITS = "{rpm: 6000000, max_concurrency: 4096}"
PRICE = "pricing: {input: 1.0, output: 2.0}"

PROVIDERS = """providers:
  fake:
    type: openai_compatible
    base_url: http://127.0.0.1:{json_port}/v1
    status: active
    models: [{{name: bench-model{price}}}]
  fakestream:
    type: openai_compatible
    base_url: http://127.0.0.1:{sse_port}/v1
    status: active
    models: [{{name: bench-stream{price}}}]
"""
SHARED_STATE = """server: {{master_key: {master}}}
state: {{url: "{url}"}}
rate_limit_settings:
  limits:
    fake: {limits}
    fakestream: {limits}
"""
CACHE = "routing_strategy: {cache: {mode: exact, ttl: 3600}}\n"
CACHE_ON_STORE = "cache: {store: redis}\n"  # the store's URL defaults to state.url
BODIES = "logging: {bodies: true}\n"


@dataclass(frozen=True)
class Feature:
    """A feature row: its label, what it turns on, and whether each prompt is new."""

    name: str
    shared_state: bool = False
    cache: bool = False
    bodies: bool = False
    unique_prompts: bool = False


FEATURES = (
    Feature("llmmux + shared state (Redis, keyed)", shared_state=True),
    Feature("llmmux + cache, misses", cache=True, unique_prompts=True),
    Feature("llmmux + cache, hits", cache=True),
    Feature("llmmux + body logging", bodies=True),
    Feature("llmmux, all of them (cache misses)", shared_state=True, cache=True, bodies=True, unique_prompts=True),
)


def write_config(folder: Path, feature: Feature, json_port: int, sse_port: int, store_url: str | None) -> None:
    """`folder`/llmmux.yaml: the plain row's two providers plus what `feature` turns on."""
    price = f", {PRICE}" if feature.shared_state else ""
    text = PROVIDERS.format(json_port=json_port, sse_port=sse_port, price=price)
    if feature.shared_state:
        assert store_url is not None
        text += SHARED_STATE.format(master=MASTER_KEY, url=store_url, limits=PROVIDER_LIMITS)
    if feature.cache:
        text += CACHE + (CACHE_ON_STORE if feature.shared_state else "")
    if feature.bodies:
        text += BODIES
    (folder / "llmmux.yaml").write_text(text)


def create_key(folder: Path, env: dict[str, str]) -> str:
    """A virtual key with KEY_LIMITS in the row's ledger, by the CLI; returns its secret."""
    done = subprocess.run(
        [sys.executable, "-m", "llmmux", "keys", "create", "-c", str(folder), "--name", "bench", *KEY_LIMITS, "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"llmmux keys create failed: {done.stderr[-500:]}")
    return str(json.loads(done.stdout)["key"])


@dataclass
class Store:
    """The Redis or Valkey the shared-state rows use: its URL (one database per row) and pid."""

    server: TempRedis
    next_db: int = 0

    @property
    def pid(self) -> int:
        assert self.server.process is not None
        return self.server.process.pid

    def url(self) -> str:
        """A database of its own for the next row (16 on a default server)."""
        self.next_db += 1
        return self.server.url.rsplit("/", 1)[0] + f"/{self.next_db}"

    def commands(self) -> int:
        """Commands the server has processed since it started (INFO stats; this one counted)."""
        client = self.server.client()
        try:
            return int(client.info("stats")["total_commands_processed"])
        finally:
            client.close()


def valkey_built() -> bool:
    return os.access(HERE.parent / ".cache" / "valkey" / "valkey-server", os.X_OK)


@contextlib.contextmanager
def store(kind: str) -> Iterator[Store]:
    """A throwaway Redis (`redis`: Debian's redis-server) or Valkey (`valkey`: scripts/build-valkey)."""
    from support.redis import TempRedis  # redis-py: needed by --features only

    with TempRedis(valkey=kind == "valkey") as server:  # started and answering PING
        yield Store(server)
