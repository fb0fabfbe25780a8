"""LiteLLM's proxy and Portkey's gateway in front of the benchmark's fake upstreams (`hotpath.py --peers`).

Found in `.cache/bench-peers/` (`bench/peers/install` puts them there, pinned) or on PATH
(`litellm`; `PORTKEY_GATEWAY` naming Portkey's `build/start-server.js`). Each runs with 2
worker processes (`--workers`), as llmmux does, on 127.0.0.1:

* LiteLLM: `litellm --config ... --num_workers N`, both fake upstreams as `openai/` models
  with their `api_base`, a master key (1.110 refuses to start without one) sent by every
  request; its defaults otherwise (no database, its access log to a file);
* Portkey: `bench/peers/portkey-cluster.mjs` runs the gateway in N node:cluster workers;
  every request names its upstream in the `x-portkey-config` header
  (`{"provider": "openai", "custom_host": ...}`), Portkey's own way to reach an
  OpenAI-compatible server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import fake_upstreams
import measure
from run import stop_gateway

HERE = Path(__file__).resolve().parent
PEERS = Path(os.environ.get("LLMMUX_PEERS_DIR", HERE.parent / ".cache" / "bench-peers"))
CLUSTER = HERE / "peers" / "portkey-cluster.mjs"
LITELLM_KEY = "sk-bench-litellm-0123456789abcdef0123456789abcdef"
LITELLM_CONFIG = """model_list:
  - model_name: bench-model
    litellm_params: {{model: openai/upstream-model, api_base: "http://127.0.0.1:{json_port}/v1", api_key: bench}}
  - model_name: bench-stream
    litellm_params: {{model: openai/upstream-model, api_base: "http://127.0.0.1:{sse_port}/v1", api_key: bench}}
general_settings: {{master_key: {key}}}
"""
HEALTHY_WITHIN_S = 240  # LiteLLM 1.110 takes 20 to 60 s to import and start on a busy 2-core box


@dataclass
class Peer:
    """A started peer: its process, port, the headers per upstream (JSON, stream), seconds to healthy."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    headers: tuple[tuple[str, ...], tuple[str, ...]]
    startup_s: float


def litellm_command() -> list[str] | None:
    local = PEERS / "litellm" / "bin" / "litellm"
    found = str(local) if os.access(local, os.X_OK) else shutil.which("litellm")
    return [found] if found else None


def portkey_entry() -> str | None:
    local = PEERS / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    found = os.environ.get("PORTKEY_GATEWAY") or (str(local) if local.is_file() else None)
    return found if found and shutil.which("node") else None


def available() -> dict[str, bool]:
    return {"LiteLLM": litellm_command() is not None, "Portkey": portkey_entry() is not None}


def version(name: str) -> str:
    """The installed version, for the table's row name."""
    if name == "LiteLLM":
        command = litellm_command()
        assert command is not None
        python = Path(command[0]).with_name("python")
        probe = [str(python), "-c", "from importlib.metadata import version; print(version('litellm'))"]
    else:
        entry = portkey_entry()
        assert entry is not None
        package = Path(entry).parent.parent / "package.json"
        return str(json.loads(package.read_text())["version"])
    done = subprocess.run(probe, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout.strip() or "?"


def _start(command: list[str], log: Path, health: str, env: dict[str, str] | None = None) -> tuple:
    """Start `command` ("{port}" filled in) in its own session; wait for GET `health` to be 200."""
    port = fake_upstreams.free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        startup = measure.wait_health(port, HEALTHY_WITHIN_S, process, health)
    except Exception:
        print("".join(log.read_text(errors="replace").splitlines(True)[-20:]), file=sys.stderr)
        stop_gateway(process)
        raise
    return process, port, startup


def start_litellm(folder: Path, ports: tuple[int, int], workers: int, log: Path) -> Peer:
    command = litellm_command()
    assert command is not None
    config = folder / "litellm.yaml"
    config.write_text(LITELLM_CONFIG.format(json_port=ports[0], sse_port=ports[1], key=LITELLM_KEY))
    # The local cost map: no fetch from GitHub at start (nothing leaves this machine).
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    args = ["--config", str(config), "--host", "127.0.0.1", "--port", "{port}", "--num_workers", str(workers)]
    process, port, startup = _start(command + args, log, "/health/liveliness", env)
    auth = (f"Authorization: Bearer {LITELLM_KEY}",)
    return Peer("LiteLLM", process, port, (auth, auth), startup)


def start_portkey(ports: tuple[int, int], workers: int, log: Path) -> Peer:
    entry = portkey_entry()
    assert entry is not None
    command = ["node", str(CLUSTER), entry, "{port}", str(workers)]
    process, port, startup = _start(command, log, "/")
    headers = tuple(
        (
            "x-portkey-config: "
            + json.dumps({"provider": "openai", "api_key": "bench", "custom_host": f"http://127.0.0.1:{p}/v1"}),
        )
        for p in ports
    )
    return Peer("Portkey", process, port, (headers[0], headers[1]), startup)


def start(name: str, folder: Path, ports: tuple[int, int], workers: int, log: Path) -> Peer:
    """Start the peer `name` (a key of `available()`), its config written to `folder`."""
    if name == "LiteLLM":
        return start_litellm(folder, ports, workers, log)
    return start_portkey(ports, workers, log)
