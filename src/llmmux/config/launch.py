"""`launch:` on a provider entry: the model server llmmux starts, watches and stops itself.

    providers:
      qwen-server:
        type: llama_cpp_server          # any OpenAI-compatible type
        models: [qwen-7b]
        launch:
          command: llama-server         # a string (split like a shell) or a list
          args: [-m, /models/qwen.gguf, --port, "${PORT}", --alias, "${MODEL}"]
          env: {CUDA_VISIBLE_DEVICES: "0"}
          cwd: /srv/models
          ready: /health                # a path on the server or a URL; default: the type's health endpoint
          start_timeout: 2m
          idle_ttl: 10m                 # stop after this long unused; absent or negative: keep running
          stop_signal: SIGTERM
          stop_timeout: 10s             # then SIGKILL
          group: gpu                    # swap group: at most group_max of its servers run at once
          group_max: 1
          restart: true                 # after a crash, with backoff (1s, 2s, 4s ... 30s)
          max_restarts: 5               # consecutive crashes before giving up until the next request
          log_file: ~/llmmux/qwen.log   # default: $LLMMUX_STATE_DIR/logs/<provider>.log

`${PORT}` is the port llmmux gives the server (`launch.port`, the port in `base_url`, or a
free one) and `${MODEL}` the provider's first model name; both may appear in args, env and
base_url. The block is read once, by the loader, into `ProviderConfig.launch`.
"""

from __future__ import annotations

import os
import shlex
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .env import environment
from .fields import FieldReader
from .paths import state_dir
from .units import FOREVER

DEFAULT_START_TIMEOUT_S = 120.0
DEFAULT_STOP_TIMEOUT_S = 10.0
DEFAULT_MAX_RESTARTS = 5
KEYS = frozenset(
    [
        "command",
        "args",
        "env",
        "cwd",
        "port",
        "ready",
        "start_timeout",
        "idle_ttl",
        "stop_signal",
        "stop_timeout",
        "group",
        "group_max",
        "restart",
        "max_restarts",
        "log_file",
        "model",
    ]
)


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """How to run one managed server, macros not yet filled in."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    port: int | None = None
    ready: str | None = None
    start_timeout: float = DEFAULT_START_TIMEOUT_S
    idle_ttl: float = FOREVER
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = DEFAULT_STOP_TIMEOUT_S
    group: str | None = None
    group_max: int = 1
    restart: bool = True
    max_restarts: int = DEFAULT_MAX_RESTARTS
    log_file: Path = Path("llmmux.log")
    model: str = ""

    def argv(self, port: int) -> list[str]:
        return [fill(arg, port, self.model) for arg in self.command]

    def environment(self, port: int) -> dict[str, str]:
        return {**environment(), **{k: fill(v, port, self.model) for k, v in self.env.items()}}


def fill(text: str, port: int, model: str) -> str:
    return text.replace("${PORT}", str(port)).replace("${MODEL}", model)


def parse_launch(
    raw: Any, path: str, provider: str, base_url: str, models: list[str], reader: FieldReader
) -> LaunchSpec | None:
    """Provider `provider`'s `launch:` block (at key path `path`); each problem is reported to
    `reader` under `path.key` (a config with errors is refused) and the default kept."""
    if not isinstance(raw, dict):
        reader.error(path, "expected a mapping with at least a 'command'")
        return None
    for key in sorted(set(raw) - KEYS):
        reader.error(f"{path}.{key}", f"unknown key; known: {', '.join(sorted(KEYS))}")
    return LaunchSpec(
        command=_command(raw, path, reader),
        env={str(k): str(v) for k, v in (reader.mapping(f"{path}.env", raw.get("env")) or {}).items()},
        cwd=_cwd(raw, path, reader),
        port=_port(raw, base_url, path, reader),
        ready=str(raw["ready"]) if raw.get("ready") is not None else None,
        start_timeout=reader.field(raw, path, "start_timeout", reader.lifetime, DEFAULT_START_TIMEOUT_S),
        idle_ttl=reader.field(raw, path, "idle_ttl", reader.lifetime, FOREVER),
        stop_signal=_signal(raw, path, reader),
        stop_timeout=reader.field(raw, path, "stop_timeout", reader.lifetime, DEFAULT_STOP_TIMEOUT_S),
        group=str(raw["group"]) if raw.get("group") is not None else None,
        group_max=reader.field(raw, path, "group_max", reader.positive_integer, 1),
        restart=bool(raw.get("restart", True)),
        max_restarts=reader.field(raw, path, "max_restarts", reader.integer, DEFAULT_MAX_RESTARTS),
        log_file=log_path(provider, raw.get("log_file")),
        model=str(raw.get("model") or (models or [""])[0]),
    )


def log_path(provider: str, configured: Any = None) -> Path:
    """Where a managed server's output goes: `launch.log_file`, else the state folder."""
    if configured:
        return Path(os.path.expanduser(str(configured)))
    return state_dir() / "logs" / f"{provider}.log"


def _cwd(raw: dict[str, Any], path: str, reader: FieldReader) -> str | None:
    if raw.get("cwd") is None:
        return None
    cwd = os.path.expanduser(str(raw["cwd"]))
    if not Path(cwd).is_dir():
        reader.error(f"{path}.cwd", f"{cwd} is not a folder")
    return cwd


def _command(raw: dict[str, Any], path: str, reader: FieldReader) -> list[str]:
    command = raw.get("command")
    if isinstance(command, str) and command.strip():
        argv = shlex.split(command)
    elif isinstance(command, list) and command and all(isinstance(c, str | int | float) for c in command):
        argv = [str(c) for c in command]
    else:
        reader.error(f"{path}.command", "expected the server's command: a string or a list of arguments")
        return []
    args = raw.get("args") or []
    if not isinstance(args, list):
        reader.error(f"{path}.args", "expected a list of arguments")
        return argv
    return argv + [str(a) for a in args]


def _port(raw: dict[str, Any], base_url: str, path: str, reader: FieldReader) -> int | None:
    value = raw.get("port")
    if value is not None:
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
            return value
        reader.error(f"{path}.port", f"expected a port number, got {value!r}")
        return None
    if base_url and "${PORT}" not in base_url:
        try:
            return urlsplit(base_url).port
        except ValueError:
            reader.error(f"{path}.port", f"base_url {base_url!r} has an invalid port")
    return None


def _signal(raw: dict[str, Any], path: str, reader: FieldReader) -> int:
    value = raw.get("stop_signal", "SIGTERM")
    name = str(value).upper()
    name = name if name.startswith("SIG") else "SIG" + name
    number = getattr(signal, name, None)
    if isinstance(number, signal.Signals):
        return int(number)
    reader.error(f"{path}.stop_signal", f"expected a signal name such as SIGTERM or SIGINT, got {value!r}")
    return int(signal.SIGTERM)
