"""Benchmark the llmmux gateway against fast fake upstreams, in one command.

Why: a gateway should add well under a millisecond and keep most of the backend's
throughput. To see the gateway's own cost, the backends must be much faster than it:
nginx serves a fixed chat.completion JSON and a uvloop server a 20-event SSE stream,
both >20k req/s on one core. Each load step runs wrk directly against the upstream and
then through llmmux, so the two numbers come from the same machine, moment and tool.

    python bench/run.py [--duration 5] [--concurrency 1,16,64] [--workers 2] [--quick]

Reports start-up time, RSS per process (idle and after load), req/s, p50/p99, added p50
latency, throughput ratio, CPU split across workers, and streaming time-to-first-byte.
Prints markdown; writes bench/results/latest.json.
"""

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fake_upstreams
import measure
from payloads import request_body

DEFAULT_CMD = "{python} -m llmmux serve --config {config} --port {port} --workers {workers}"
MODELS = {False: "bench-model", True: "bench-stream"}
PROVIDERS = """providers:
  fake:
    type: openai_compatible
    base_url: http://127.0.0.1:{json_port}/v1
    status: active
    models:
      - name: bench-model
  fakestream:
    type: openai_compatible
    base_url: http://127.0.0.1:{sse_port}/v1
    status: active
    models:
      - name: bench-stream
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=5, help="seconds per wrk run (default 5)")
    p.add_argument("--concurrency", default="1,16,64", help="wrk connection counts (default 1,16,64)")
    p.add_argument("--workers", type=int, default=1, help="gateway worker processes (default 1)")
    p.add_argument("--quick", action="store_true", help="2 s runs, concurrency 1,16, fewer TTFB probes")
    p.add_argument("--ttfb-requests", type=int, default=2000, help="streamed requests per TTFB probe")
    p.add_argument(
        "--gateway-cmd", default=DEFAULT_CMD, help="command template; {python} {config} {port} {workers} are filled in"
    )
    p.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    args = p.parse_args()
    if args.quick:
        args.duration, args.concurrency, args.ttfb_requests = 2, "1,16", 300
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    return args


def write_config(folder: Path, json_port: int, sse_port: int) -> None:
    (folder / "providers.yaml").write_text(PROVIDERS.format(json_port=json_port, sse_port=sse_port))
    (folder / "model-mappings.yaml").write_text("exact_matches: {}\n")


def start_gateway(template: str, config: Path, port: int, workers: int, log: Path) -> subprocess.Popen:
    cmd = template.format(python=sys.executable, config=config, port=port, workers=workers)
    print(f"gateway: {cmd}\ngateway output: {log}", file=sys.stderr)
    with log.open("wb") as out:  # request logs would flood the terminal (and a pipe could block)
        # Own session: the whole worker tree can be stopped by the group id we started.
        return subprocess.Popen(
            shlex.split(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_gateway(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def check_gateway(port: int) -> None:
    """One real request of each kind, so that fast errors are not mistaken for speed."""
    for stream, model in MODELS.items():
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}{measure.PATH}",
            data=request_body(model, stream).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        ok = b"[DONE]" in body if stream else b'"choices"' in body
        if r.status != 200 or not ok:
            raise RuntimeError(f"gateway answered {r.status} {body[:300]!r} for {model}")


def rss_by_pid(snap: dict) -> dict[str, float]:
    return {str(pid): round(s["rss_mib"], 1) for pid, s in snap.items()}


def load_step(ups: tuple[int, int], gw: int, root: int, stream: bool, conc: int, secs: float) -> dict:
    direct = measure.wrk(ups[stream], "upstream-model", stream, conc, secs)
    via = measure.wrk(gw, MODELS[stream], stream, conc, secs, root)
    return {
        "stream": stream,
        "conc": conc,
        "direct": direct,
        "llmmux": via,
        "added_p50_ms": round(via["p50_ms"] - direct["p50_ms"], 3),
        "ratio": round(via["rps"] / direct["rps"], 3),
    }


def ttfb_step(ups: tuple[int, int], gw: int, conc: int, n: int) -> dict:
    return {
        "conc": conc,
        "direct": measure.ttfb(ups[1], "upstream-model", conc, n),
        "llmmux": measure.ttfb(gw, MODELS[True], conc, n),
    }


def run(args: argparse.Namespace) -> dict:
    res: dict = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "workers": args.workers,
        "duration_s": args.duration,
        "gateway_cmd": args.gateway_cmd,
    }
    res["other_cpu_pct_at_start"] = measure.wait_quiet()
    with fake_upstreams.running() as ups, tempfile.TemporaryDirectory(prefix="llmmux-bench-cfg-") as cfg:
        write_config(Path(cfg), *ups)
        port = fake_upstreams.free_port()
        log = args.out.parent / "gateway.log"
        proc = start_gateway(args.gateway_cmd, Path(cfg), port, args.workers, log)
        try:
            res["startup_s"] = round(measure.wait_health(port, proc=proc), 3)
            time.sleep(1)  # let every worker finish booting before measuring idle memory
            res["idle_rss_mib"] = rss_by_pid(measure.snapshot(proc.pid))
            check_gateway(port)
            res["load"] = [
                load_step(ups, port, proc.pid, s, c, args.duration) for s in (False, True) for c in args.concurrency
            ]
            res["ttfb"] = [ttfb_step(ups, port, c, args.ttfb_requests) for c in (1, 16)]
            res["loaded_rss_mib"] = rss_by_pid(measure.snapshot(proc.pid))
        except Exception:
            print("gateway output, last lines:\n" + "".join(log.read_text().splitlines(True)[-20:]), file=sys.stderr)
            raise
        finally:
            stop_gateway(proc)
    return res


def cpu_split(step: dict) -> str:
    shares = sorted((v for v in step["llmmux"]["cpu_s_by_pid"].values() if v > 0.05), reverse=True)
    total = sum(shares) or 1
    return "/".join(f"{100 * v / total:.0f}" for v in shares)


def markdown(res: dict) -> str:
    idle, loaded = res["idle_rss_mib"], res["loaded_rss_mib"]
    lines = [
        f"llmmux, {res['workers']} worker(s), {res['cpus']} CPUs, {res['duration_s']:g} s per run, {res['when']}",
        f"start-up to /health 200: {res['startup_s']:.2f} s",
        (
            f"RSS MiB per process, idle: {list(idle.values())} (sum {sum(idle.values()):.1f}); "
            f"after load: {list(loaded.values())} (sum {sum(loaded.values()):.1f})"
        ),
        "",
        (
            "| kind | conc | direct req/s | llmmux req/s | ratio | direct p50/p99 ms | llmmux p50/p99 ms "
            "| added p50 ms | llmmux CPU% | CPU split % | other CPU% |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in res["load"]:
        d, v = s["direct"], s["llmmux"]
        errs = f" ({v['non2xx'] + v['errors']} err)" if v["non2xx"] + v["errors"] else ""
        lines.append(
            f"| {'stream' if s['stream'] else 'json'} | {s['conc']} | {d['rps']:,.0f} | {v['rps']:,.0f}{errs} "
            f"| {s['ratio']:.2f} | {d['p50_ms']:.2f} / {d['p99_ms']:.2f} | {v['p50_ms']:.2f} / {v['p99_ms']:.2f} "
            f"| {s['added_p50_ms']:+.2f} | {v['cpu_pct']} | {cpu_split(s)} "
            f"| {max(d['other_cpu_pct'], v['other_cpu_pct'])} |"
        )
    lines += [
        "",
        (
            "CPU% = gateway processes (100 = one core); CPU split = share per busy process; "
            "other CPU% = foreign processes during the run (high = disturbed numbers)."
        ),
    ]
    lines += ["", "| stream TTFB | conc | requests | direct p50/p99 ms | llmmux p50/p99 ms |", "|---|---|---|---|---|"]
    for t in res["ttfb"]:
        d, v = t["direct"], t["llmmux"]
        lines.append(
            f"| first event | {t['conc']} | {v['n']} | {d['p50_ms']:.2f} / {d['p99_ms']:.2f} "
            f"| {v['p50_ms']:.2f} / {v['p99_ms']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run `finally`: stop children
    args = parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    res = run(args)
    args.out.write_text(json.dumps(res, indent=1))
    print(markdown(res))
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
