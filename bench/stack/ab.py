"""Paired A/B comparison of candidate stacks, robust to a noisy shared machine.

All candidates run at once (idle ones cost nothing); each round runs a short wrk against
every candidate in turn, so slow drifts in machine speed hit all of them alike. Reports
per candidate the median over rounds of req/s and p50/p99, and the median of the
per-round ratio to the first candidate (the baseline).
"""

import argparse
import itertools
import json
import signal
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench_stack import start_candidate

import fake_upstreams
import measure


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--candidates",
        default="uvicorn+aiohttp,uvicorn+pyreqwest,granian-asgi+aiohttp,"
        "granian-asgi+pyreqwest,granian-rsgi+aiohttp,granian-rsgi+pyreqwest",
        help="server+client[+codec][@workers], comma separated; the first is the baseline",
    )
    p.add_argument("--concurrency", default="1,64")
    p.add_argument("--duration", type=float, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--modes", default="json,stream")
    p.add_argument("--sse-pace-ms", type=float, default=0, help="SSE upstream: ms between events")
    p.add_argument("--label", default="ab")
    p.add_argument("--render", type=Path, help="only print the wide table of a saved result JSON")
    args = p.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    return args


def parse_candidate(text: str) -> tuple[str, str, str, int]:
    spec, _, workers = text.partition("@")
    server, client, *codec = spec.split("+")
    return server, client, codec[0] if codec else "msgspec", int(workers or 1)


def measure_rounds(ports: dict, args) -> dict:
    runs: dict = {}
    for _ in range(args.rounds):
        modes = [m == "stream" for m in args.modes.split(",")]
        for stream, conc in itertools.product(modes, args.concurrency):
            for name, (proc, port) in ports.items():
                r = measure.wrk(port, "alias-model", stream, conc, args.duration, proc.pid)
                runs.setdefault((stream, conc), {}).setdefault(name, []).append(r)
    return runs


def busiest_pct(cpu_s_by_pid: dict) -> float:
    """Share of the candidate's CPU taken by its busiest process (50 = two workers even)."""
    total = sum(cpu_s_by_pid.values()) or 1
    return round(100 * max(cpu_s_by_pid.values()) / total)


def summarize(runs: dict, names: list[str]) -> list[dict]:
    rows = []
    for (stream, conc), by_name in runs.items():
        base = by_name[names[0]]
        for name in names:
            rs = by_name[name]

            def med(key: str, rs: list[dict] = rs) -> float:
                return statistics.median(r[key] for r in rs)

            ratio = statistics.median(r["rps"] / b["rps"] for r, b in zip(rs, base))
            us = statistics.median(1e6 * sum(r["cpu_s_by_pid"].values()) / r["requests"] for r in rs)
            busiest = [busiest_pct(r["cpu_s_by_pid"]) for r in rs]
            rows.append(
                {
                    "stream": stream,
                    "conc": conc,
                    "name": name,
                    "rps": med("rps"),
                    "p50_ms": med("p50_ms"),
                    "p99_ms": med("p99_ms"),
                    "ratio": ratio,
                    "cpu_us_per_req": us,
                    "cpu_pct": med("cpu_pct"),
                    "busiest_pct": (statistics.median(busiest), max(busiest)),
                    "max_other_cpu_pct": max(r["other_cpu_pct"] for r in rs),
                }
            )
    return rows


def markdown(rows: list[dict], rounds: int) -> str:
    lines = [
        f"median of {rounds} paired rounds; ratio = req/s vs the first candidate in the same round",
        "",
        (
            "| kind | conc | candidate | req/s | ratio | p50 ms | p99 ms | CPU us/req | CPU% "
            "| busiest process % of CPU (median, worst) | max other CPU% |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {'stream' if r['stream'] else 'json'} | {r['conc']} | {r['name']} | {r['rps']:,.0f} "
            f"| {r['ratio']:.2f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['cpu_us_per_req']:.0f} "
            f"| {r['cpu_pct']:.0f} | {r['busiest_pct'][0]:.0f}, {r['busiest_pct'][1]:.0f} | {r['max_other_cpu_pct']} |"
        )
    return "\n".join(lines)


def wide(rows: list[dict]) -> str:
    """One line per candidate: req/s (ratio) p50/p99 per kind and concurrency, CPU us/req."""
    names = list(dict.fromkeys(r["name"] for r in rows))
    cols = list(dict.fromkeys((r["stream"], r["conc"]) for r in rows))
    idx = {(r["name"], r["stream"], r["conc"]): r for r in rows}
    head = [f"{'stream' if s else 'json'} c={c}" for s, c in cols]
    lines = [
        "| candidate | " + " | ".join(head) + " | CPU us/req (same columns) | busiest worker % (median) |",
        "|---" * (len(head) + 3) + "|",
    ]
    for n in names:
        cells = [idx[(n, *c)] for c in cols]
        lines.append(
            f"| {n} | "
            + " | ".join(f"{r['rps']:,.0f} ({r['ratio']:.2f}x) {r['p50_ms']:.2f}/{r['p99_ms']:.2f}" for r in cells)
            + " | "
            + " / ".join(f"{r['cpu_us_per_req']:.0f}" for r in cells)
            + " | "
            + " / ".join(f"{r['busiest_pct'][0]:.0f}" for r in cells)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run `finally`: stop children
    args = parse_args()
    if args.render:
        return print(wide(json.loads(args.render.read_text())))
    names = args.candidates.split(",")
    with fake_upstreams.running(args.sse_pace_ms) as ups:
        ports = {n: start_candidate(*parse_candidate(n), ups) for n in names}
        try:
            for proc, port in ports.values():
                measure.wait_health(port, proc=proc)
                measure.wrk(port, "warmup", False, 16, 1)
            rows = summarize(measure_rounds(ports, args), names)
        finally:
            for proc, _ in ports.values():
                fake_upstreams.stop(proc)
    out = HERE.parent / "results" / f"stack-{args.label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(markdown(rows, args.rounds))
    print("\ncells: req/s (ratio to the first candidate) p50/p99 ms\n")
    print(wide(rows))


if __name__ == "__main__":
    main()
