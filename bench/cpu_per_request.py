"""llmmux's CPU per request in-process, for two source trees in the same run: a load-independent check.

Each round runs N requests through the ASGI app (bench/ledger_overhead.py's `build` with the
SQLite ledger, metrics and request log on, against an upstream that answers at once) in a
fresh process per tree, trees alternating, and reads the process's CPU time and the event
loop thread's own: wall-clock rates on a shared machine move with the neighbours, CPU time
much less. Each tree runs with its own copy of bench/ and tests/ (`git archive REV src bench
tests | tar -x -C DIR`), so an older tree is driven by the code it shipped with.

    python bench/cpu_per_request.py --before /tmp/before --after . --rounds 5 --requests 3000

Reported: per tree, the median over rounds of CPU microseconds per request (process, event
loop thread, other threads: the log writer and the ledger's executor), and the after/before
ratio of the process medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROUND = """
import asyncio, json, sys, tempfile, time
from pathlib import Path
tree, n = Path(sys.argv[1]), int(sys.argv[2])
sys.path[:0] = [str(tree / "src"), str(tree / "tests"), str(tree / "bench")]  # tests/upstreams first: trees before bench/fake_upstreams.py had a bench/upstreams.py
import contextlib, inspect
import ledger_overhead as lo
lo.quiet_logs()
# trees since the live upstream take its URL (health probes answered); older ones probe 127.0.0.1:9
live = "upstream_url" in inspect.signature(lo.build).parameters
with tempfile.TemporaryDirectory() as d, (lo.live_upstream() if live else contextlib.nullcontext()) as url:
    build = (lambda path: lo.build(path, url)) if live else lo.build
    asyncio.run(lo.round_trip(build(Path(d) / "warm.db"), 500, 32, 0.25))
    app = build(Path(d) / "ledger.db")
    p, t = time.process_time(), time.thread_time()
    asyncio.run(lo.round_trip(app, n, 32, 0.25))
    p, t = time.process_time() - p, time.thread_time() - t
print(json.dumps({"process": p / n * 1e6, "loop": t / n * 1e6}))
"""


def one_round(tree: Path, requests: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", ROUND, str(tree), str(requests)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="a tree with src/, bench/ and tests/")
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for i in range(args.rounds):
        for name, tree in trees.items():
            results[name].append(one_round(tree, args.requests))
            last = results[name][-1]
            print(f"round {i + 1} {name:6}: {last['process']:6.1f} us CPU a request ({last['loop']:6.1f} on the loop)")
    medians = {}
    for name, rows in results.items():
        process = statistics.median(r["process"] for r in rows)
        loop = statistics.median(r["loop"] for r in rows)
        medians[name] = process
        print(f"{name:6}: median {process:.1f} us a request: {loop:.1f} on the loop, {process - loop:.1f} elsewhere")
    print(f"after/before: {medians['after'] / medians['before']:.3f}")


if __name__ == "__main__":
    main()
