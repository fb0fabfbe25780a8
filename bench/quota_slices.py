"""What a request served from its slices costs in `Quotas`: one admit and one release.

A key's rpm, tpm and budget are far above the load, so every request is admitted from the
slices (`llmmux/shared/quota.py`) and only the background top-ups reach the store (a holder
in the same process). Each source tree runs in its own process, rounds interleaved so all
see the same machine; the best of each round's three passes is reported, per tree:

    python bench/quota_slices.py                                   # this checkout's src/
    python bench/quota_slices.py src /tmp/main/src --rounds 5      # several trees, same run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time


async def per_request_us(requests: int) -> float:
    from llmmux.shared import Shared
    from llmmux.shared.holder import Holder, HolderStore

    path = os.path.join(tempfile.mkdtemp(prefix="llmmux-bench-"), "state.sock")
    server = asyncio.ensure_future(Holder().serve(path))
    while not os.path.exists(path):
        await asyncio.sleep(0.01)
    shared = Shared(HolderStore(path), instance="bench", timeout_s=5.0)
    await shared.start()
    quotas, limits = shared.quotas, {"spend_key": "key.k:0"}

    async def run(n: int) -> float:
        started = time.perf_counter()
        for i in range(n):
            await quotas.admit("key.k", rpm=10**9, tpm=10**12, tokens=100, budget=1e9, **limits)
            # Replies use more and fewer tokens than estimated: debts and credits on the slice.
            quotas.release("key.k", tpm=10**12, tokens=20 if i % 4 else -30, estimate=100, cost=1e-4, **limits)
            if i % 64 == 0:
                await asyncio.sleep(0)  # the top-ups and releases sent meanwhile are answered
        return (time.perf_counter() - started) / n * 1e6

    await run(requests // 8)  # warm up: the slices grow to their size
    best = min([await run(requests) for _ in range(3)])
    await shared.aclose()
    server.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await server
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trees", nargs="*", default=["src"], help="source trees (each a src/ holding llmmux)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=40_000, help="admit + release pairs per pass")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: measure, print
    args = parser.parse_args()
    if args.one:
        print(f"{asyncio.run(per_request_us(args.requests)):.3f}")
        return
    results: dict[str, list[float]] = {tree: [] for tree in args.trees}
    for _ in range(args.rounds):
        for tree in args.trees:
            env = {**os.environ, "PYTHONPATH": os.path.abspath(tree)}
            command = [sys.executable, __file__, "--one", "--requests", str(args.requests)]
            out = subprocess.run(command, env=env, check=True, capture_output=True, text=True, timeout=600)
            results[tree].append(float(out.stdout.strip().splitlines()[-1]))
    for tree, values in results.items():
        shown = " ".join(f"{v:.3f}" for v in values)
        print(f"{tree}: median {statistics.median(values):.3f} us a request (rounds: {shown})")


if __name__ == "__main__":
    main()
