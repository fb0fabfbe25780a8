"""Ten thousand streams open at once through `llmmux serve --workers 2`: all complete, memory flat after.

    python bench/many_streams.py                     # 10,000 streams of 20 events, one every 0.5 s
    python bench/many_streams.py --streams 4000 --rounds 3 --pace-ms 250

The paced upstream (`tests/upstreams/paced_sse.py`, its own process) holds every stream
open for events x pace; the client (`tests/support/many_streams.py`, this process) opens
the connections in waves of 250 every 0.1 s, so all of them are open together. Each round
reports how many streams completed whole, the errors, the longest silence a client saw
and the wall time; then the memory table gives each process's RSS (workers one by one,
the supervisor and the state holder apart): idle before the first round, the peak during
each round (sampled every 0.25 s), 1 s after it, and `--settle` seconds after it, once the
upstream pool's sweep and the worker's trim after a burst have run ("flat" means each
round settles where the first did).

`--allocator malloc` runs the gateway with PYTHONMALLOC=malloc (bench/README.md, "What a
worker keeps after 10,000 streams", says what that trades).

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
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]


import fake_upstreams
from hotpath import Setup, memory, start_llmmux
from run import stop_gateway
from support.many_streams import run_streams


def rss(root: int, workers: int) -> dict[str, float]:
    """RSS MiB of the gateway under `root` by process (`hotpath.memory`, which takes a whole setup)."""
    return memory(Setup("llmmux", (0, 0), ("", ""), root=root), workers)


class PeakRSS:
    """The highest RSS of each gateway process while a round runs, sampled on a thread."""

    def __init__(self, root: int, workers: int, every_s: float = 0.25) -> None:
        self.root, self.workers, self.every_s = root, workers, every_s
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()

    @contextmanager
    def sampling(self) -> Iterator[None]:
        self.peak = {}
        self._stop.clear()
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for name, mib in rss(self.root, self.workers).items():
                self.peak[name] = max(mib, self.peak.get(name, 0.0))


def memory_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    """Markdown: one column per moment, one row per process (workers, then the supervisor and holder)."""
    names = list(rows[0][1])
    order = sorted(names, key=lambda n: (not n.startswith("worker"), n))
    lines = ["| process | " + " | ".join(label for label, _ in rows) + " |", "|---" * (len(rows) + 1) + "|"]
    for name in order:
        lines.append(f"| {name} | " + " | ".join(f"{r.get(name, float('nan')):.1f}" for _, r in rows) + " |")
    return "\n".join(lines)


@contextmanager
def allocator(name: str) -> Iterator[None]:
    """PYTHONMALLOC for the gateway this starts (it inherits the environment); this process's own is unchanged."""
    before = os.environ.get("PYTHONMALLOC")
    if name == "malloc":
        os.environ["PYTHONMALLOC"] = "malloc"
    else:
        os.environ.pop("PYTHONMALLOC", None)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHONMALLOC", None)
        else:
            os.environ["PYTHONMALLOC"] = before


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
    p.add_argument("--settle", type=float, default=15, help="seconds after a round for its settled RSS (default 15)")
    p.add_argument(
        "--src", default=str(HERE.parent / "src"), help="the gateway's source tree (an older one, to compare)"
    )
    p.add_argument("--allocator", choices=["pymalloc", "malloc"], default="pymalloc", help="the gateway's PYTHONMALLOC")
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this process holds the client's end of each stream
    (HERE / "results").mkdir(exist_ok=True)
    upstream_port = fake_upstreams.free_port()
    paced = subprocess.Popen(
        [sys.executable, str(HERE.parent / "tests" / "upstreams" / "paced_sse.py"), "--port", str(upstream_port),
         "--events", str(args.events), "--pace-ms", str(args.pace_ms)],
    )  # fmt: skip
    try:
        fake_upstreams.wait_port(upstream_port)
        with tempfile.TemporaryDirectory(prefix="llmmux-streams-") as tmp:
            (Path(tmp) / "providers.yaml").write_text(CONFIG.format(port=upstream_port, streams=args.streams))
            log = HERE / "results" / "many-streams-gateway.log"
            with allocator(args.allocator):
                gateway, port, startup = start_llmmux(Path(tmp), args.workers, args.src, log)
            try:
                time.sleep(1)
                moments = [("idle", rss(gateway.pid, args.workers))]
                peaks = PeakRSS(gateway.pid, args.workers)
                print(f"healthy after {startup:.2f} s; allocator {args.allocator}")
                print("| round | streams completed | errors | events | longest silence | wall |")
                print("|---|---|---|---|---|---|")
                for n in range(1, args.rounds + 1):
                    with peaks.sampling():
                        r = asyncio.run(
                            run_streams(
                                port, args.streams, model="paced-model", events=args.events, wave=args.wave, every_s=0.1
                            )
                        )
                    time.sleep(1)
                    moments += [(f"round {n} peak", peaks.peak), (f"{n}: 1 s after", rss(gateway.pid, args.workers))]
                    print(
                        f"| {n} | {r.completed:,} of {args.streams:,} (open together: {r.most_open:,}) "
                        f"| {len(r.errors)}{f' ({r.errors[0]})' if r.errors else ''} | {r.events:,} "
                        f"| {r.longest_gap_s:.2f} s | {r.wall_s:.1f} s |",
                        flush=True,
                    )
                    time.sleep(max(0.0, args.settle - 1))  # the pool's sweep (5 s) and the trim after a burst
                    moments.append((f"{n}: {args.settle:g} s after", rss(gateway.pid, args.workers)))
                print(f"\nRSS MiB, allocator {args.allocator}:\n" + memory_table(moments), flush=True)
            finally:
                stop_gateway(gateway)
    finally:
        fake_upstreams.stop(paced)
    print(f"open-file limit here: soft {soft} -> {hard} (hard); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
