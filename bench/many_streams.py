"""Ten thousand streams open at once through `llmmux serve --workers 2`: all complete, memory flat after.

    python bench/many_streams.py                     # 10,000 streams of 20 events, one every 0.5 s
    python bench/many_streams.py --streams 4000 --rounds 3 --pace-ms 250

The paced upstream (`tests/upstreams/paced_sse.py`, its own process) holds every stream
open for events x pace; the client (`tests/support/many_streams.py`, this process) opens
the connections in waves of 250 every 0.1 s, so all of them are open together. Each round
reports how many streams completed whole, the errors, the longest silence a client saw,
the wall time, and the RSS of every gateway process before the first round and after
each: "flat" means the second round ends where the first did.

The gateway runs with the ledger, metrics and request log on (its output goes to
bench/results/many-streams-gateway.log). It needs, per worker, about 2 x streams / workers
open files (a client socket and an upstream socket per stream): `llmmux serve` lifts its
soft limit to the hard one, and this script does the same for itself (docs/deploy.md).
The config sets the provider's `max_connections` to the stream count and
`server.max_connections_per_client: 0`, since every stream comes from 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]


import upstreams
from hotpath import memory, start_llmmux
from run import stop_gateway
from support.many_streams import run_streams

CONFIG = """
server: {{max_connections_per_client: 0}}
providers:
  paced:
    type: openai_compatible
    base_url: http://127.0.0.1:{port}/v1
    max_connections: {streams}
    models: [paced-model]
"""


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run `finally`: stop the gateway and upstream
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--streams", type=int, default=10_000)
    p.add_argument("--events", type=int, default=20)
    p.add_argument("--pace-ms", type=float, default=500)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--wave", type=int, default=250, help="new connections per wave (default 250, every 0.1 s)")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this process holds the client's end of each stream
    (HERE / "results").mkdir(exist_ok=True)
    upstream_port = upstreams.free_port()
    paced = subprocess.Popen(
        [sys.executable, str(HERE.parent / "tests" / "upstreams" / "paced_sse.py"), "--port", str(upstream_port),
         "--events", str(args.events), "--pace-ms", str(args.pace_ms)],
    )  # fmt: skip
    try:
        upstreams.wait_port(upstream_port)
        with tempfile.TemporaryDirectory(prefix="llmmux-streams-") as tmp:
            (Path(tmp) / "providers.yaml").write_text(CONFIG.format(port=upstream_port, streams=args.streams))
            log = HERE / "results" / "many-streams-gateway.log"
            gateway, port, startup = start_llmmux(Path(tmp), args.workers, HERE.parent / "src", log)
            try:
                time.sleep(1)
                print(f"healthy after {startup:.2f} s; RSS MiB before: {memory(gateway.pid, args.workers)}")
                print("| round | streams completed | errors | events | longest silence | wall | RSS MiB after |")
                print("|---|---|---|---|---|---|---|")
                for n in range(1, args.rounds + 1):
                    r = asyncio.run(
                        run_streams(
                            port, args.streams, model="paced-model", events=args.events, wave=args.wave, every_s=0.1
                        )
                    )
                    time.sleep(2)  # the ledger's and the log's last batches
                    rss = memory(gateway.pid, args.workers)
                    print(
                        f"| {n} | {r.completed:,} of {args.streams:,} (open together: {r.most_open:,}) "
                        f"| {len(r.errors)}{f' ({r.errors[0]})' if r.errors else ''} | {r.events:,} "
                        f"| {r.longest_gap_s:.2f} s | {r.wall_s:.1f} s | {rss} |",
                        flush=True,
                    )
            finally:
                stop_gateway(gateway)
    finally:
        upstreams.stop(paced)
    print(f"open-file limit here: soft {soft} -> {hard} (hard); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
