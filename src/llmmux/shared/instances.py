"""What each gateway instance says about itself in its heartbeat, and the drift between them.

Every worker and instance registers with a heartbeat (`Shared`); one that misses
`INSTANCE_TTL_S` is dropped. Instances that should be one gateway must run one config: a
config hash that differs from the majority's is flagged as drift, so `llmmux status` and
`GET /admin/instances` show a deploy that only reached some machines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import time
from collections import Counter
from typing import Any

import msgspec

from .. import __version__
from ..config.model import Config

STARTED = time.time()


def config_hash(config: Config) -> str:
    """A short digest of the settings, the same on every instance that loaded the same config.

    Where an instance listens (host, port, workers) and where its files lie (`source`,
    `origins`, `spellings`) are its own business, not drift.
    """
    server = dataclasses.replace(config.server, host="", port=0, workers=0)
    same = dataclasses.replace(config, source="", origins={}, spellings={}, server=server)
    encoded = msgspec.json.encode(same, order="deterministic", enc_hook=str)
    return hashlib.sha256(encoded).hexdigest()[:16]


def describe(config: Config, in_flight: int, kind: str, providers: dict[str, int] | None = None) -> dict[str, Any]:
    """This instance's heartbeat: who it is, what it runs, how busy it is (by provider, for least_busy)."""
    return {
        "providers": providers or {},
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "version": __version__,
        "config_hash": config_hash(config),
        "started": STARTED,
        "in_flight": in_flight,
        "state": kind,
    }


def with_drift(instances: list[dict[str, Any]]) -> dict[str, Any]:
    """The instance list with each one's `config_drift` flag, for the admin API."""
    hashes = Counter(i.get("config_hash") for i in instances)
    majority = hashes.most_common(1)[0][0] if hashes else None
    rows = [{**i, "config_drift": i.get("config_hash") != majority} for i in instances]
    rows.sort(key=lambda i: (str(i.get("host")), int(i.get("pid") or 0)))
    return {"data": rows, "drift": len(hashes) > 1, "config_hashes": dict(hashes)}
