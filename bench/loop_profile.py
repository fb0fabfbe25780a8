"""Where a c=1 request's loop-thread time goes, by part of the path: cProfile in a real worker.

    python bench/loop_profile.py                       # this tree, 3,000 JSON requests
    python bench/loop_profile.py --src /tmp/before/src --src src --requests 5000

`bench/loop_instructions.py` counts a request's instructions but cannot say whose they are
(callgrind sees the interpreter, not Python functions); `bench/profile_hotpath.py` samples
at c=64, where batching hides what one request pays. This runs `llmmux serve --workers 1`
(ledger, metrics and request log on, the sinks' 100 ms batches held back as in
loop_instructions.py) with cProfile switched on by a signal after a warm-up, sends N
sequential JSON requests on one kept-alive connection (what wrk -c1 sends), and charges each
function's own time to a part of the path by its module, with the rules of
profile_hotpath.py; a builtin's time (dict.get, a socket write) goes to the part that
called it. Python calls a request are counted too: cProfile's overhead grows with them, so
its µs are inflated and the shares are the useful part.
"""

from __future__ import annotations

import argparse
import collections
import os
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import measure
import upstreams
from loop_instructions import exchange, raw_request
from profile_hotpath import PARTS, part_of
from run import write_config

WARM = 300
# The profile starts on SIGUSR1 and is written on SIGUSR2, to the path after the serve arguments.
LAUNCH = """
import cProfile, runpy, signal, sys
import llmmux.sinks
llmmux.sinks.Batches.__init__.__defaults__ = (3600.0,)
out = sys.argv.pop()
profile = cProfile.Profile()
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
def written(*_):
    profile.disable()
    profile.dump_stats(out)
signal.signal(signal.SIGUSR2, written)
sys.argv[0] = "llmmux"
runpy.run_module("llmmux", run_name="__main__", alter_sys=True)
"""


def _part(file: str, func: str) -> str:
    return part_of([f"{func} ({file})"])


def breakdown(stats: pstats.Stats, requests: int) -> dict[str, dict[str, float]]:
    """µs a request and Python calls a request, per part; builtins charged to their callers."""
    seconds: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()
    for (file, _, func), (_, ncalls, own, _, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if file == "~":  # a builtin: split by caller
            for (cfile, _, cfunc), edge in callers.items():
                seconds[_part(cfile, cfunc)] += edge[2]
            continue
        part = _part(file, func)
        seconds[part] += own
        calls[part] += ncalls
    return {p: {"us": seconds[p] / requests * 1e6, "calls": calls[p] / requests} for p in PARTS}


def profile_tree(src: str, ups: tuple[int, int], requests: int, tmp: Path) -> dict[str, dict[str, float]]:
    folder = Path(tempfile.mkdtemp(dir=tmp))
    write_config(folder, *ups)
    port = upstreams.free_port()
    out = folder / "loop.prof"
    cmd = [sys.executable, "-c", LAUNCH, "serve", "--config", str(folder), "--port", str(port), "--workers", "1",
           str(out)]  # fmt: skip
    with (folder / "gateway.log").open("wb") as log:
        proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": src}, stdout=log, stderr=subprocess.STDOUT)
    try:
        measure.wait_health(port, timeout=120, proc=proc)
        request = raw_request("bench-model", False)
        with socket.create_connection(("127.0.0.1", port)) as sock:
            for _ in range(WARM):
                exchange(sock, request, False)
            os.kill(proc.pid, signal.SIGUSR1)
            time.sleep(0.3)
            for _ in range(requests):
                exchange(sock, request, False)
            time.sleep(0.3)  # the last request's accounting, written after its reply, is part of its cost
            os.kill(proc.pid, signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while not out.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(60)
    return breakdown(pstats.Stats(str(out)), requests)


def markdown(results: dict[str, dict[str, dict[str, float]]]) -> str:
    lines = ["| part | " + " | ".join(f"{src}: share, µs, calls" for src in results) + " |"]
    lines.append("|---|" + "---|" * len(results))
    for part in PARTS:
        cells = []
        for found in results.values():
            total = sum(v["us"] for v in found.values())
            cells.append(f"{found[part]['us'] / total:.0%}, {found[part]['us']:.0f}, {found[part]['calls']:.0f}")
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    totals = [
        f"{sum(v['us'] for v in f.values()):.0f} µs, {sum(v['calls'] for v in f.values()):.0f} calls"
        for f in results.values()
    ]
    lines.append("| **total** a request | " + " | ".join(totals) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", action="append", help="a source tree's src/ (repeatable; default this tree's)")
    p.add_argument("--requests", type=int, default=3000)
    args = p.parse_args()
    srcs = args.src or [str(HERE.parent / "src")]
    results = {}
    with upstreams.running() as ups, tempfile.TemporaryDirectory(prefix="llmmux-loop-profile-") as tmp:
        for src in srcs:
            results[src] = profile_tree(str(Path(src).resolve()), ups, args.requests, Path(tmp))
    print(markdown(results))


if __name__ == "__main__":
    main()
