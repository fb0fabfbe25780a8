"""From a fresh clone, the README's two commands: `scripts/serve` brings up a gateway that
answers a chat on the embedded model, and `scripts/test` runs a subset of the suite. Each
installs into the clone's own ./.venv first (from the package index, through the same pip
cache). The clone is of the working tree as it is now, committed into a snapshot, so the
test checks the code being tested; HOME is a new folder, so the no-config ledger must land
in its data directory and the clone must stay clean.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from llmmux import __version__
from support.gateway import free_port

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT_REF = "refs/llmmux-tests/fresh-clone"
INSTALL_LIMIT_S = 600  # a first install resolves every dependency; later ones are a no-op


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def snapshot_commit(tmp: Path) -> str:
    """A commit of the working tree (untracked, non-ignored files included), leaving the index alone."""
    env = {**os.environ, "GIT_INDEX_FILE": str(tmp / "index")}
    git("read-tree", "HEAD", cwd=REPO, env=env)
    git("add", "-A", cwd=REPO, env=env)
    tree = git("write-tree", cwd=REPO, env=env)
    identity = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return git("commit-tree", tree, "-p", "HEAD", "-m", "snapshot", cwd=REPO, env={**env, **identity})


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("fresh")
    commit = snapshot_commit(tmp)
    git("update-ref", SNAPSHOT_REF, commit, cwd=REPO)
    try:
        target = tmp / "llmmux"
        git("clone", "-q", "--no-checkout", str(REPO), str(target), cwd=tmp)
        git("fetch", "-q", str(REPO), SNAPSHOT_REF, cwd=target)
        git("checkout", "-q", "FETCH_HEAD", cwd=target)
    finally:
        git("update-ref", "-d", SNAPSHOT_REF, cwd=REPO)
    yield target


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def user_env(home: Path) -> dict[str, str]:
    """A new user's environment: a new HOME, nothing of llmmux's set, the usual pip cache kept."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMMUX_", "XDG_", "VIRTUAL_ENV", "PYTHON"))}
    env["PIP_CACHE_DIR"] = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
    env["HOME"] = str(home)
    return env


@pytest.mark.timeout(INSTALL_LIMIT_S + 120)
def test_serve_from_a_fresh_clone(clone: Path, home: Path, tmp_path: Path) -> None:
    # The install runs first, on its own, so the port is chosen (and taken) right before use.
    subprocess.run(["scripts/ensure-venv"], cwd=clone, env=user_env(home), check=True, timeout=INSTALL_LIMIT_S)
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["scripts/serve", "--port", str(port)], cwd=clone, env=user_env(home), stdout=out, stderr=out
        )
    try:
        wait_healthy(port, process, log)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        reply = client.chat.completions.create(
            model="smollm2-135m", messages=[{"role": "user", "content": "Say hi"}], max_tokens=4
        )
        assert reply.choices[0].message.content
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    output = log.read_text()
    ledger = home / ".local" / "share" / "llmmux" / "llmmux.db"
    assert f"ledger             {ledger}" in output
    assert f"base_url http://127.0.0.1:{port}/v1" in output
    assert "smollm2-135m  <- local: llama_cpp, in-process" in output
    assert f"curl http://127.0.0.1:{port}/v1/chat/completions" in output
    with sqlite3.connect(ledger) as db:
        assert db.execute("SELECT count(*) FROM requests WHERE model = 'smollm2-135m'").fetchone()[0] == 1
    assert git("status", "--porcelain", "--ignored=no", cwd=clone) == ""
    assert not list(clone.glob("*.db*"))


@pytest.mark.timeout(INSTALL_LIMIT_S + 120)
def test_tests_from_a_fresh_clone(clone: Path, home: Path) -> None:
    # valkey-server, which scripts/test builds from source when missing, is taken from this
    # checkout's build (scripts/install-system made it before this suite ran): the same
    # script decides, without compiling it a second time in every run of the suite.
    env = {**user_env(home), "LLMMUX_VALKEY_DIR": str(REPO / ".cache" / "valkey")}
    result = subprocess.run(
        ["scripts/test", "tests/test_periods.py", "tests/cli/test_help.py"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_LIMIT_S,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
    assert "failed" not in result.stdout
    assert git("status", "--porcelain", cwd=clone) == ""


def test_a_second_run_installs_nothing(clone: Path, home: Path) -> None:
    started = time.monotonic()
    subprocess.run(["scripts/ensure-venv"], cwd=clone, env=user_env(home), check=True, timeout=30)
    assert time.monotonic() - started < 1.0


def wait_healthy(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + INSTALL_LIMIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"scripts/serve exited with {process.returncode}: {log.read_text()[-4000:]}")
        try:
            # The banner first: then the gateway answering is this one, not another on a reused port.
            if (
                f"(llmmux {__version__}," in log.read_text()
                and httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
            ):
                return
        except httpx.TransportError:
            time.sleep(0.5)
    raise AssertionError("scripts/serve did not bring up a gateway")
