"""`llmmux serve` as a real process with a master key, a SQLite ledger and virtual keys made through the admin API."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import httpx

from support import free_port
from support.serve import start_serve, stop_serve, wait_healthy


class Served:
    """`with Served(tmp_path, config) as gw:` then `gw.key("narrow", models=[...])`, `gw.post(...)`.

    The config is written as llmmux.yaml (JSON is YAML); `master` is its master key.
    `output` holds everything the process printed once it has stopped.
    """

    def __init__(
        self, folder: Path, config: Mapping[str, Any], master: str, args: Sequence[str] = ("--reload-interval", "0.2")
    ) -> None:
        self.folder = folder
        self.master = master
        self.config_path = folder / "llmmux.yaml"
        self.write_config(config)
        self.port = free_port()
        self.args = list(args)
        self.output = ""
        self._process: subprocess.Popen[bytes] | None = None

    def write_config(self, config: Mapping[str, Any]) -> None:
        self.config_path.write_text(json.dumps(config, indent=2))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        self._process = start_serve(self.config_path, self.port, self.args)
        wait_healthy(self.port, self._process)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self.output = stop_serve(self._process)

    def key(self, name: str, **fields: Any) -> str:
        """A new virtual key's secret, made with the master key."""
        made = self.post("/admin/keys", {"name": name, **fields}, self.master)
        assert made.status_code == 201, made.text
        return str(made.json()["key"])

    def headers(self, key: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**({"authorization": f"Bearer {key}"} if key else {}), **(extra or {})}

    def post(
        self, path: str, body: Any, key: str | None = None, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        return httpx.post(self.url + path, json=body, headers=self.headers(key, headers), timeout=30)

    def get(self, path: str, key: str | None = None) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.headers(key), timeout=30)

    def delete(self, path: str, body: Any = None, key: str | None = None) -> httpx.Response:
        content = None if body is None else json.dumps(body).encode()
        return httpx.request("DELETE", self.url + path, content=content, headers=self.headers(key), timeout=30)
