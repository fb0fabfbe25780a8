"""Where a request's time goes inside an llmmux worker: py-spy attached during a wrk run.

    python bench/profile_hotpath.py                   # JSON and 20-event streams, c=64, 8 s each
    python bench/profile_hotpath.py --kinds json --seconds 15 --src ../main/src

Starts the fake upstreams and `llmmux serve --workers 2` (ledger, metrics and request log
on), drives it with wrk at c=64, and meanwhile records one worker with py-spy (Python
frames, no idle samples: a sample is CPU the worker spent). Every sample is charged to one
part of the path by its innermost llmmux or library frame (asyncio, contextlib and the
like are skipped, so a coroutine step counts for whoever awaited it):

    server      uvicorn, httptools, llmmux/server (dispatch, request/response plumbing)
    decode      JSON in: the client's body, the upstream's reply, SSE parsing
    route       routing/, router, health, limits, params
    upstream    aiohttp, providers/ (the call to the upstream, minus its JSON)
    encode      JSON out: the upstream's body, the client's reply, SSE framing
    accounting  events, accounting, ledger, metrics, logs, tracing
    loop        what is left: the event loop between callbacks

The table gives each part's share of samples and its CPU per request (the worker tree's
CPU seconds / requests served, times the share). Needs py-spy (the `bench` extra), wrk, nginx.
Writes the raw stacks to bench/results/profile-<kind>.txt.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fake_upstreams
import measure
from hotpath import start_llmmux
from run import check_gateway, stop_gateway, write_config

PARTS = ("server", "decode", "route", "upstream", "encode", "accounting", "loop")
# Frames that only pass control along: a sample there is charged to the frame that called them.
GENERIC = re.compile(r"/(asyncio|contextlib|functools|typing|abc|enum|selectors|threading|weakref)[/.]|<frozen")
_DECODE = re.compile(r"^(decode|_\w+_in$|usage_in|feed|_parse_event|json$|body$|_chunk$)")
_ENCODE = re.compile(r"^(encode|_\w+_out$|usage_out|frame|rename_model|_request_out|_cache_marked)")
RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"llmmux/(accounting|events|tracing|logs|alerts|audit|pricing)\.py|llmmux/(ledger|metrics)/"), "accounting"),
    (re.compile(r"/logging/"), "accounting"),
    (re.compile(r"llmmux/(wire)/|llmmux/server/(openai|anthropic|ollama)_api\.py"), "wire"),
    (re.compile(r"llmmux/(routing|health|limits|shared)/|llmmux/(router|params|param_values|state|keys)\.py"), "route"),
    (re.compile(r"aiohttp/|yarl/|multidict/|llmmux/providers/|llmmux/forwarding\.py"), "upstream"),
    (re.compile(r"uvicorn/|httptools|llmmux/server/"), "server"),
)  # fmt: skip
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def part_of(stack: list[str]) -> str:
    """The part of the path a sample (frames from the root to the leaf) is charged to."""
    for frame in reversed(stack):
        match = FRAME.match(frame)
        func, file = (match["func"], match["file"]) if match else (frame, "")
        if GENERIC.search(file):
            continue
        for pattern, part in RULES:
            if pattern.search(file):
                if part == "wire" or (part in ("server", "upstream") and (_DECODE.match(func) or _ENCODE.match(func))):
                    return "encode" if _ENCODE.match(func) else "decode" if _DECODE.match(func) else "server"
                return part
    return "loop"


def breakdown(raw: str) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[part_of(stack.split(";"))] += int(count)
    return counts


def profile(kind: str, seconds: float, src: Path, out: Path) -> dict:
    stream = kind == "stream"
    with fake_upstreams.running() as ups, tempfile.TemporaryDirectory(prefix="llmmux-profile-") as tmp:
        write_config(Path(tmp), *ups)
        proc, port, _ = start_llmmux(Path(tmp), 2, src, HERE / "results" / "profile-gateway.log")
        try:
            check_gateway(port)
            time.sleep(1)
            workers = sorted(measure.tree(proc.pid))[1:]
            target = workers[-1]  # the holder is forked first; the last child is a worker
            spy = subprocess.Popen(
                ["py-spy", "record", "--pid", str(target), "--duration", str(int(seconds)), "--rate", "400",
                 "--format", "raw", "--output", str(out), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            time.sleep(0.5)  # py-spy attached before the load starts
            result = measure.wrk_once(
                port, "bench-stream" if stream else "bench-model", stream, 64, seconds - 1, proc.pid
            )
            spy.wait(seconds + 30)
        finally:
            stop_gateway(proc)
    worker_cpu = sum(v for pid, v in result["cpu_s_by_pid"].items() if pid in workers)
    counts = breakdown(out.read_text())
    total = sum(counts.values()) or 1
    us_per_request = 1e6 * worker_cpu / max(1, result["requests"])
    return {
        "kind": kind,
        "rps": result["rps"],
        "us_per_request": us_per_request,
        "parts": {p: {"share": counts[p] / total, "us": us_per_request * counts[p] / total} for p in PARTS},
    }


def markdown(results: list[dict]) -> str:
    head = "| part | " + " | ".join(f"{r['kind']}: share, µs/request" for r in results) + " |"
    lines = [head, "|---|" + "---|" * len(results)]
    for part in PARTS:
        cells = [f"{r['parts'][part]['share']:.0%}, {r['parts'][part]['us']:.0f}" for r in results]
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    cells = [f"100%, {r['us_per_request']:.0f} ({r['rps']:,.0f} req/s)" for r in results]
    lines.append("| **total** (workers' CPU / requests) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kinds", default="json,stream")
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--src", type=Path, default=HERE.parent / "src", help="the llmmux source tree to profile")
    args = p.parse_args()
    if shutil.which("py-spy") is None:
        sys.exit("py-spy is not on PATH: pip install py-spy (the bench extra)")
    (HERE / "results").mkdir(exist_ok=True)
    results = [
        profile(kind, args.seconds, args.src.resolve(), HERE / "results" / f"profile-{kind}.txt")
        for kind in args.kinds.split(",")
    ]
    print(markdown(results))


if __name__ == "__main__":
    main()
