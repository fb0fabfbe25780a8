"""Compare candidate proxy stacks (server x HTTP client x JSON codec x workers) with wrk.

Starts the fake upstreams once, measures them directly, then each candidate via serve.py:
req/s, p50/p99 at each concurrency for non-streaming and streaming chat requests, CPU
used by the candidate's processes (and how it is split across workers), and RSS.
Results go to bench/results/stack-<label>.json and a markdown table on stdout.
"""

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import fake_upstreams
import measure


def measure_target(ports: tuple[int, int], root: int | None, args) -> list[dict]:
    """wrk at each concurrency: ports[0] for plain JSON, ports[1] for streams."""
    rows = []
    for stream, conc in itertools.product((False, True), args.concurrency):
        r = measure.wrk(ports[stream], "alias-model", stream, conc, args.duration, root)
        rows.append({"stream": stream, "conc": conc, **r})
    return rows


def start_candidate(server: str, client: str, codec: str, workers: int, ups: tuple):
    """Start serve.py for one candidate on a free port; return (Popen, port)."""
    port = fake_upstreams.free_port()
    env = dict(
        os.environ,
        PROXY_CLIENT=client,
        PROXY_JSON=codec,
        UPSTREAM=f"http://127.0.0.1:{ups[0]}",
        UPSTREAM_SSE=f"http://127.0.0.1:{ups[1]}",
    )
    cmd = [sys.executable, str(HERE / "serve.py"), "--server", server, "--port", str(port), "--workers", str(workers)]
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL), port


def run_candidate(server: str, client: str, codec: str, workers: int, ups: tuple, args) -> dict:
    measure.wait_quiet()
    proc, port = start_candidate(server, client, codec, workers, ups)
    try:
        startup = measure.wait_health(port, proc=proc)
        time.sleep(1)
        idle = measure.snapshot(proc.pid)
        measure.wrk(port, "warmup", False, 16, 1)  # warm pools / caches
        rows = measure_target((port, port), proc.pid, args)
        loaded = measure.snapshot(proc.pid)
    finally:
        fake_upstreams.stop(proc)
    name = f"{server}+{client}+{codec}" + (f" x{workers}" if workers > 1 else "")
    return {
        "name": name,
        "startup_s": round(startup, 2),
        "rows": rows,
        "idle_rss_mib": [round(s["rss_mib"], 1) for s in idle.values()],
        "loaded_rss_mib": [round(s["rss_mib"], 1) for s in loaded.values()],
    }


def merge(runs: list[dict]) -> dict:
    """Per cell keep the best undisturbed run (other CPU <= 15%, then highest req/s);
    keep every run's req/s too, to show the spread."""
    out = dict(runs[0], rounds=len(runs))
    out["rows"] = []
    for cells in zip(*(r["rows"] for r in runs)):
        best = min(cells, key=lambda c: (c["other_cpu_pct"] > 15, -c["rps"]))
        out["rows"].append(dict(best, rps_all=[round(c["rps"]) for c in cells]))
    return out


def split(cpu_by_pid: dict) -> str:
    """': 55/45' = share of CPU per busy process, when more than one worker did work."""
    busy = sorted((v for v in cpu_by_pid.values() if v > 0.05), reverse=True)
    return ": " + "/".join(f"{100 * v / sum(busy):.0f}" for v in busy) if len(busy) > 1 else ""


def cell(r: dict) -> str:
    text = f"{r['rps']:,.0f} / {r['p50_ms']:.2f} / {r['p99_ms']:.2f}"
    if "cpu_pct" in r:
        text += f" ({r['cpu_pct']}%{split(r['cpu_s_by_pid'])})"
    if r["other_cpu_pct"] > 15:
        text += f" !other {r['other_cpu_pct']}%"
    return text


def cpu_us_per_req(r: dict) -> str:
    return f"{1e6 * sum(r['cpu_s_by_pid'].values()) / r['requests']:.0f}" if "cpu_s_by_pid" in r else "-"


def fmt_row(res: dict) -> str:
    rows = res["rows"]
    cells = [cell(r) for r in rows]
    if "idle_rss_mib" in res:
        top = [r for r in rows if r["conc"] == max(x["conc"] for x in rows)]
        cells.append(" / ".join(cpu_us_per_req(r) for r in top))
        cells.append(f"{res['idle_rss_mib']} -> {res['loaded_rss_mib']}")
    else:
        cells += ["-", "-"]
    return f"| {res['name']} | " + " | ".join(cells) + " |"


def table(results: list[dict], conc: list[int]) -> str:
    head = [f"{'stream' if s else 'json'} c={c}" for s in (False, True) for c in conc]
    head += [f"CPU us/req json / stream (c={max(conc)})", "RSS MiB per process idle -> loaded"]
    lines = ["| target | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
    lines += [fmt_row(r) for r in results]
    return "\n".join(lines)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--servers", default="uvicorn,granian-asgi,granian-rsgi")
    p.add_argument("--clients", default="aiohttp,httpx,pyreqwest")
    p.add_argument("--codecs", default="msgspec")
    p.add_argument("--workers", default="1")
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--rounds", type=int, default=1, help="repeat all; keep the best undisturbed run per cell")
    p.add_argument("--no-direct", action="store_true")
    p.add_argument("--label", default="latest")
    args = p.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    return args


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run `finally`: stop children
    args = parse_args()
    combos = list(
        itertools.product(*(getattr(args, k).split(",") for k in ("servers", "clients", "codecs", "workers")))
    )
    runs: dict[str, list[dict]] = {}
    with fake_upstreams.running() as ups:
        for _ in range(args.rounds):  # round-robin, so slow drifts in machine load hit all alike
            if not args.no_direct:
                measure.wait_quiet()
                runs.setdefault("direct", []).append(
                    {"name": "direct (upstreams alone)", "rows": measure_target(ups, None, args)}
                )
            for server, client, codec, workers in combos:
                res = run_candidate(server, client, codec, int(workers), ups, args)
                runs.setdefault(res["name"], []).append(res)
                print(fmt_row(res), flush=True)
    results = [merge(r) for r in runs.values()]
    out = HERE.parent / "results" / f"stack-{args.label}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    print(
        f"\ncells: req/s / p50 ms / p99 ms (CPU% of the candidate's processes, 100% = one core"
        f"[: % of that CPU per busy process]); !other = CPU % of foreign processes during the run;"
        f" best undisturbed of {args.rounds} round(s)\n"
    )
    print(table(results, args.concurrency))


if __name__ == "__main__":
    main()
