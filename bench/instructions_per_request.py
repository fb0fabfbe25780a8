"""Instructions per request under callgrind, for several source trees: a count the machine's load cannot move.

Each tree runs in its own process under `valgrind --tool=callgrind` with PYTHONHASHSEED=0 and
drives the same in-process ASGI requests (the harness's own app: the SQLite ledger, metrics and
the request log on, an upstream that answers at once; plain and streamed requests, 32 at a
time). Only what happens between two client requests is counted (`CALLGRIND_ZERO_STATS`, then
`CALLGRIND_DUMP_STATS_AT`, called through ctypes from a tiny C library compiled on the spot):
imports, config loading, the first requests that fill caches and the start-up of the app are
outside the window; the drain of the last ledger batch at shutdown is inside it.

Under valgrind the gateway runs 50 to 100 times slower. With a real clock, everything driven by
it (the sinks' 0.1 s batches, the ledger's 1 s flush, the key service's reloads, the change
feed's 0.25 s polls, health probes) would run that many times as often per request, and the
count would follow the slowdown, which follows the machine's load. So time.monotonic (and with
it the event loop's clock) is a virtual clock that moves `--tick-us` per request (125 us, about
a request's native in-process CPU): every tree gets the batches it gets at native speed. The
clock-driven work alone is counted in an idle window: `--idle` seconds of that clock with the
app started and no requests ("idle", instructions per second of the clock).
`--real-clock` lets the clock run, to see what that does to a count.

    python bench/instructions_per_request.py --before /tmp/old --after .      # two trees
    python bench/instructions_per_request.py --tree start=/tmp/a --tree main=.  # several, labelled
    cp bench/instructions_per_request.py /tmp/ipr.py   # git bisect run: a copy outside the tree
    git bisect run python /tmp/ipr.py --tree here=. --bad-above 560000

A tree is a checkout (a folder holding src/llmmux). Counts repeat to within about 1% run to run
(the ledger's threads interleave differently); a difference under 2% is not a finding.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from asgi_post import post_chat

CLIENT_REQUESTS_C = r"""
#include <valgrind/callgrind.h>
void llmmux_cg_zero(void) { CALLGRIND_ZERO_STATS; }
void llmmux_cg_dump(const char *name) { CALLGRIND_DUMP_STATS_AT(name); }
"""
WINDOWS = ("requests", "idle")


# The child: runs inside valgrind with a tree's src first on sys.path.


MODELS_REPLY = b'{"object":"list","data":[{"id":"m","object":"model"}]}'


async def live_upstream() -> str:
    """A base URL that answers every request with a model list: health probes succeed, as in a real setup."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readuntil(b"\r\n\r\n"):
            head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
            writer.write(head % len(MODELS_REPLY) + MODELS_REPLY)

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"


def build_app(ledger: Path, base_url: str) -> Any:
    """The app every tree is measured with (the API used here is the same from 5081ecb to main)."""
    from llmmux.accounting import Accounting
    from llmmux.config import config_from_dict
    from llmmux.providers.base import Provider, ProviderType
    from llmmux.router import Router
    from llmmux.server.app import App
    from llmmux.types import ChatChunk, ChatRequest, ChatResponse, Choice, ChunkChoice, Delta, Message, Usage

    usage = Usage(prompt_tokens=12, completion_tokens=8, total_tokens=20)

    class InstantProvider(Provider):
        async def complete(self, request: ChatRequest, model: str) -> ChatResponse:
            message = Message(role="assistant", content="hello there")
            return ChatResponse(
                id="r", model=model, created=0, usage=usage, choices=[Choice(message=message, finish_reason="stop")]
            )

        async def stream(self, request: ChatRequest, model: str) -> AsyncIterator[ChatChunk]:
            for text in ("hel", "lo ", "there"):
                yield ChatChunk(id="r", model=model, created=0, choices=[ChunkChoice(delta=Delta(content=text))])
            yield ChatChunk(id="r", model=model, created=0, choices=[], usage=usage)

        async def list_models(self) -> list[Any]:
            return []

        async def _get(self, url: str, timeout: float) -> tuple[int, bytes]:
            return 200, MODELS_REPLY  # the health probe since the HTTP provider base (older trees GET the upstream)

    config, _ = config_from_dict(
        {
            "ledger": {"path": str(ledger)},
            "providers": {
                "fast": {
                    "type": "instant",
                    "base_url": base_url,  # only health probes go there
                    "models": [{"name": "m", "pricing": {"input": 1, "output": 2}}],
                }
            },
            "routing": {"exact_matches": {"chat": {"provider": "fast", "model": "m"}}},
        }
    )
    router = Router(config, types={"instant": ProviderType("instant", InstantProvider)})
    return App(router, accounting=Accounting.from_config(router))


class Lifespan:
    """The app's lifespan driven by hand: started, then shut down (the last batches drained)."""

    def __init__(self, app: Any) -> None:
        self.app, self.messages, self.replies = app, asyncio.Queue[dict[str, Any]](), asyncio.Queue[dict[str, Any]]()

    async def start(self) -> None:
        await self.messages.put({"type": "lifespan.startup"})
        self.task = asyncio.create_task(self.app({"type": "lifespan"}, self.messages.get, self.replies.put))
        reply = await self.replies.get()
        assert reply["type"] == "lifespan.startup.complete", reply

    async def stop(self) -> None:
        await self.messages.put({"type": "lifespan.shutdown"})
        await self.task


def bodies(requests: int, stream_share: float) -> list[bytes]:
    import msgspec

    every = round(1 / stream_share) if stream_share else 0
    messages = [{"role": "user", "content": "hello"}]
    plain = msgspec.json.encode({"model": "chat", "messages": messages})
    streamed = msgspec.json.encode({"model": "chat", "stream": True, "messages": messages})
    return [streamed if every and i % every == 0 else plain for i in range(requests)]


class VirtualClock:
    """time.monotonic as the gateway sees it: it moves only when the harness moves it.

    Batching is clock-driven (the sinks every 0.1 s, the ledger every second, a key reload every
    five): under valgrind's slowdown a real clock would hand every batch a record or two, so
    the count would be the batches' fixed cost times the slowdown. Moving the clock by a fixed
    `tick` per request gives every tree the batches it gets at native speed, the same each run.
    """

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now

    def install(self) -> None:
        # asyncio's loop.time() and llmmux's own reads call time.monotonic at run time;
        # threading and queue bound the real one at import, so real waits stay real.
        time.monotonic = self

    async def pass_idle(self, seconds: float, real_s: float) -> None:
        """`seconds` of the clock in 50 ms steps, each given real time for other threads to answer."""
        steps = max(1, round(seconds / 0.05))
        for _ in range(steps):
            self.now += seconds / steps
            for _ in range(3):
                await asyncio.sleep(0)
            _REAL_SLEEP(real_s / steps)  # the loop blocks: the ledger's threads run
            await asyncio.sleep(0)


_REAL_SLEEP = time.sleep


async def drive(app: Any, requests: int, args: argparse.Namespace, clock: VirtualClock | None = None) -> None:
    todo = bodies(requests, args.stream_share)
    for i in range(0, requests, args.concurrency):
        group = todo[i : i + args.concurrency]
        await asyncio.gather(*(post_chat(app, b) for b in group))
        if clock is not None:
            clock.now += len(group) * args.tick_us / 1e6


async def lifetime(app: Any, work: Callable[[], Awaitable[None]]) -> None:
    lifespan = Lifespan(app)
    await lifespan.start()
    await work()
    await lifespan.stop()


async def windows(folder: Path, args: argparse.Namespace, counter: CallgrindWindows, clock: VirtualClock) -> None:
    """The idle window, then the requests window."""
    upstream = await live_upstream()
    warm = build_app(folder / "warm.db", upstream)  # code paths, caches and specialisations warmed by another app
    await lifetime(warm, lambda: drive(warm, args.warmup, args, clock))
    app = build_app(folder / "ledger.db", upstream)
    lifespan = Lifespan(app)
    await lifespan.start()
    await drive(app, args.concurrency, args, clock)  # this app's first batch
    await clock.pass_idle(2.0, args.settle)  # and its rows written before the idle window
    counter.zero()
    await clock.pass_idle(args.idle, args.settle)
    counter.dump("idle")
    await drive(app, args.requests, args, clock)
    await lifespan.stop()  # the last batches drained: they are the requests' cost
    counter.dump("requests")


class CallgrindWindows:
    """Zero and dump callgrind's counters from Python (client requests, through a compiled helper)."""

    def __init__(self, library: Path) -> None:
        import ctypes

        self.lib = ctypes.CDLL(str(library))

    def zero(self) -> None:
        self.lib.llmmux_cg_zero()

    def dump(self, name: str) -> None:
        self.lib.llmmux_cg_dump(name.encode())


def quiet_logs() -> None:
    """Request lines formatted and written as `serve` would, to /dev/null."""
    import logging

    from llmmux.logs import JSONFormatter, Masker

    handler = logging.StreamHandler(open(os.devnull, "w"))
    handler.setFormatter(JSONFormatter(Masker()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def child(args: argparse.Namespace) -> None:
    clock = VirtualClock()
    if not args.real_clock:
        clock.install()  # before llmmux is imported: a `from time import monotonic` takes this one
    sys.path.insert(0, str(Path(args.child) / "src"))
    quiet_logs()
    counter = CallgrindWindows(args.library)
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(windows(Path(folder), args, counter, clock))
    print("WINDOWS done", flush=True)


# The parent: compiles the helper, runs each tree under valgrind, reads the dumps.


def compile_helper(folder: Path) -> Path:
    source, library = folder / "cg.c", folder / "libllmmuxcg.so"
    source.write_text(CLIENT_REQUESTS_C)
    subprocess.run(["cc", "-O1", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


def dumped_totals(prefix: Path) -> dict[str, int]:
    """{window name: instructions} from the dumps callgrind wrote at each client request."""
    totals: dict[str, int] = {}
    for dump in prefix.parent.glob(prefix.name + ".[0-9]*"):
        text = dump.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: Client Request: (\S+)", text, re.M)
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if trigger and total and trigger.group(1) in WINDOWS:
            totals[trigger.group(1)] = int(total.group(1))
    return totals


def measure(tree: Path, args: argparse.Namespace, library: Path, folder: Path) -> dict[str, float]:
    prefix = folder / f"callgrind.{tree.name or 'tree'}.{time.monotonic_ns()}"
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={prefix}",
        "--dump-line=no",
        f"--log-file={prefix}.valgrind",
        *[sys.executable, __file__, "--child", str(tree), "--library", str(library)],
        *["--requests", str(args.requests), "--warmup", str(args.warmup), "--idle", str(args.idle)],
        *["--settle", str(args.settle), "--concurrency", str(args.concurrency), "--tick-us", str(args.tick_us)],
        *["--stream-share", str(args.stream_share)],
        *(["--real-clock"] if args.real_clock else []),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PYTHONPATH", None)  # the tree's src comes first, nothing else's
    errors = prefix.with_name(prefix.name + ".stderr")  # old trees write request lines to stderr
    with errors.open("w") as stderr:
        done = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=3600)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WINDOWS ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"{tree}: valgrind run failed ({done.returncode}):\n{errors.read_text()[-3000:]}")
    totals = dumped_totals(prefix)
    return {"per_request": totals["requests"] / args.requests, "idle_per_s": totals["idle"] / args.idle}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="a tree (a checkout holding src/llmmux)")
    parser.add_argument("--after", type=Path, help="a tree; with --before, the ratio after/before is printed")
    parser.add_argument("--tree", action="append", default=[], help="LABEL=DIR, repeatable, measured in order")
    parser.add_argument("--requests", type=int, default=1000, help="requests in the counted window")
    parser.add_argument("--warmup", type=int, default=300, help="requests through a warm-up app first")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds of the idle window (the harness's clock)")
    parser.add_argument("--settle", type=float, default=2.0, help="real seconds given to threads in each idle stretch")
    parser.add_argument("--tick-us", type=float, default=125.0, help="clock moved per request (native CPU a request)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--stream-share", type=float, default=0.25, help="share of streamed requests")
    parser.add_argument(
        "--real-clock", action="store_true", help="let the clock run (counts then grow with valgrind's slowdown)"
    )
    parser.add_argument("--keep", type=Path, help="write callgrind's dumps here (for callgrind_annotate)")
    parser.add_argument(
        "--bad-above", type=float, help="git bisect run: measure the first tree only, exit 1 above this count"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--library", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def trees(args: argparse.Namespace) -> dict[str, Path]:
    named = dict(spec.split("=", 1) for spec in args.tree)
    if args.before:
        named["before"] = str(args.before)
    if args.after:
        named["after"] = str(args.after)
    if not named:
        raise SystemExit("name at least one tree: --before/--after DIR or --tree LABEL=DIR")
    return {label: Path(folder).resolve() for label, folder in named.items()}


def main() -> None:
    args = parse_args()
    if args.child:
        child(args)
        return
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as name:
        folder = args.keep or Path(name)
        folder.mkdir(parents=True, exist_ok=True)
        library = compile_helper(folder)
        for label, tree in trees(args).items():
            results[label] = result = measure(tree, args, library, folder)
            if args.bad_above is not None:  # git bisect run: exit 1 marks the commit bad
                print(round(result["per_request"]))
                sys.exit(1 if result["per_request"] > args.bad_above else 0)
            print(
                f"{label:10} {result['per_request']:12,.0f} instructions a request; "
                f"idle: {result['idle_per_s']:12,.0f} a second of the clock ({tree})",
                flush=True,
            )
    if "before" in results and "after" in results:
        ratio = results["after"]["per_request"] / results["before"]["per_request"]
        print(f"after/before: {ratio:.3f}")


if __name__ == "__main__":
    main()
