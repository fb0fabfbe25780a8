"""A throwaway PostgreSQL cluster for tests: initdb in a temp dir, served on a free loopback port.

PostgreSQL refuses to run as root, so as root the cluster is created and run as the
`postgres` system user (Debian's package creates it). Durability is switched off
(fsync, synchronous_commit): the tests check llmmux's logic, not the disk.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from typing import Self

from .gateway import free_port

USER = "llmmux"


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def available() -> bool:
    return find_bin("initdb") is not None and find_bin("pg_ctl") is not None


class TempPostgres:
    """`with TempPostgres() as pg:` then `pg.url("dbname")`; `pg.create_database(name)` for isolation."""

    def __init__(self) -> None:
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="llmmux-pg-")
        self.data = os.path.join(self.root, "data")
        self._as_postgres = os.geteuid() == 0

    def _run(self, *argv: str) -> None:
        command = list(argv)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stdout}{result.stderr}")

    def start(self) -> Self:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self._run(initdb, "-D", self.data, "-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8")
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(pg_ctl, "-D", self.data, "-l", os.path.join(self.root, "log"), "-o", options, "-w", "start")
        return self

    def stop(self) -> None:
        pg_ctl = find_bin("pg_ctl")
        try:
            if pg_ctl and os.path.exists(os.path.join(self.data, "postmaster.pid")):
                self._run(pg_ctl, "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        psql = find_bin("psql")
        assert psql is not None
        subprocess.run(
            [psql, self.url(), "-q", "-c", f'CREATE DATABASE "{name}"'], check=True, capture_output=True, timeout=30
        )
        return self.url(name)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
