"""A throwaway redis-server for tests: a temp dir, a free loopback port, no persistence.

`kill()` and `restart()` (same port) let chaos tests take it away mid-load and bring it back.
`TempRedis(valkey=True)` runs valkey-server instead (built by scripts/build-valkey into
.cache/valkey/, as Debian 12 has no package) and names it with a valkey:// URL.
`TempRedis(tls=True, password=...)` serves TLS only (a CA and a certificate for 127.0.0.1 made
here with the openssl CLI) and requires the password, as a managed Redis in the cloud does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any, Self

import redis

from .gateway import free_port

VALKEY_SERVER = os.path.join(os.path.dirname(__file__), "..", "..", ".cache", "valkey", "valkey-server")


def available() -> bool:
    return shutil.which("redis-server") is not None


def server_binary(valkey: bool) -> str:
    if not valkey:
        found = shutil.which("redis-server")
        if found is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        return found
    found = os.environ.get("LLMMUX_VALKEY_SERVER") or shutil.which("valkey-server") or VALKEY_SERVER
    if not os.access(found, os.X_OK):
        raise RuntimeError("valkey-server is not built: run scripts/build-valkey (scripts/install-system does)")
    return found


class TempRedis:
    """`with TempRedis() as r:` then `r.url`; `r.kill()`, `r.restart()`."""

    def __init__(self, *, tls: bool = False, password: str | None = None, valkey: bool = False) -> None:
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="llmmux-redis-")
        self.process: subprocess.Popen[bytes] | None = None
        self.tls, self.password, self.valkey = tls, password, valkey
        if tls:
            make_certificates(self.root)

    @property
    def ca_file(self) -> str:
        return os.path.join(self.root, "ca.crt")

    @property
    def url(self) -> str:
        if self.tls:  # redis-py reads the CA to trust from the URL's query
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca_file}"
        return f"{'valkey' if self.valkey else 'redis'}://127.0.0.1:{self.port}/0"

    def _options(self) -> list[str]:
        options = ["--port", str(self.port)]
        if self.tls:
            certs = {"cert": "server.crt", "key": "server.key", "ca-cert": "ca.crt"}
            options = ["--port", "0", "--tls-port", str(self.port), "--tls-auth-clients", "no"]
            for name, file in certs.items():
                options += [f"--tls-{name}-file", os.path.join(self.root, file)]
        if self.password:
            options += ["--requirepass", self.password]
        return options

    def start(self) -> Self:
        binary = server_binary(self.valkey)
        self.process = subprocess.Popen(
            [binary, *self._options(), "--bind", "127.0.0.1", "--dir", self.root, "--save", ""]
            + ["--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = self.client(socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        client.close()
        return self

    def client(self, **options: Any) -> redis.Redis:
        if self.tls:
            options.update(ssl=True, ssl_ca_certs=self.ca_file)
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, **options)

    def kill(self) -> None:
        """SIGKILL: the clients see their connections reset, as when a Redis host dies."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_certificates(folder: str) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it (ca.crt, server.crt/.key)."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)

    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=llmmux test CA")
    run("req", *curve, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(folder, "san.ext"), "w") as ext:
        ext.write("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "2", "-extfile", "san.ext")  # fmt: skip
