"""A custom provider that is not HTTP: a failed probe names the exception and its (masked) text
in /health/providers, installed through its entry point and served by the real app."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import Gateway

SECRET = "vault-token-0123456789abcdef"
PROVIDERS = """
from llmmux.providers.base import HealthResult, ProviderType
from llmmux.providers.openai import OpenAIProvider


class VaultProvider(OpenAIProvider):
    async def _get(self, url, timeout):
        raise PermissionError(f"the vault refused {self.config.api_key}")


class SilentProvider(OpenAIProvider):
    async def health(self, timeout=5.0):
        raise ConnectionResetError()


VAULT = ProviderType("vault_probe", VaultProvider, "http://127.0.0.1:9/v1")
SILENT = ProviderType("silent_probe", SilentProvider, "http://127.0.0.1:9/v1")
"""


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    (tmp_path / "probe_message_rows.py").write_text(PROVIDERS)
    info = tmp_path / "probe_message_rows-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: probe-message-rows\nVersion: 1.0\n")
    entry_points = "vault_probe = probe_message_rows:VAULT\nsilent_probe = probe_message_rows:SILENT\n"
    (info / "entry_points.txt").write_text("[llmmux.providers]\n" + entry_points)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("probe_message_rows", None)


def config() -> dict[str, Any]:
    return {
        "providers": {
            "vault": {"type": "vault_probe", "api_key": SECRET, "models": ["m"]},
            "silent": {"type": "silent_probe", "models": ["n"]},
        },
        "health_checks": {"interval_seconds": 60, "timeout_seconds": 1, "retry_attempts": 1},
    }


def probes(http: httpx.Client) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        rows = {row["name"]: row for row in http.get("/health/providers").json()["providers"]}
        if all(row["last_probe"] for row in rows.values()) or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_a_failed_probe_names_the_exception_type_and_its_masked_text(installed: None) -> None:
    with Gateway(config()) as gw, httpx.Client(base_url=gw.root_url) as http:
        rows = probes(http)
    vault, silent = rows["vault"]["last_probe"], rows["silent"]["last_probe"]
    assert not vault["ok"] and vault["detail"] == "PermissionError: the vault refused vau****"
    assert "PermissionError: the vault refused" in rows["vault"]["reason"]
    # An exception with no text, raised by the provider's own health(): its type, not "" or a lost check.
    assert not silent["ok"] and silent["detail"] == "ConnectionResetError"
    assert "ConnectionResetError" in rows["silent"]["reason"]
