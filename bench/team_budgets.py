"""What a key's team costs at admission: a key alone vs a key in a team with a budget and rpm, per store.

The same in-process ASGI app and instant upstream as `shared_state.py`. In each mode (memory,
holder, redis) two apps differ only in the key: alone (its rpm), or in a team whose budget
and rpm it also draws on, which with shared state is one more round trip (the team's
buckets and spend) on admission and one more release after. Rounds alternate the order.

    python bench/team_budgets.py                       # 5 rounds of 2,000 sequential requests
    python bench/team_budgets.py --rounds 3 --requests 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

from ledger_overhead import lifespan, quiet_logs
from llmmux.accounting import Accounting
from llmmux.keys import make_key
from llmmux.server.app import App
from llmmux.teams import make_team
from shared_state import LIMITS, MODES, _call_with_key, build_router, holder_process, redis_server


def build(mode: str, where: str | None, in_team: bool) -> tuple[App, str]:
    router = build_router(mode, where)
    accounting = Accounting.from_config(router)
    team_id = None
    if in_team:
        team = make_team("bench-team", budget_usd=1e9, rpm=LIMITS["rpm"])
        accounting.teams.put(team)
        team_id = team.id
    key, secret = make_key("bench", rpm=LIMITS["rpm"], team_id=team_id)
    accounting.keys.put(key)
    return App(router, accounting=accounting), secret


async def p50_ms(app: App, secret: str, requests: int) -> float:
    await lifespan(app, "startup")
    for _ in range(200):
        await _call_with_key(app, secret)
    latencies = []
    for _ in range(requests):
        started = time.perf_counter()
        await _call_with_key(app, secret)
        latencies.append(time.perf_counter() - started)
    await lifespan(app, "shutdown")
    return statistics.median(latencies) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    quiet_logs()
    results: dict[tuple[str, bool], list[float]] = {(m, t): [] for m in MODES for t in (False, True)}
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        with holder_process(folder) as (socket_path, _), redis_server(folder) as (url, _):
            places = {"memory": None, "holder": socket_path, "redis": url}
            for i in range(args.rounds):
                order = [(m, t) for m in MODES for t in (False, True)]
                for mode, in_team in order if i % 2 == 0 else order[::-1]:
                    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):
                        app, secret = build(mode, places[mode], in_team)
                        result = asyncio.run(p50_ms(app, secret, args.requests))
                    results[(mode, in_team)].append(result)
                    print(f"round {i + 1} {mode:6} {'team' if in_team else 'key':4}: p50 {result:.3f} ms", flush=True)
    print("\n| mode | key alone p50 | key in a team p50 | the team adds |")
    print("|---|---|---|---|")
    for mode in MODES:
        alone = statistics.median(results[(mode, False)])
        team = statistics.median(results[(mode, True)])
        print(f"| {mode} | {alone:.3f} ms | {team:.3f} ms | {team - alone:+.3f} ms |")


if __name__ == "__main__":
    main()
