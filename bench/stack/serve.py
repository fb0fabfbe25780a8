"""Run a candidate proxy with the gateway's CLI shape (--config --port --workers).

--server picks the stack:
  uvicorn          uvicorn (uvloop + httptools); N>1 -> this supervisor starts N processes,
                   each binding its own SO_REUSEPORT socket (the kernel spreads connections)
  uvicorn-workers  `uvicorn --workers N` (one shared listening socket, uvicorn's supervisor)
  granian-asgi     granian --interface asgi --workers N --loop uvloop
  granian-rsgi     granian --interface rsgi --workers N --loop uvloop
--config DIR reads an llmmux providers.yaml to find the fake upstreams (stream / non-stream).
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
UVICORN_OPTS = {"loop": "uvloop", "http": "httptools", "lifespan": "on", "access_log": False, "log_level": "warning"}


def upstreams_from_config(config: Path) -> None:
    import yaml

    providers = yaml.safe_load((config / "providers.yaml").read_text())["providers"]
    urls = [p["base_url"].removesuffix("/v1") for p in providers.values()]
    os.environ["UPSTREAM"], os.environ["UPSTREAM_SSE"] = urls[0], urls[1]


def reuseport_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    return sock


def run_uvicorn_worker(port: int) -> None:
    import uvicorn

    sys.path.insert(0, str(HERE))
    config = uvicorn.Config("app_asgi:app", **UVICORN_OPTS)
    uvicorn.Server(config).run(sockets=[reuseport_socket(port)])


def supervise(port: int, workers: int) -> int:
    """Start N single-process workers on one port via SO_REUSEPORT; stop them on SIGTERM."""
    cmd = [sys.executable, __file__, "--server", "uvicorn", "--port", str(port), "--worker"]
    procs = [subprocess.Popen(cmd) for _ in range(workers)]

    def stop(*_):
        for p in procs:
            p.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return max(p.wait() for p in procs)


def exec_cmd(args) -> list[str]:
    bin_dir = Path(sys.executable).parent
    if args.server == "uvicorn-workers":
        return [
            str(bin_dir / "uvicorn"),
            "app_asgi:app",
            "--app-dir",
            str(HERE),
            "--port",
            str(args.port),
            "--workers",
            str(args.workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    interface = args.server.removeprefix("granian-")
    return [
        shutil.which("granian") or str(bin_dir / "granian"),  # PATH first: granian is no project dependency
        f"app_{interface}:app",
        "--interface",
        interface,
        "--working-dir",
        str(HERE),
        "--port",
        str(args.port),
        "--workers",
        str(args.workers),
        "--loop",
        "uvloop",
        "--no-ws",
        "--log-level",
        "warning",
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--server", default="uvicorn", choices=["uvicorn", "uvicorn-workers", "granian-asgi", "granian-rsgi"]
    )
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--config", type=Path)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.config:
        upstreams_from_config(args.config)
    if args.server != "uvicorn":
        cmd = exec_cmd(args)
        os.execv(cmd[0], cmd)
    if args.worker or args.workers == 1:
        run_uvicorn_worker(args.port)
        return 0
    return supervise(args.port, args.workers)


if __name__ == "__main__":
    sys.exit(main())
