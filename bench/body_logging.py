"""What storing request bodies (`logging.bodies`) costs a gateway's throughput at c=64.

Two `llmmux serve --workers 2` gateways (the SQLite ledger and metrics on, the per-request
log line off) run side by side in front of the same fast fake upstreams (nginx answering a
fixed chat.completion, `sse_upstream.py` a 20-event stream); the only difference is
`logging.bodies` (every prompt and reply redacted, cut, written to `request_bodies` and
indexed for full-text search). wrk drives one gateway at a time at c=64 with a distinct
~1 KB prompt per request, a quarter of them streamed (`wrk/bodies.lua`); the gateways take
turns, in alternating order, for several rounds, so both see the same minutes of a machine
that other work shares.

Three measures, each paired with the bodies-off gateway of the same round, as medians:
* throughput (req/s): what the issue's bar is about, but noisy when other work loads the box;
* CPU µs a request of the gateway's whole process tree (supervisor, workers, state holder and
  any child) during the load: what bounds throughput on a box with no spare core;
* the same counted until the gateway's bodies are written and indexed (up to `--settle`
  seconds after the load), less what the gateway spends idle over that wait (measured per
  gateway before the rounds): everything body logging costs, including the indexing it defers.

    python bench/body_logging.py                         # 6 rounds of 8 s per gateway, 2 workers
    python bench/body_logging.py --before-src /tmp/old/src   # and an older llmmux, bodies on
    python bench/body_logging.py --workers 1 --rounds 4 --prompt-bytes 4000 --stream-every 2
    python bench/body_logging.py --rounds 4 --conversation   # an agent's conversation (wrk/bodies.lua)
    python bench/body_logging.py --rounds 4 --postgres       # the ledger and bodies in PostgreSQL
    python bench/body_logging.py --rounds 4 --threads        # and where the CPU went, thread by thread

`--postgres`: both gateways keep their ledger and bodies in a throwaway PostgreSQL cluster
(a database each; needs Debian's postgresql), which indexes every body as it is inserted.
The database server is not part of the gateway's process tree: its CPU a request is
printed on its own line, what a deployment with PostgreSQL on its own host moves off the
gateway's machine. On this box it shares the same cores, so req/s still pays for it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fake_upstreams
import measure

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from support.postgres import TempPostgres, find_bin

LUA = Path(__file__).resolve().parent / "wrk" / "bodies.lua"
CONFIG = """
ledger: {ledger}
logging: {{requests: false, bodies: {bodies}}}
providers:
  fake: {{type: openai_compatible, base_url: "http://127.0.0.1:{json_port}/v1", models: [bench-model]}}
  fakestream: {{type: openai_compatible, base_url: "http://127.0.0.1:{sse_port}/v1", models: [bench-stream]}}
"""


def start(
    folder: Path,
    ports: tuple[int, int],
    name: str,
    bodies: bool,
    workers: int,
    src: str | None,
    database_url: str | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    config = folder / f"{name}.yaml"
    json_port, sse_port = ports
    ledger = f"{{database_url: {json.dumps(database_url)}}}" if database_url else f"{{path: {folder / name}.db}}"
    config.write_text(CONFIG.format(ledger=ledger, bodies=str(bodies).lower(), json_port=json_port, sse_port=sse_port))
    port = fake_upstreams.free_port()
    command = [sys.executable, "-m", "llmmux", "serve", "-c", str(config), "-p", str(port), "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": src} if src else None
    process = subprocess.Popen(
        [*command, "--workers", str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    measure.wait_health(port, proc=process)
    return process, port


def wrk(
    port: int, seconds: float, concurrency: int, prompt_bytes: int, stream_every: int, conversation: bool = False
) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    args = ["bench-model", "bench-stream", str(prompt_bytes), str(stream_every)]
    if conversation:
        args.append("conversation")
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{round(seconds)}s", "--timeout", "5s", "-s", str(LUA), url, "--"]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=seconds + 30, check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk exit {done.returncode}: {done.stdout[-300:]} {done.stderr[-300:]}")
    result: dict[str, float] = json.loads(line[8:])
    if result["non2xx"] or result["errors"]:
        raise RuntimeError(f"wrk saw failures: {result}")
    return result


def behind(ledger: Path | str) -> int:
    """Bodies the ledger's requests have that the body table or its full-text index do not yet."""
    if isinstance(ledger, str):  # PostgreSQL: a body is indexed as it is inserted
        query = "SELECT (SELECT COUNT(*) FROM requests) - (SELECT COUNT(*) FROM request_bodies)"
        psql = find_bin("psql")
        assert psql is not None
        done = subprocess.run([psql, ledger, "-tAc", query], capture_output=True, text=True, timeout=30, check=True)
        return int(done.stdout.strip())
    with contextlib.closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=10)) as db:
        requests = db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        stored = db.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM request_bodies").fetchone()
        try:
            indexed = db.execute("SELECT up_to FROM request_bodies_indexed").fetchone()[0]
        except sqlite3.OperationalError:  # an older llmmux (--before-src): its index's row sizes say
            indexed = db.execute("SELECT COALESCE(MAX(id), 0) FROM request_bodies_fts_docsize").fetchone()[0]
    return int(requests - stored[0]) + int(stored[1] - indexed)


def settle(ledger: Path | str | None, most_s: float) -> None:
    """Wait until the gateway's bodies are written and indexed (the ledger's own rows too)."""
    deadline = time.monotonic() + most_s
    time.sleep(1.5)  # the ledger's and the body log's last batches
    while ledger is not None and time.monotonic() < deadline and behind(ledger) > 0:
        time.sleep(0.25)


def cpu(root: int) -> float:
    return sum(entry["cpu_s"] for entry in measure.snapshot(root).values())


def idle_rate(root: int, seconds: float = 4) -> float:
    """CPU seconds a second the gateway spends with no traffic (timers, probes, the body log's ticks)."""
    time.sleep(2)  # the warm-up's last batches
    start = cpu(root)
    time.sleep(seconds)
    return (cpu(root) - start) / seconds


def database_cpu(pg: TempPostgres | None) -> float:
    """CPU seconds of the PostgreSQL server's processes (the postmaster and its backends); 0 without one."""
    if pg is None:
        return 0.0
    postmaster = int((Path(pg.data) / "postmaster.pid").read_text().split()[0])
    return cpu(postmaster)


def thread_cpu(root: int) -> collections.Counter[str]:
    """CPU seconds of the gateway's threads by kind: each process's main thread (a worker's event
    loop, the supervisor's), the threads llmmux names (the body log's), and all others (the
    ledger's writer and readers, the request log's)."""
    found: collections.Counter[str] = collections.Counter()
    for pid in measure.tree(root):
        try:
            listed = measure.threads(pid)
        except OSError:  # a process that ended meanwhile
            continue
        for tid, name, seconds in listed:
            found["main threads" if tid == pid else name if name.startswith("llmmux") else "other threads"] += seconds
    return found


# req/s, CPU µs a request during the load, and until indexed; the database server's until indexed
Result = tuple[float, float, float, float]


def rounds(
    folder: Path, args: argparse.Namespace, pg: TempPostgres | None, threads: dict[str, collections.Counter[str]]
) -> dict[str, list[Result]]:
    """Per gateway: (req/s, CPU µs a request under load, CPU µs a request until indexed, the database
    server's CPU µs a request until indexed) of every round; with `--threads`, `threads` gets each
    gateway's CPU µs a request until indexed by kind of thread, over all rounds."""
    setups = {"off": (False, None), "on": (True, None)}
    if args.before_src:
        setups["on, before"] = (True, args.before_src)
    results: dict[str, list[Result]] = {name: [] for name in setups}
    ledgers: dict[str, Path | str] = {}
    for name in setups:
        file = name.replace(", ", "-")
        ledgers[name] = folder / f"{file}.db" if pg is None else pg.create_database(file.replace("-", "_"))
    with fake_upstreams.running() as ports:
        gateways = {
            name: start(
                folder,
                ports,
                name.replace(", ", "-"),
                on,
                args.workers,
                src,
                database_url=ledger if isinstance(ledger := ledgers[name], str) else None,
            )
            for name, (on, src) in setups.items()
        }
        try:
            for _, port in gateways.values():  # warm up: connections, the ledger's first batches
                wrk(port, 2, args.concurrency, args.prompt_bytes, args.stream_every, args.conversation)
            idle = {name: idle_rate(process.pid) for name, (process, _) in gateways.items()}
            names = list(gateways)
            requests: collections.Counter[str] = collections.Counter()
            for i in range(args.rounds):
                for name in names[i % len(names) :] + names[: i % len(names)]:
                    process, port = gateways[name]
                    before, database_before = cpu(process.pid), database_cpu(pg)
                    threads_before = thread_cpu(process.pid) if args.threads else None
                    result = wrk(
                        port, args.seconds, args.concurrency, args.prompt_bytes, args.stream_every, args.conversation
                    )
                    loaded = cpu(process.pid)
                    on = setups[name][0]
                    waited = time.monotonic()
                    settle(ledgers[name] if on else None, args.settle)
                    # What the gateway burns idle while the wait lasts is not the bodies' cost.
                    settled = cpu(process.pid) - idle[name] * (time.monotonic() - waited)
                    per = 1e6 / result["requests"]
                    database = (database_cpu(pg) - database_before) * per
                    if threads_before is not None:
                        threads.setdefault(name, collections.Counter()).update(thread_cpu(process.pid) - threads_before)
                        requests[name] += int(result["requests"])
                    row = (result["rps"], (loaded - before) * per, (settled - before) * per, database)
                    results[name].append(row)
                    print(
                        f"round {i + 1} {name:>10}: {row[0]:7.1f} req/s, CPU a request {row[1]:6.1f} us under load, "
                        f"{row[2]:6.1f} us until indexed" + (f", database server {database:6.1f} us" if pg else ""),
                        flush=True,
                    )
            for name, used in threads.items():
                threads[name] = collections.Counter({kind: s * 1e6 / requests[name] for kind, s in used.items()})
        finally:
            for process, _ in gateways.values():
                process.terminate()
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    process.kill()
    return results


def summary(label: str, off: list[Result], on: list[Result], field: int, higher_is_better: bool) -> str:
    if higher_is_better:
        costs = sorted(1 - b[field] / a[field] for a, b in zip(off, on))
    else:
        costs = sorted(b[field] / a[field] - 1 for a, b in zip(off, on))
    return (
        f"{label}: median {statistics.median(a[field] for a in off):.0f} without bodies, "
        f"{statistics.median(b[field] for b in on):.0f} with; cost median {statistics.median(costs):.1%} "
        f"(rounds {costs[0]:.1%} to {costs[-1]:.1%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8, help="wrk run per gateway and round")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--stream-every", type=int, default=4, help="every Nth request streamed (0: none)")
    parser.add_argument("--prompt-bytes", type=int, default=1000)
    parser.add_argument(
        "--conversation",
        action="store_true",
        help="an agent's growing conversation (a fixed ~4 KB system prompt, 16 turns) instead of distinct prompts",
    )
    parser.add_argument("--settle", type=float, default=30, help="most seconds to wait for bodies to be indexed")
    parser.add_argument("--before-src", help="also run an older llmmux's src/ with bodies on, in the same rounds")
    parser.add_argument("--postgres", action="store_true", help="the ledger and bodies in a throwaway PostgreSQL")
    parser.add_argument("--threads", action="store_true", help="also CPU a request by kind of thread, until indexed")
    args = parser.parse_args()
    threads: dict[str, collections.Counter[str]] = {}
    with tempfile.TemporaryDirectory() as name, TempPostgres() if args.postgres else contextlib.nullcontext() as pg:
        results = rounds(Path(name), args, pg, threads)
    streamed = f"1 in {args.stream_every} streamed" if args.stream_every else "none streamed"
    prompts = "growing conversations" if args.conversation else f"{args.prompt_bytes}-byte prompts"
    store = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\n{store}, --workers {args.workers}, c={args.concurrency}, {prompts}, {streamed}:")
    off = results.pop("off")
    for name, on in results.items():
        print(f"bodies {name}, paired with bodies off in each round:")
        print("  " + summary("req/s", off, on, 0, higher_is_better=True))
        print("  " + summary("CPU us a request under load", off, on, 1, higher_is_better=False))
        print("  " + summary("CPU us a request until indexed", off, on, 2, higher_is_better=False))
        if args.postgres:
            print("  " + summary("the database server's CPU us a request", off, on, 3, higher_is_better=False))
    if threads:
        print("\nCPU us a request until indexed, by thread, all rounds (idle time not taken off):")
        kinds = sorted({kind for used in threads.values() for kind in used}, key=lambda k: -threads["on"][k])
        print(f"  {'':16}" + "".join(f"{name:>14}" for name in threads))
        for kind in kinds:
            print(f"  {kind:16}" + "".join(f"{used[kind]:14.1f}" for used in threads.values()))


if __name__ == "__main__":
    main()
