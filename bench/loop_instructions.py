"""Instructions a c=1 request costs the gateway's event-loop thread (callgrind): load-insensitive.

    python bench/loop_instructions.py                                    # this tree, JSON
    python bench/loop_instructions.py --stream --src /tmp/before/src --src src

On a machine shared with other work, wall-clock latency and even CPU time per request move
with the neighbours; the number of instructions a request executes does not. For each source
tree, `llmmux serve --workers 1` (ledger, metrics and request log on, as bench/hotpath.py)
runs under valgrind's callgrind with instrumentation off; after a warm-up the instrumentation
is switched on for N sequential requests on one kept-alive connection (what wrk -c1 sends),
then off, and the counts are dumped per thread. Reported per request: the loop thread's
instructions (the request's own path; the sinks' batched accounting, whose share per request
moves with how many requests a 100 ms batch holds, is held back until after the run) and all
threads'. About a minute per tree. Needs valgrind.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fake_upstreams
import measure
from payloads import request_body
from run import write_config

WARM = 300
# The sinks' batches run every 100 ms of wall time, so under callgrind (some 50 times slower,
# and slower still on a busy machine) the requests a batch holds, and so its share per
# request, move with the load. Counted apart: the batches wait for the end of the run.
LAUNCH = """
import runpy, sys
import llmmux.sinks
llmmux.sinks.Batches.__init__.__defaults__ = (3600.0,)
sys.argv[0] = "llmmux"
runpy.run_module("llmmux", run_name="__main__", alter_sys=True)
"""


def raw_request(model: str, stream: bool) -> bytes:
    body = request_body(model, stream).encode()
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def exchange(sock: socket.socket, request: bytes, stream: bool) -> None:
    """Send one request and read its whole reply (a chunked stream's end, or content-length bytes)."""
    sock.sendall(request)
    reply = b""
    while True:
        got = sock.recv(65536)
        if not got:
            raise RuntimeError("the gateway closed the connection")
        reply += got
        head, sep, body = reply.partition(b"\r\n\r\n")
        if not sep:
            continue
        if stream and reply.endswith(b"0\r\n\r\n"):
            break
        length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
        if not stream and length and len(body) >= int(length[1]):
            break
    if not reply.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(reply[:300].decode("latin-1"))


def totals(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    return 0


def measure_tree(src: str, ups: tuple[int, int], requests: int, stream: bool, tmp: Path) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(dir=tmp))
    write_config(folder, *ups)
    port = fake_upstreams.free_port()
    out = folder / "callgrind.%p"
    env = {**os.environ, "PYTHONPATH": src}
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
           f"--callgrind-out-file={out}", sys.executable, "-c", LAUNCH, "serve", "--config", str(folder),
           "--port", str(port), "--workers", "1"]  # fmt: skip
    with (folder / "gateway.log").open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        measure.wait_health(port, timeout=300, proc=proc)
        request = raw_request("bench-stream" if stream else "bench-model", stream)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            for _ in range(WARM):
                exchange(sock, request, stream)
            time.sleep(0.5)
            subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], capture_output=True, check=True)
            for _ in range(requests):
                exchange(sock, request, stream)
            time.sleep(0.3)  # the last requests' accounting batch (every 100 ms) is part of their cost
            subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], capture_output=True, check=True)
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], capture_output=True, check=True)
            time.sleep(1)
    finally:
        proc.terminate()
        proc.wait(60)
    dumps = list(folder.glob(f"callgrind.{proc.pid}*"))
    loop = sum(totals(d) for d in dumps if d.name.endswith("-01"))
    return {"loop_k": loop / requests / 1000, "all_k": sum(totals(d) for d in dumps) / requests / 1000}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", action="append", help="a source tree's src/ (repeatable; default this tree's)")
    p.add_argument("--stream", action="store_true", help="20-event streams instead of JSON replies")
    p.add_argument("--requests", type=int, default=400)
    args = p.parse_args()
    srcs = args.src or [str(HERE.parent / "src")]
    with fake_upstreams.running() as ups, tempfile.TemporaryDirectory(prefix="llmmux-instructions-") as tmp:
        for src in srcs:
            found = measure_tree(str(Path(src).resolve()), ups, args.requests, args.stream, Path(tmp))
            print(
                f"{src}: {found['loop_k']:.0f}k instructions a {'stream' if args.stream else 'JSON request'} "
                f"on the loop thread, {found['all_k']:.0f}k in all threads"
            )


if __name__ == "__main__":
    main()
