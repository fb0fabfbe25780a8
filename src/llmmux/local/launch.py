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
base_url.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config.env import environment
from ..config.fields import FieldReader
from ..config.model import ProviderConfig
from ..config.paths import state_dir
from ..config.problems import Problems
from ..config.units import FOREVER
from .runtime import IN_PROCESS_TYPES

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


class LaunchError(ValueError):
    """Bad `launch:` settings; `problems` are (key, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"launch.{k}: {m}" if k else f"launch: {m}" for k, m in problems))
        self.problems = problems


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


def parse_launch(config: ProviderConfig) -> LaunchSpec:
    """The `launch:` block of a provider entry; raises LaunchError listing every problem."""
    raw = config.extra.get("launch")
    if not isinstance(raw, dict):
        raise LaunchError([("", "expected a mapping with at least a 'command'")])
    reader = FieldReader(config.name, Problems())  # paths relative to `launch.`
    for key in sorted(set(raw) - KEYS):
        reader.error(key, f"unknown key; known: {', '.join(sorted(KEYS))}")
    spec = LaunchSpec(
        command=_command(raw, reader),
        env={str(k): str(v) for k, v in (reader.mapping("env", raw.get("env")) or {}).items()},
        cwd=os.path.expanduser(str(raw["cwd"])) if raw.get("cwd") is not None else None,
        port=_port(raw, config.base_url, reader),
        ready=str(raw["ready"]) if raw.get("ready") is not None else None,
        start_timeout=reader.field(raw, "", "start_timeout", reader.lifetime, DEFAULT_START_TIMEOUT_S),
        idle_ttl=reader.field(raw, "", "idle_ttl", reader.lifetime, FOREVER),
        stop_signal=_signal(raw, reader),
        stop_timeout=reader.field(raw, "", "stop_timeout", reader.lifetime, DEFAULT_STOP_TIMEOUT_S),
        group=str(raw["group"]) if raw.get("group") is not None else None,
        group_max=reader.field(raw, "", "group_max", reader.positive_integer, 1),
        restart=bool(raw.get("restart", True)),
        max_restarts=reader.field(raw, "", "max_restarts", reader.integer, DEFAULT_MAX_RESTARTS),
        log_file=log_path(config.name, raw.get("log_file")),
        model=str(raw.get("model") or (config.model_names() or [""])[0]),
    )
    if reader.problems:
        raise LaunchError([(p.path, p.message) for p in reader.problems])
    return spec


def launch_problems(config: ProviderConfig) -> list[tuple[str, str]]:
    """For `llmmux validate`: what is wrong with an entry's `launch:` block."""
    try:
        spec = parse_launch(config)
    except LaunchError as exc:
        return exc.problems
    problems = []
    if config.type in IN_PROCESS_TYPES:
        problems.append(
            (
                "",
                f"type {config.type} runs models in-process; a managed server needs an "
                "OpenAI-compatible type such as llama_cpp_server or openai_compatible",
            )
        )
    if spec.cwd is not None and not Path(spec.cwd).is_dir():
        problems.append(("cwd", f"{spec.cwd} is not a folder"))
    return problems


def log_path(provider: str, configured: Any = None) -> Path:
    """Where a managed server's output goes: `launch.log_file`, else the state folder."""
    if configured:
        return Path(os.path.expanduser(str(configured)))
    return state_dir() / "logs" / f"{provider}.log"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the server binds it moments later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _command(raw: dict[str, Any], reader: FieldReader) -> list[str]:
    command = raw.get("command")
    if isinstance(command, str) and command.strip():
        argv = shlex.split(command)
    elif isinstance(command, list) and command and all(isinstance(c, str | int | float) for c in command):
        argv = [str(c) for c in command]
    else:
        reader.error("command", "expected the server's command: a string or a list of arguments")
        return []
    args = raw.get("args") or []
    if not isinstance(args, list):
        reader.error("args", "expected a list of arguments")
        return argv
    return argv + [str(a) for a in args]


def _port(raw: dict[str, Any], base_url: str, reader: FieldReader) -> int | None:
    value = raw.get("port")
    if value is not None:
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
            return value
        reader.error("port", f"expected a port number, got {value!r}")
        return None
    if base_url and "${PORT}" not in base_url:
        try:
            return urlsplit(base_url).port
        except ValueError:
            reader.error("port", f"base_url {base_url!r} has an invalid port")
    return None


def _signal(raw: dict[str, Any], reader: FieldReader) -> int:
    value = raw.get("stop_signal", "SIGTERM")
    name = str(value).upper()
    name = name if name.startswith("SIG") else "SIG" + name
    number = getattr(signal, name, None)
    if isinstance(number, signal.Signals):
        return int(number)
    reader.error("stop_signal", f"expected a signal name such as SIGTERM or SIGINT, got {value!r}")
    return int(signal.SIGTERM)
