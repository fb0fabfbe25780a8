"""CPU an idle gateway uses: `llmmux serve --workers 2` with the bench's default config, no requests.

    python bench/idle_cpu.py                      # settle 5 s, then 30 s measured: ms of CPU per second
    python bench/idle_cpu.py --seconds 30 --src /path/to/other/tree/src   # another tree, same way
    python bench/idle_cpu.py --strace 10          # also what each process's threads call, 10 s, by syscall

CPU is utime + stime from /proc/<pid>/stat of the whole process tree (supervisor, state
holder, workers, every thread), before and after the window. The timers an idle gateway runs
(memory trim, ledger flush, change feed polls, health probes, sinks' batches) are what it
shows; `--strace` counts the system calls behind them (`epoll_wait` ~ wakeups).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import fake_upstreams
import measure
from run import start_gateway, stop_gateway, write_config

SERVE = "{python} -m llmmux serve --config {config} --port {port} --workers {workers} --no-reload"


def idle_ms_per_s(root: int, seconds: float) -> dict[str, float]:
    """ms of CPU per second of each process in the tree over `seconds` (pid: ms/s), and the total."""
    before = measure.snapshot(root)
    time.sleep(seconds)
    used = measure.cpu_share(before, measure.snapshot(root))
    rows = {str(pid): round(cpu * 1000 / seconds, 2) for pid, cpu in sorted(used.items())}
    rows["total"] = round(sum(used.values()) * 1000 / seconds, 2)
    return rows


def strace_counts(root: int, seconds: float, out: Path) -> str:
    """`strace -c -f` on every process of the tree for `seconds`: system calls by name."""
    pids = [str(pid) for pid in measure.tree(root)]
    args = ["strace", "-c", "-f", "-o", str(out), *(a for pid in pids for a in ("-p", pid))]
    tracer = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    time.sleep(seconds)
    tracer.terminate()
    tracer.wait(10)
    return out.read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--settle", type=float, default=5.0, help="after healthy, before measuring")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--src", default=str(HERE.parent / "src"), help="the llmmux tree to run")
    parser.add_argument("--strace", type=float, default=0.0, help="seconds of strace -c after the window")
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = args.src
    with fake_upstreams.running() as (json_port, sse_port), tempfile.TemporaryDirectory(prefix="llmmux-idle-") as tmp:
        folder = Path(tmp)
        write_config(folder, json_port, sse_port)
        port = fake_upstreams.free_port()
        gateway = start_gateway(SERVE, folder, port, args.workers, folder / "gateway.log")
        try:
            measure.wait_health(port, proc=gateway)
            time.sleep(args.settle)
            rows = idle_ms_per_s(gateway.pid, args.seconds)
            print(f"idle CPU over {args.seconds:g} s, ms/s by pid (root {gateway.pid}): {rows}")
            if args.strace:
                print(strace_counts(gateway.pid, args.strace, folder / "strace.txt"))
        finally:
            stop_gateway(gateway)


if __name__ == "__main__":
    main()
