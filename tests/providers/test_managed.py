"""Providers with `launch:`: a real child process (tests/local/fake_model_server.py) started
on demand, probed until ready, stopped when idle or swapped out, restarted after a crash."""

from __future__ import annotations

import asyncio
import http.client
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from llmmux.cli import main
from llmmux.config.loader import config_from_dict
from llmmux.errors import AllAttemptsFailed
from llmmux.loading import check
from llmmux.local import supervisor
from llmmux.providers.managed import ManagedProvider
from llmmux.router import Router

SERVER = str(Path(__file__).parent.parent / "local" / "fake_model_server.py")
HI = [{"role": "user", "content": "hi"}]


def entry(tmp_path: Path, name: str, *args: str, type: str = "llama_cpp_server", **launch: Any) -> dict[str, Any]:
    return {
        "type": type,
        "models": [f"{name}-model"],
        "launch": {
            "command": [sys.executable, SERVER, "--port", "${PORT}", "--model", "${MODEL}", *args],
            "log_file": str(tmp_path / f"{name}.log"),
            "stop_timeout": 5,
            **launch,
        },
    }


def managed(router: Router, name: str) -> ManagedProvider:
    found = router.providers[name]
    assert isinstance(found, ManagedProvider)
    return found


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


async def until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_the_server_starts_on_the_first_request_and_stops_with_llmmux(tmp_path: Path) -> None:
    router = Router.from_config({"providers": {"echo": entry(tmp_path, "echo", "--startup-delay", "0.3")}})
    server = managed(router, "echo").server
    assert server.state == "stopped" and server.pid is None
    async with router:
        done = await router.chat(model="echo-model", messages=HI)
        pid = server.pid
        assert done.response.choices[0].message.content == f"echo from {pid}: hi"
        chunks = [c async for c in router.stream(model="echo-model", messages=[{"role": "user", "content": "a b"}])]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == f"echo from {pid}: a b "
        assert server.pid == pid and server.state == "ready" and alive(pid)
        row = managed(router, "echo").runtime_status()[0]
        assert (row["model"], row["state"], row["pid"], row["kind"]) == ("echo-model", "ready", pid, "managed server")
    assert not alive(pid) and server.state == "stopped"
    log = (tmp_path / "echo.log").read_text()
    assert f"fake model server pid {pid} model echo-model port {server.port}" in log
    assert "exited with code" in log


async def test_requests_wait_until_the_ready_check_passes(tmp_path: Path) -> None:
    # /health answers 503 for 0.5 s: requests must not reach the server before that.
    async with Router.from_config({"providers": {"slow": entry(tmp_path, "slow", "--startup-delay", "0.5")}}) as router:
        started = time.monotonic()
        results = await asyncio.gather(*(router.chat(model="slow-model", messages=HI) for _ in range(3)))
        assert time.monotonic() - started >= 0.5
        assert len({r.response.choices[0].message.content for r in results}) == 1  # one server for all three
        assert (tmp_path / "slow.log").read_text().count("starting") == 1


async def test_an_idle_server_is_stopped_after_its_ttl_and_started_again_on_demand(tmp_path: Path) -> None:
    async with Router.from_config({"providers": {"idle": entry(tmp_path, "idle", idle_ttl="300ms")}}) as router:
        server = managed(router, "idle").server
        await router.chat(model="idle-model", messages=HI)
        first = server.pid
        assert managed(router, "idle").runtime_status()[0]["expires_at"] is not None
        await until(lambda: server.state == "stopped")
        assert not alive(first)
        await router.chat(model="idle-model", messages=HI)
        assert server.pid not in (None, first)


async def test_a_crashed_server_is_restarted_with_backoff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor, "BACKOFF_START_S", 0.05)
    async with Router.from_config({"providers": {"crashy": entry(tmp_path, "crashy")}}) as router:
        server = managed(router, "crashy").server
        await router.chat(model="crashy-model", messages=HI)
        first = server.pid
        with pytest.raises((OSError, http.client.HTTPException)):  # the server dies without answering
            urllib.request.urlopen(
                urllib.request.Request(f"http://127.0.0.1:{server.port}/crash", data=b"{}"), timeout=5
            )
        await until(lambda: server.crashes == 1)
        await until(lambda: server.state == "ready" and server.pid not in (None, first))
        done = await router.chat(model="crashy-model", messages=HI)
        assert done.response.choices[0].message.content == f"echo from {server.pid}: hi"
        assert server.last_exit == 3
    assert "exited with code 3" in (tmp_path / "crashy.log").read_text()


async def test_a_server_that_cannot_start_is_a_clear_error_and_is_not_respawned_at_once(tmp_path: Path) -> None:
    config = {"providers": {"broken": entry(tmp_path, "broken", "--exit-at-start", "2")}}
    async with Router.from_config(config) as router:
        with pytest.raises(AllAttemptsFailed) as caught:
            await router.chat(model="broken-model", messages=HI)
        assert "exited with code 2 while starting; see `llmmux logs broken`" in caught.value.message
        with pytest.raises(AllAttemptsFailed) as again:
            await router.chat(model="broken-model", messages=HI)
        assert "next try in" in again.value.message and again.value.attempts[0].error.retry_after
    log = (tmp_path / "broken.log").read_text()
    assert log.count("starting") == 1 and "fatal: cannot load model" in log


async def test_a_swap_group_runs_one_server_at_a_time(tmp_path: Path) -> None:
    providers = {name: entry(tmp_path, name, "--startup-delay", "0.1", group="gpu") for name in ("left", "right")}
    async with Router.from_config({"providers": providers}) as router:
        left, right = managed(router, "left").server, managed(router, "right").server
        assert left.group is right.group and left.group is not None
        await router.chat(model="left-model", messages=HI)
        left_pid = left.pid
        stream = await router.open_stream(model="right-model", messages=HI)
        assert not alive(left_pid) and left.state == "stopped" and right.state == "ready"
        # right has a stream open: left must wait for it instead of cutting it off.
        waiting = asyncio.ensure_future(router.chat(model="left-model", messages=HI))
        await asyncio.sleep(0.3)
        assert not waiting.done() and right.state == "ready"
        assert [c async for c in stream]
        await stream.aclose()
        await waiting
        assert left.state == "ready" and right.state == "stopped"


def test_llmmux_logs_prints_a_managed_servers_output(tmp_path: Path) -> None:
    config = {"providers": {"echo": entry(tmp_path, "echo"), "cloud": {"type": "openai", "api_key": "sk-x"}}}
    (tmp_path / "llmmux.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "echo.log").write_text("".join(f"line {i}\n" for i in range(200)))
    runner = CliRunner()
    result = runner.invoke(main, ["logs", "echo", "-c", str(tmp_path / "llmmux.yaml"), "-n", "3"])
    assert result.exit_code == 0 and result.output == "line 197\nline 198\nline 199\n"
    result = runner.invoke(main, ["logs", "cloud", "-c", str(tmp_path / "llmmux.yaml")])
    assert result.exit_code == 2 and "cloud is not a managed server" in result.output and "echo" in result.output


def test_launch_settings_are_validated() -> None:
    config, problems = config_from_dict(
        {
            "providers": {
                "a": {
                    "type": "llama_cpp_server",
                    "launch": {
                        "args": ["--port", "${PORT}"],
                        "stop_signal": "SIGNOPE",
                        "idle_ttl": "later",
                        "colour": "red",
                    },
                },
                "b": {"type": "llama_cpp", "launch": {"command": "llama-server"}},
                "c": {
                    "type": "openai_compatible",
                    "launch": {"command": "llama-server --port ${PORT}", "cwd": "/nope"},
                },
                "d": {"type": "openai_compatible", "launch": {"command": "llama-server --port ${PORT}"}},
            }
        }
    )
    # Read once, when the entry is parsed: each problem with its file and key path.
    found = {p.path: p for p in problems.errors}
    assert set(found) == {
        f"providers.{p}.launch.{k}"
        for p, k in [("a", "command"), ("a", "stop_signal"), ("a", "idle_ttl"), ("a", "colour"), ("c", "cwd")]
    }
    assert (
        all(p.file == "<dict>" for p in problems.errors) and "not a folder" in found["providers.c.launch.cwd"].message
    )
    assert "unset environment variable" not in str(problems)  # ${PORT} is a launch macro
    assert config.providers["d"].launch is not None and config.providers["d"].launch.command == [
        "llama-server",
        "--port",
        "${PORT}",
    ]
    checked = check(config).problems.errors
    assert "in-process" in {p.path: p.message for p in checked}["providers.b.launch"]
    assert not any(p.path.endswith("base_url") for p in checked)  # the URL comes from the port


async def test_a_connection_the_server_dropped_after_a_stream_is_retried(tmp_path: Path) -> None:
    # llama-server announces keep-alive on a stream, then closes the connection: the next
    # request written to the pooled connection dies before the server sees it.
    config = {"providers": {"keepalive": entry(tmp_path, "keepalive", "--close-after-stream")}}
    async with Router.from_config(config) as router:
        for word in ("one", "two", "three"):
            messages = [{"role": "user", "content": word}]
            chunks = [c async for c in router.stream(model="keepalive-model", messages=messages)]
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).endswith(f"{word} ")
        done = await router.chat(model="keepalive-model", messages=HI)
        assert done.response.choices[0].message.content.endswith(": hi")
    assert (tmp_path / "keepalive.log").read_text().count("POST /v1/chat/completions") == 4


async def test_a_llama_server_reading_a_long_prompt_keeps_the_first_token_wait_alive(tmp_path: Path) -> None:
    # Both servers spend 1.6 s reading the prompt, past a 0.6 s first-token wait; llama-server,
    # asked for progress, reports every 0.2 s, which starts the wait over each time.
    slow: Any = {"first_token_timeout": 0.6, "prompt_tokens_per_second": 10_000}
    reading = ("--prompt-reading", "1.6")
    config = {
        "providers": {
            "llama": {**entry(tmp_path, "llama", *reading), **slow},
            "other": {**entry(tmp_path, "other", *reading, type="openai_compatible"), **slow},
        },
        "health_checks": {"enabled": False},
    }
    async with Router.from_config(config) as router:
        for name in ("llama", "other"):  # started (and so timed) outside the first-token wait
            await router.chat(model=f"{name}-model", messages=HI)
        chunks = [c async for c in router.stream(model="llama-model", messages=HI)]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == f"echo from {managed(router, 'llama').server.pid}: hi "
        assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1  # progress is not output
        with pytest.raises(AllAttemptsFailed, match="sent nothing for 0.6 s"):
            [c async for c in router.stream(model="other-model", messages=HI)]
