"""The hot-path benchmark of issue 18, in one command: direct, nginx, llmmux side by side.

    python bench/hotpath.py                          # 3 rounds, 3 s per wrk run
    python bench/hotpath.py --before-src ../main/src # and llmmux from another source tree, same run
    python bench/hotpath.py --rounds 5 --duration 5

Setups, all alive for the whole run and measured in turn inside every round (so each
round's numbers share the same moment of a shared machine):

* `direct`: wrk straight at the fake upstreams (nginx returning a fixed chat.completion;
  `sse_upstream.py`, uvloop, sending 20-event streams);
* `nginx`: Debian's nginx as a plain keep-alive reverse proxy in front of the same upstreams
  (the cost of the extra HTTP hop itself);
* `llmmux`: `llmmux serve --workers 2` with the ledger (SQLite), metrics and the request
  log on (the defaults); `--before-src DIR` adds `llmmux (before)`, the same command run
  from another source tree, to compare two versions in one run.

Reported: added p50 at c=1 (JSON and streams) over direct, req/s at c=64, 20-event streams/s
at c=64, time to the first /health 200, RSS of the supervisor and of each worker idle and
after the load. Cells are medians over rounds. LiteLLM and Portkey columns appear only when
their commands are on PATH (`litellm`, `portkey`); they are not installed here.
Needs nginx and wrk on PATH. Writes bench/results/hotpath.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import measure
import upstreams
from run import check_gateway, stop_gateway, write_config

PROXY_CONF = """
daemon off;
master_process on;
worker_processes 2;
pid {tmp}/proxy.pid;
error_log {tmp}/proxy-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/pbody;
    proxy_temp_path {tmp}/pproxy;
    fastcgi_temp_path {tmp}/pfastcgi;
    uwsgi_temp_path {tmp}/puwsgi;
    scgi_temp_path {tmp}/pscgi;
    keepalive_timeout 120s;
    keepalive_requests 10000000;
    upstream json_up {{ server 127.0.0.1:{json_port}; keepalive 128; }}
    upstream sse_up {{ server 127.0.0.1:{sse_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{json_proxy} reuseport backlog=4096;
        location / {{ proxy_pass http://json_up; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
    server {{
        listen 127.0.0.1:{sse_proxy} reuseport backlog=4096;
        location / {{
            proxy_pass http://sse_up; proxy_http_version 1.1; proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""
GATEWAY_CMD = "{python} -m llmmux serve --config {config} --port {port} --workers {workers}"
# (name, stream, concurrency): what each setup is measured on, every round.
LOADS = (("json c=1", False, 1), ("stream c=1", True, 1), ("json c=64", False, 64), ("stream c=64", True, 64))


@dataclass
class Setup:
    """One thing wrk is pointed at: ports for JSON and streams, the model names, its process tree."""

    name: str
    ports: tuple[int, int]
    models: tuple[str, str]
    root: int | None = None
    startup_s: float | None = None
    idle: dict[str, float] = field(default_factory=dict)
    loaded: dict[str, float] = field(default_factory=dict)
    runs: dict[str, list[dict]] = field(default_factory=dict)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="rounds; each measures every setup once (default 3)")
    p.add_argument("--duration", type=float, default=3, help="seconds per wrk run (default 3)")
    p.add_argument("--workers", type=int, default=2, help="llmmux worker processes (default 2)")
    p.add_argument(
        "--before-src",
        action="append",
        default=[],
        metavar="[LABEL=]PATH",
        help="also run llmmux from this src/ folder (a PYTHONPATH: several folders joined by ':'), "
        "as 'llmmux (LABEL)', default label 'before'; may be repeated",
    )
    p.add_argument("--out", type=Path, default=HERE / "results" / "hotpath.json")
    return p.parse_args()


def start_proxy(tmp: Path, json_port: int, sse_port: int) -> tuple[subprocess.Popen[bytes], tuple[int, int]]:
    ports = upstreams.free_port(), upstreams.free_port()
    conf = tmp / "proxy.conf"
    conf.write_text(
        PROXY_CONF.format(tmp=tmp, json_port=json_port, sse_port=sse_port, json_proxy=ports[0], sse_proxy=ports[1])
    )
    cmd = [upstreams.nginx_binary(), "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "proxy-error.log")]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    for port in ports:
        upstreams.wait_port(port)
    return proc, ports


def compiled(src: str) -> dict[str, str]:
    """The environment to run `src` (a PYTHONPATH) from bytecode, compiled now, as an installed gateway runs.

    pip compiles a wheel at install; a source tree on a host with PYTHONDONTWRITEBYTECODE
    set (this one) would compile every module at each start instead: about 1 s of CPU
    counted into the time to healthy. The bytecode goes to a cache outside `src`.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "llmmux-bench-pycache")
    for path in src.split(os.pathsep):
        subprocess.run([sys.executable, "-m", "compileall", "-q", path], env=env, check=True)
    return env


def start_llmmux(config: Path, workers: int, src: str, log: Path) -> tuple[subprocess.Popen[bytes], int, float]:
    """`llmmux serve` from `src` (a PYTHONPATH); returns it, its port and the seconds to its first /health 200."""
    port = upstreams.free_port()
    cmd = GATEWAY_CMD.format(python=sys.executable, config=config, port=port, workers=workers)
    env = {**compiled(src), "PYTHONPATH": src}
    with log.open("wb") as out:  # request logs: a pipe nobody reads could block the gateway
        proc = subprocess.Popen(
            shlex.split(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )  # fmt: skip
    try:
        startup = measure.wait_health(port, proc=proc)
    except Exception:
        print("".join(log.read_text().splitlines(True)[-20:]), file=sys.stderr)
        stop_gateway(proc)
        raise
    return proc, port, startup


def memory(root: int, workers: int) -> dict[str, float]:
    """RSS MiB of the supervisor (`root`), the state holder and every worker.

    With more than one worker the supervisor forks the state holder (shared limits and
    health) before the workers, so it is the child with the lowest pid.
    """
    snap = measure.snapshot(root)
    children = sorted(pid for pid in snap if pid != root)
    holder = children[0] if len(children) > workers else None
    names = {root: "supervisor", **({holder: "holder"} if holder else {})}
    return {names.get(pid, f"worker {pid}"): round(s["rss_mib"], 1) for pid, s in sorted(snap.items())}


def one_round(setups: list[Setup], duration: float) -> None:
    for label, stream, conc in LOADS:
        for setup in setups:
            result = measure.wrk(setup.ports[stream], setup.models[stream], stream, conc, duration, setup.root)
            setup.runs.setdefault(label, []).append(result)


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def summarise(setups: list[Setup]) -> dict:
    direct = setups[0]
    table: dict = {}
    for setup in setups:
        row: dict = {"startup_s": setup.startup_s, "idle_rss_mib": setup.idle, "loaded_rss_mib": setup.loaded}
        for label, _, _ in LOADS:
            runs, base = setup.runs[label], direct.runs[label]
            # Added latency is paired per round (same moment), then the median over rounds.
            added = [r["p50_ms"] - b["p50_ms"] for r, b in zip(runs, base, strict=True)]
            errors = sum(r["non2xx"] + r["errors"] for r in runs)
            cpu = [sum(r["cpu_s_by_pid"].values()) / max(1, r["requests"]) * 1e6 for r in runs if "cpu_s_by_pid" in r]
            row[label] = {
                "rps": median(runs, "rps"),
                "p50_ms": median(runs, "p50_ms"),
                "p99_ms": median(runs, "p99_ms"),
                "added_p50_ms": statistics.median(added),
                "errors": errors,
                "cpu_us_per_request": statistics.median(cpu) if cpu else None,
                "other_cpu_pct": max(r["other_cpu_pct"] for r in runs),
            }
        table[setup.name] = row
    return table


def _workers(rss: dict[str, float]) -> str:
    values = [v for k, v in rss.items() if k.startswith("worker")]
    return " / ".join(f"{v:.0f}" for v in values) if values else ""


def _cpu(row: dict) -> str:
    """CPU per request of the setup's own processes: steadier than req/s on a machine shared with others."""
    cells = [row[label]["cpu_us_per_request"] for label in ("json c=64", "stream c=64")]
    return " / ".join(f"{c:.0f}" for c in cells) if None not in cells else ""


def markdown(res: dict) -> str:
    lines = [
        f"{res['when']} UTC, {res['cpus']} CPUs, load average at start {res['loadavg']}, "
        f"{res['rounds']} rounds of {res['duration_s']:g} s wrk runs (1 thread), medians over rounds; "
        f"llmmux: --workers {res['workers']}, ledger (SQLite), metrics and request log on.",
        "",
        "| setup | added p50 c=1 json | added p50 c=1 stream | req/s c=64 json | streams/s c=64 (20 events) "
        "| CPU µs per request, json / stream c=64 "
        "| RSS MiB per worker, idle → after load | supervisor / holder MiB | healthy after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in res["table"].items():
        errs = sum(row[label]["errors"] for label, _, _ in LOADS)
        mem = f"{_workers(row['idle_rss_mib'])} → {_workers(row['loaded_rss_mib'])}" if row["idle_rss_mib"] else ""
        apart = [row["loaded_rss_mib"].get(k) for k in ("supervisor", "holder")]
        healthy = "" if row["startup_s"] is None else f"{row['startup_s']:.2f} s"
        lines.append(
            f"| {name}{f' ({errs} errors)' if errs else ''} "
            f"| {row['json c=1']['added_p50_ms']:+.3f} ms (p50 {row['json c=1']['p50_ms']:.3f}) "
            f"| {row['stream c=1']['added_p50_ms']:+.3f} ms (p50 {row['stream c=1']['p50_ms']:.3f}) "
            f"| {row['json c=64']['rps']:,.0f} | {row['stream c=64']['rps']:,.0f} | {_cpu(row)} | {mem} "
            f"| {' / '.join(f'{v:.0f}' for v in apart if v is not None)} "
            f"| {healthy} |"
        )
    worst = max(row[label]["other_cpu_pct"] for row in res["table"].values() for label, _, _ in LOADS)
    absent = [name for name in ("litellm", "portkey") if shutil.which(name) is None]
    lines += [
        "",
        f"Busiest run saw {worst}% of a core used by processes outside the benchmark (high = noisy cells). "
        + (f"Not installed here, so not measured: {', '.join(absent)}." if absent else ""),
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict:
    res: dict = {
        "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "cpus": os.cpu_count(),
        "loadavg": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "rounds": args.rounds,
        "duration_s": args.duration,
        "workers": args.workers,
    }
    gateways = [("llmmux", str(HERE.parent / "src"))]
    for given in args.before_src:
        label, _, path = given.rpartition("=")
        gateways.append((f"llmmux ({label or 'before'})", ":".join(str(Path(p).resolve()) for p in path.split(":"))))
    procs: list[subprocess.Popen[bytes]] = []
    with upstreams.running() as ups, tempfile.TemporaryDirectory(prefix="llmmux-hotpath-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            proxy, proxy_ports = start_proxy(tmp, *ups)
            procs.append(proxy)
            setups = [
                Setup("direct", ups, ("upstream-model", "upstream-model")),
                Setup("nginx reverse proxy", proxy_ports, ("upstream-model", "upstream-model"), proxy.pid),
            ]
            for name, src in gateways:
                config = tmp / name.replace(" ", "_").replace("(", "").replace(")", "")
                config.mkdir()
                write_config(config, *ups)
                log = args.out.parent / f"hotpath-{config.name}.log"
                proc, port, startup = start_llmmux(config, args.workers, src, log)
                procs.append(proc)
                check_gateway(port)
                setups.append(Setup(name, (port, port), ("bench-model", "bench-stream"), proc.pid, round(startup, 3)))
            time.sleep(1)  # every worker finishes booting before idle memory is read
            for setup in setups:
                if setup.root is not None and setup.startup_s is not None:
                    setup.idle = memory(setup.root, args.workers)
            res["other_cpu_pct_at_start"] = measure.wait_quiet()
            for i in range(args.rounds):
                print(f"round {i + 1}/{args.rounds}", file=sys.stderr)
                one_round(setups, args.duration)
            for setup in setups:
                if setup.root is not None and setup.startup_s is not None:
                    setup.loaded = memory(setup.root, args.workers)
            res["table"] = summarise(setups)
            res["runs"] = {s.name: s.runs for s in setups}
        finally:
            for proc in reversed(procs):
                if proc.pid and proc is not procs[0]:
                    stop_gateway(proc)
            if procs:
                upstreams.stop(procs[0])
    return res


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
