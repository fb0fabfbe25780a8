"""The hot-path benchmark of issue 18, in one command: direct, nginx, llmmux side by side.

    python bench/hotpath.py                          # 3 rounds, 3 s per wrk run
    python bench/hotpath.py --before-src ../main/src # and llmmux from another source tree, same run
    python bench/hotpath.py --rounds 5 --duration 5
    python bench/hotpath.py --features --peers       # and the feature rows, LiteLLM and Portkey

Setups, all alive for the whole run and measured in turn inside every round (so each
round's numbers share the same moment of a shared machine):

* `direct`: wrk straight at the fake upstreams (nginx returning a fixed chat.completion;
  `sse_upstream.py`, uvloop, sending 20-event streams);
* `nginx`: Debian's nginx as a plain keep-alive reverse proxy in front of the same upstreams
  (the cost of the extra HTTP hop itself);
* `llmmux`: `llmmux serve --workers 2` with the ledger (SQLite), metrics and the request
  log on (the defaults); `--before-src DIR` adds `llmmux (before)`, the same command run
  from another source tree, to compare two versions in one run;
* `--features`: the same gateway with shared state on Redis (a keyed, limited request), the
  response cache (all misses, then all hits), body logging, and all of them at once, one
  gateway each (`features.py`);
* `--peers`: LiteLLM's proxy and Portkey's gateway, 2 workers each, where installed
  (`bench/peers/install` puts pinned versions in .cache/bench-peers/; `peer_gateways.py`).

Reported: added p50 at c=1 (JSON and streams) over direct, req/s at c=64, 20-event streams/s
at c=64, time to the first /health 200, RSS of the supervisor and of each worker idle and
after the load. Cells are medians over rounds. CPU per request counts each setup's own
processes, and for the shared-state rows the Redis they keep their state in.
Needs nginx and wrk on PATH (and redis-server, or valkey-server from scripts/build-valkey,
for --features). Writes bench/results/hotpath.json.
"""

from __future__ import annotations

import argparse
import contextlib
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
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fake_upstreams
import features
import measure
import peer_gateways
from payloads import request_body
from run import stop_gateway, write_config

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
UNIQUE = HERE / "wrk" / "unique.lua"


@dataclass
class Setup:
    """One thing wrk is pointed at: ports for JSON and streams, the model names, its process tree."""

    name: str
    ports: tuple[int, int]
    models: tuple[str, str]
    root: int | None = None
    startup_s: float | None = None
    headers: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())  # "Name: value", JSON then streams
    unique: bool = False  # a new prompt every request (wrk/unique.lua)
    store: features.Store | None = None  # the Redis it keeps state in: its CPU counts with the setup's
    holder: bool = True  # llmmux's supervisor forks a state holder (not with state.url, nor peers)
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
    p.add_argument("--features", action="store_true", help="also llmmux with each feature on, and all together")
    p.add_argument(
        "--store",
        choices=("redis", "valkey"),
        default="redis" if shutil.which("redis-server") or not features.valkey_built() else "valkey",
        help="what the shared-state rows keep state in (default: Debian's redis-server when installed)",
    )
    p.add_argument(
        "--peers", action="store_true", help="also LiteLLM and Portkey, where installed (bench/peers/install)"
    )
    p.add_argument("--out", type=Path, default=HERE / "results" / "hotpath.json")
    return p.parse_args()


def start_proxy(tmp: Path, json_port: int, sse_port: int) -> tuple[subprocess.Popen[bytes], tuple[int, int]]:
    ports = fake_upstreams.free_port(), fake_upstreams.free_port()
    conf = tmp / "proxy.conf"
    conf.write_text(
        PROXY_CONF.format(tmp=tmp, json_port=json_port, sse_port=sse_port, json_proxy=ports[0], sse_proxy=ports[1])
    )
    cmd = [fake_upstreams.nginx_binary(), "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "proxy-error.log")]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    for port in ports:
        fake_upstreams.wait_port(port)
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
    port = fake_upstreams.free_port()
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


def memory(setup: Setup, workers: int) -> dict[str, float]:
    """RSS MiB of the supervisor (`root`), the state holder or store, and every worker.

    With more than one worker llmmux's supervisor forks the state holder (shared limits and
    health) before the workers, so it is the child with the lowest pid. A peer's helper
    processes (Python's multiprocessing resource tracker) are not workers.
    """
    assert setup.root is not None
    snap = measure.snapshot(setup.root)
    children = sorted(pid for pid in snap if pid != setup.root)
    holder = children[0] if setup.holder and len(children) > workers else None
    names = {setup.root: "supervisor", **({holder: "holder"} if holder else {})}
    for pid in children:
        if b"resource_tracker" in _cmdline(pid):
            names[pid] = f"helper {pid}"
    rss = {names.get(pid, f"worker {pid}"): round(s["rss_mib"], 1) for pid, s in sorted(snap.items())}
    if setup.store is not None:
        rss["store"] = round(measure.rss_mib(setup.store.pid), 1)
    return rss


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def check(setup: Setup) -> None:
    """One real request of each kind, so that fast errors are not mistaken for speed."""
    for stream in (False, True):
        headers = dict(h.split(": ", 1) for h in setup.headers[stream])
        req = urllib.request.Request(
            f"http://127.0.0.1:{setup.ports[stream]}{measure.PATH}",
            data=request_body(setup.models[stream], stream).encode(),
            headers={"Content-Type": "application/json", **headers},
        )
        with urllib.request.urlopen(req, timeout=60) as r:
            body = r.read()
        ok = b"[DONE]" in body if stream else b'"choices"' in body
        if r.status != 200 or not ok:
            raise RuntimeError(f"{setup.name} answered {r.status} {body[:300]!r} for {setup.models[stream]}")


def one_round(setups: list[Setup], duration: float) -> None:
    for label, stream, conc in LOADS:
        for setup in setups:
            setup.runs.setdefault(label, []).append(load(setup, stream, conc, duration))


def load(setup: Setup, stream: bool, conc: int, duration: float) -> dict:
    """One wrk run at `setup`; with a store, also the commands the store processed meanwhile."""
    script = UNIQUE if setup.unique else measure.LUA
    also = (setup.store.pid,) if setup.store else ()
    counters = {"store_commands": setup.store.commands} if setup.store else {}
    return measure.wrk(
        setup.ports[stream],
        setup.models[stream],
        stream,
        conc,
        duration,
        setup.root,
        script=script,
        extra=setup.headers[stream],
        also=also,
        counters=counters,
    )


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
            done = [r for r in runs if r["requests"]]  # a peer may answer nothing within a short run
            cpu = [sum(r["cpu_s_by_pid"].values()) / r["requests"] * 1e6 for r in done if "cpu_s_by_pid" in r]
            store = [r["store_commands"] / r["requests"] for r in done if "store_commands" in r]
            row[label] = {
                "rps": median(runs, "rps"),
                "p50_ms": median(runs, "p50_ms"),
                "p99_ms": median(runs, "p99_ms"),
                "added_p50_ms": statistics.median(added),
                "errors": errors,
                "cpu_us_per_request": statistics.median(cpu) if cpu else None,
                "other_cpu_pct": max(r["other_cpu_pct"] for r in runs),
                "store_commands_per_request": statistics.median(store) if store else None,
            }
        table[setup.name] = row
    return table


def _workers(rss: dict[str, float]) -> str:
    values = [v for k, v in rss.items() if k.startswith("worker")]
    return " / ".join(f"{v:.0f}" for v in values) if values else ""


def _cpu(row: dict) -> str:
    """CPU per request of the setup's own processes: steadier than req/s on a machine shared with others."""
    cells = [row[label]["cpu_us_per_request"] for label in ("json c=64", "stream c=64")]
    if cells == [None, None]:
        return ""
    return " / ".join("–" if c is None else f"{c:,.0f}" for c in cells)  # –: nothing finished


def markdown(res: dict) -> str:
    lines = [
        f"{res['when']} UTC, {res['cpus']} CPUs, load average at start {res['loadavg']}, "
        f"{res['rounds']} rounds of {res['duration_s']:g} s wrk runs (1 thread), medians over rounds; "
        f"llmmux: --workers {res['workers']}, ledger (SQLite), metrics and request log on.",
        "",
        "| setup | added p50 c=1 json | added p50 c=1 stream | req/s c=64 json | streams/s c=64 (20 events) "
        "| CPU µs per request, json / stream c=64 "
        "| RSS MiB per worker, idle → after load | supervisor / holder or store MiB | healthy after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(name, row) for name, row in res["table"].items()]
    worst = max(row[label]["other_cpu_pct"] for row in res["table"].values() for label, _, _ in LOADS)
    lines += ["", f"Busiest run saw {worst}% of a core used by processes outside the benchmark (high = noisy cells)."]
    lines += _notes(res)
    return "\n".join(lines)


def _row(name: str, row: dict) -> str:
    errs = sum(row[label]["errors"] for label, _, _ in LOADS)
    mem = f"{_workers(row['idle_rss_mib'])} → {_workers(row['loaded_rss_mib'])}" if row["idle_rss_mib"] else ""
    apart = [f"{v:.0f}" for k in ("supervisor", "holder") if (v := row["loaded_rss_mib"].get(k)) is not None]
    if (store := row["loaded_rss_mib"].get("store")) is not None:
        apart.append(f"store {store:.0f}")
    healthy = "" if row["startup_s"] is None else f"{row['startup_s']:.2f} s"
    return (
        f"| {name}{f' ({errs} errors)' if errs else ''} "
        f"| {_added(row['json c=1'])} | {_added(row['stream c=1'])} "
        f"| {row['json c=64']['rps']:,.0f} | {row['stream c=64']['rps']:,.0f} | {_cpu(row)} | {mem} "
        f"| {' / '.join(apart)} "
        f"| {healthy} |"
    )


def _added(cell: dict) -> str:
    if not cell["rps"]:
        return "no reply within the runs"
    return f"{cell['added_p50_ms']:+.3f} ms (p50 {cell['p50_ms']:.3f})"


def _notes(res: dict) -> list[str]:
    """What the feature and peer rows ran with, and which peers could not be measured."""
    notes = []
    if res.get("store"):
        per = [
            f"{name}: {cell:.2f}"
            for name, row in res["table"].items()
            if (cell := row["json c=64"].get("store_commands_per_request")) is not None
        ]
        notes.append(
            f"Shared state on {res['store']} (a key with rpm, tpm and a budget, providers with rpm and "
            f"max_concurrency; CPU counts the store's), store commands per request at c=64 json: {'; '.join(per)}."
        )
    if res.get("peers_missing"):
        notes.append(f"Not installed, so not measured (bench/peers/install): {', '.join(res['peers_missing'])}.")
    elif not res.get("peers_measured"):
        notes.append("LiteLLM and Portkey: add --peers (installed by bench/peers/install).")
    return notes


def start_features(
    tmp: Path, ups: tuple[int, int], args: argparse.Namespace, stack: contextlib.ExitStack
) -> list[Setup]:
    """One llmmux per row of features.FEATURES, the shared-state ones on one throwaway store."""
    src = str(HERE.parent / "src")
    store = stack.enter_context(features.store(args.store))
    setups = []
    for feature in features.FEATURES:
        folder = tmp / feature.name.translate(str.maketrans(" ,+()", "_____"))
        folder.mkdir()
        features.write_config(folder, feature, *ups, store.url() if feature.shared_state else None)
        headers: tuple[str, ...] = ()
        if feature.shared_state:
            headers = (f"Authorization: Bearer {features.create_key(folder, {**compiled(src), 'PYTHONPATH': src})}",)
        log = args.out.parent / f"hotpath-{folder.name}.log"
        proc, port, startup = start_llmmux(folder, args.workers, src, log)
        stack.callback(stop_gateway, proc)
        setup = Setup(feature.name, (port, port), ("bench-model", "bench-stream"), proc.pid, round(startup, 3))
        setup.headers, setup.unique = (headers, headers), feature.unique_prompts
        if feature.shared_state:
            setup.store, setup.holder = store, False
        check(setup)
        setups.append(setup)
    return setups


def start_peers(tmp: Path, ups: tuple[int, int], args: argparse.Namespace, stack: contextlib.ExitStack) -> list[Setup]:
    """LiteLLM and Portkey, those installed, with `--workers` processes each."""
    setups = []
    for name, installed in peer_gateways.available().items():
        if not installed:
            continue
        peer = peer_gateways.start(name, tmp, ups, args.workers, args.out.parent / f"hotpath-{name.lower()}.log")
        stack.callback(stop_gateway, peer.process)
        label = f"{name} {peer_gateways.version(name)}, {args.workers} workers"
        setup = Setup(label, (peer.port, peer.port), ("bench-model", "bench-stream"), peer.process.pid)
        setup.startup_s, setup.headers, setup.holder = round(peer.startup_s, 3), peer.headers, False
        check(setup)
        setups.append(setup)
    return setups


def start_llmmuxes(
    tmp: Path, ups: tuple[int, int], args: argparse.Namespace, stack: contextlib.ExitStack
) -> list[Setup]:
    """llmmux from this tree and from every --before-src, the plain configuration."""
    gateways = [("llmmux", str(HERE.parent / "src"))]
    for given in args.before_src:
        label, _, path = given.rpartition("=")
        gateways.append((f"llmmux ({label or 'before'})", ":".join(str(Path(p).resolve()) for p in path.split(":"))))
    setups = []
    for name, src in gateways:
        config = tmp / name.replace(" ", "_").replace("(", "").replace(")", "")
        config.mkdir()
        write_config(config, *ups)
        log = args.out.parent / f"hotpath-{config.name}.log"
        proc, port, startup = start_llmmux(config, args.workers, src, log)
        stack.callback(stop_gateway, proc)
        setup = Setup(name, (port, port), ("bench-model", "bench-stream"), proc.pid, round(startup, 3))
        check(setup)
        setups.append(setup)
    return setups


def run(args: argparse.Namespace) -> dict:
    res: dict = {
        "when": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "cpus": os.cpu_count(),
        "loadavg": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "rounds": args.rounds,
        "duration_s": args.duration,
        "workers": args.workers,
        "command": " ".join(sys.argv),
    }
    with contextlib.ExitStack() as stack:
        ups = stack.enter_context(fake_upstreams.running())
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="llmmux-hotpath-")))
        proxy, proxy_ports = start_proxy(tmp, *ups)
        stack.callback(fake_upstreams.stop, proxy)
        setups = [
            Setup("direct", ups, ("upstream-model", "upstream-model")),
            Setup("nginx reverse proxy", proxy_ports, ("upstream-model", "upstream-model"), proxy.pid),
        ]
        setups += start_llmmuxes(tmp, ups, args, stack)
        if args.features:
            setups += start_features(tmp, ups, args, stack)
            res["store"] = args.store
        if args.peers:
            setups += start_peers(tmp, ups, args, stack)
            found = peer_gateways.available()
            res["peers_measured"] = [name for name, ok in found.items() if ok]
            res["peers_missing"] = [name for name, ok in found.items() if not ok]
        time.sleep(1)  # every worker finishes booting before idle memory is read
        for setup in setups:
            if setup.root is not None and setup.startup_s is not None:
                setup.idle = memory(setup, args.workers)
        res["other_cpu_pct_at_start"] = measure.wait_quiet()
        for i in range(args.rounds):
            print(f"round {i + 1}/{args.rounds}", file=sys.stderr)
            one_round(setups, args.duration)
        for setup in setups:
            if setup.root is not None and setup.startup_s is not None:
                setup.loaded = memory(setup, args.workers)
        res["table"] = summarise(setups)
        res["runs"] = {s.name: s.runs for s in setups}
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
