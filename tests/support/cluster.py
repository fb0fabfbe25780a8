"""One gateway, several processes: `--workers 3` on one box, or three instances behind nginx.

Both topologies answer on `cluster.port`; tests send traffic there and assert that limits,
health and keys behave as one gateway. `Fleet` runs each `llmmux serve` as its own process
(so one can be SIGKILLed) with Debian's nginx in front as the load balancer, run in the
foreground from a temp prefix.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

import httpx

from .gateway import free_port
from .serve import start_serve, stop_serve, wait_healthy

NGINX = """
daemon off;
master_process on;
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {root}/body;
  proxy_temp_path {root}/proxy;
  fastcgi_temp_path {root}/fastcgi;
  uwsgi_temp_path {root}/uwsgi;
  scgi_temp_path {root}/scgi;
  upstream llmmux {{
{servers}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://llmmux;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 60s;
      proxy_next_upstream error timeout;
    }}
  }}
}}
"""


def nginx_available() -> bool:
    return shutil.which("nginx") is not None or os.path.exists("/usr/sbin/nginx")


class OneBox:
    """`llmmux serve --workers N`: the holder process shares state between the workers."""

    def __init__(self, config: Path, workers: int = 3) -> None:
        self.config, self.workers = config, workers
        self.port = free_port()
        self.output = ""

    def __enter__(self) -> Self:
        self.process = start_serve(self.config, self.port, ["--workers", str(self.workers)])
        try:
            wait_healthy(self.port, self.process)
        except BaseException:  # no __exit__ follows: SIGTERM stops the supervisor and its workers
            if self.process.poll() is None:
                stop_serve(self.process)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.output = stop_serve(self.process)


class Fleet:
    """N separate `llmmux serve` instances on one config (state on Redis), nginx in front."""

    def __init__(self, config: Path, instances: int = 3, args: tuple[str, ...] = ()) -> None:
        self.config = config
        self.args = args
        self.ports = [free_port() for _ in range(instances)]
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="llmmux-nginx-")
        self.processes: list[subprocess.Popen[bytes]] = []
        self.output = ""

    def __enter__(self) -> Self:
        self.processes = [start_serve(self.config, port, self.args) for port in self.ports]
        try:
            for port, process in zip(self.ports, self.processes):
                wait_healthy(port, process)
            self._start_nginx()
        except BaseException:  # no __exit__ follows: stop the instances here, or they outlive the test
            for process in self.processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=10)
            raise
        return self

    def _start_nginx(self) -> None:
        servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in self.ports)
        user = "user root;" if os.geteuid() == 0 else ""
        conf = Path(self.root) / "nginx.conf"
        conf.write_text(NGINX.format(root=self.root, servers=servers, port=self.port, user=user))
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.nginx = subprocess.Popen(
            [binary, "-p", self.root, "-c", str(conf), "-e", f"{self.root}/error.log"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.nginx.poll() is not None:
                raise AssertionError("nginx did not start: " + Path(f"{self.root}/error.log").read_text())
            time.sleep(0.05)

    def kill(self, index: int) -> None:
        """SIGKILL one instance: no shutdown, no goodbye to Redis."""
        self.processes[index].send_signal(signal.SIGKILL)
        self.processes[index].wait(timeout=10)

    def __exit__(self, *exc: object) -> None:
        self.nginx.send_signal(signal.SIGQUIT)
        try:
            self.nginx.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.nginx.kill()
        outputs = []
        for process in self.processes:
            if process.poll() is None:
                outputs.append(stop_serve(process))
            elif process.stdout is not None:
                outputs.append(process.stdout.read().decode())
                process.stdout.close()
        self.output = "\n".join(outputs)
        shutil.rmtree(self.root, ignore_errors=True)
