"""Fast fake LLM upstreams, so that the benchmark measures the proxy and not the backend.

* nginx (one worker, keep-alive) answers any POST with a fixed chat.completion JSON.
* sse_upstream.py (uvloop, raw asyncio.Protocol) answers with a 20-chunk SSE stream.

Both are started on free 127.0.0.1 ports and stopped by the caller (use `running()`).
"""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from payloads import CHAT_COMPLETION

HERE = Path(__file__).resolve().parent

NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_timeout 120s;
    keepalive_requests 10000000;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{
            default_type application/json;
            return 200 '{body}';
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def nginx_binary() -> str:
    return shutil.which("nginx") or "/usr/sbin/nginx"


def start_nginx(port: int, tmp: Path) -> subprocess.Popen:
    body = CHAT_COMPLETION.replace("\\", "\\\\").replace("'", "\\'")
    assert "$" not in body, "nginx would expand $variables in the body"
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, body=body))
    cmd = [nginx_binary(), "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL)


def start_sse(port: int, pace_ms: float = 0) -> subprocess.Popen:
    cmd = [sys.executable, str(HERE / "sse_upstream.py"), "--port", str(port), "--pace-ms", str(pace_ms)]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running(sse_pace_ms: float = 0):
    """Start both upstreams; yield (nginx_port, sse_port); always stop them."""
    tmp = Path(tempfile.mkdtemp(prefix="llmmux-bench-nginx-"))
    ports = free_port(), free_port()
    procs = [start_nginx(ports[0], tmp), start_sse(ports[1], sse_pace_ms)]
    try:
        for port in ports:
            wait_port(port)
        yield ports
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    with running() as (nginx_port, sse_port):
        print(f"nginx on {nginx_port}, sse on {sse_port}; Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(float(os.environ.get("UPSTREAMS_SECONDS", "3600")))
