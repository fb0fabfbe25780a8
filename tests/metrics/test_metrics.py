"""Prometheus metrics: what a scrape shows after real traffic, and merging across workers."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import openai
import pytest

from llmmux.metrics import GatewayMetrics
from llmmux.metrics.registry import Counter, Gauge, Histogram, render
from llmmux.metrics.shared import Snapshot, merge, take
from support import Gateway, free_port
from support.serve import start_serve, stop_serve, wait_healthy
from upstreams import FakeOpenAI, closed_port_url, status

USER = [{"role": "user", "content": "hello there"}]
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def parse(text: str) -> dict[str, float]:
    """Every sample line as 'name{labels}' -> value; fails on any line that is not valid exposition format."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            continue
        match = SAMPLE.match(line)
        assert match, f"not Prometheus text format: {line!r}"
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def test_rendering_follows_the_text_format() -> None:
    count = Counter("c_total", 'a "quoted"\nhelp', ("model",))
    count.inc(('we"ird\\name\n',), 2)
    hist = Histogram("h_seconds", "h", (), buckets=(0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 7):
        hist.observe((), value)
    text = render([count, hist])
    assert '# HELP c_total a "quoted"\\nhelp' in text
    assert 'c_total{model="we\\"ird\\\\name\\n"} 2' in text
    assert 'h_seconds_bucket{le="0.1"} 2\nh_seconds_bucket{le="1"} 3\nh_seconds_bucket{le="+Inf"} 4' in text
    assert "h_seconds_sum 7.65\nh_seconds_count 4" in text


@pytest.fixture
def traffic() -> Any:
    with FakeOpenAI() as up:
        config = {
            # One failure takes "gone" out: its state change reaches the gauge through health_changed.
            "health_checks": {"enabled": False, "passive": True, "gone": {"failure_threshold": 1}},
            "providers": {
                "main": {
                    "type": "openai_compatible",
                    "base_url": up.url,
                    "models": [{"name": "m1", "pricing": {"input": 1, "output": 2}}],
                },
                "gone": {"type": "openai_compatible", "base_url": closed_port_url()},
            },
            "routing": {
                "exact_matches": {
                    "chat": {"provider": "main", "model": "m1"},
                    "fallback": {"provider": "gone", "model": "x", "fallback": ["chat"]},
                    "retrying": {"provider": "main", "model": "m1", "retry_attempts": 1, "retry_delay_ms": 1},
                }
            },
        }
        with Gateway(config) as gw, openai.OpenAI(base_url=gw.url, api_key="x", max_retries=0) as sdk:
            sdk.chat.completions.create(model="chat", messages=USER)
            list(sdk.chat.completions.create(model="chat", messages=USER, stream=True))
            sdk.chat.completions.create(model="fallback", messages=USER)
            up.script(status(503))
            sdk.chat.completions.create(model="retrying", messages=USER)
            with pytest.raises(openai.NotFoundError):
                sdk.chat.completions.create(model="nope", messages=USER)
            yield gw


def test_a_scrape_after_traffic(traffic: Gateway) -> None:
    response = traffic.get("/metrics")
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = parse(response.text)
    assert samples['llmmux_requests_total{model="chat",provider="main",status="200"}'] == 2
    assert samples['llmmux_requests_total{model="fallback",provider="main",status="200"}'] == 1
    # Names that route nowhere share one label, however many clients send.
    assert samples['llmmux_requests_total{model="(unrouted)",provider="",status="404"}'] == 1
    assert samples['llmmux_fallbacks_total{model="fallback"}'] == 1
    assert samples['llmmux_retries_total{model="retrying",provider="main"}'] == 1
    assert samples['llmmux_upstream_attempts_total{provider="main",outcome="server_error"}'] == 1
    assert samples['llmmux_upstream_attempts_total{provider="gone",outcome="connect_error"}'] == 1
    assert samples['llmmux_tokens_total{model="chat",provider="main",kind="prompt"}'] == 4
    assert samples['llmmux_tokens_total{model="chat",provider="main",kind="completion"}'] == 6
    assert samples['llmmux_cost_usd_total{model="chat",provider="main"}'] == pytest.approx(16e-6)
    assert samples['llmmux_time_to_first_token_seconds_count{model="chat",provider="main"}'] == 1
    assert samples['llmmux_request_duration_seconds_count{model="chat",provider="main"}'] == 2
    assert samples['llmmux_overhead_seconds_count{stream="false"}'] == 3
    assert samples['llmmux_overhead_seconds_count{stream="true"}'] == 1
    assert samples["llmmux_in_flight_requests"] == 0
    # Set by product code: the health monitor's transition, published as health_changed.
    assert samples['llmmux_provider_state{provider="gone",state="cooldown"}'] == 1
    assert samples['llmmux_provider_state{provider="gone",state="active"}'] == 0
    assert samples['llmmux_provider_state{provider="main",state="active"}'] == 1


def _snapshot(pid: int, when: float, requests: float, in_flight: float, state: float) -> Snapshot:
    metrics = GatewayMetrics()
    metrics.requests.inc(("chat", "main", "200"), requests)
    metrics.latency.observe(("chat", "main"), 0.2)
    metrics.in_flight.inc((), in_flight)
    metrics.set_provider_state("main", "active" if state else "unavailable")
    snapshot = take(metrics.all, pid)
    snapshot.time = when
    return snapshot


def test_merging_sums_counters_of_every_worker_and_gauges_of_live_ones() -> None:
    metrics = GatewayMetrics()
    dead_pid = 2**22 + 12345  # above pid_max on Linux: never a live process
    live = _snapshot(os.getpid(), 300.0, requests=5, in_flight=2, state=1)
    merged = merge(metrics.all, live, [_snapshot(dead_pid, 100.0, requests=7, in_flight=4, state=0)])
    assert merged["llmmux_requests_total"][("chat", "main", "200")] == 12  # an exited worker's counts still count
    assert merged["llmmux_request_duration_seconds"][("chat", "main")][-1] == 2
    assert merged["llmmux_in_flight_requests"][()] == 2  # but not its in-flight requests
    assert merged["llmmux_provider_state"][("main", "active")] == 1  # the newest state wins
    older_live = _snapshot(os.getppid(), 50.0, requests=1, in_flight=3, state=0)
    merged = merge(metrics.all, live, [older_live])
    assert merged["llmmux_in_flight_requests"][()] == 5
    assert merged["llmmux_provider_state"][("main", "unavailable")] == 0


def test_gauges_merge_as_declared() -> None:
    assert Gauge("g", "h").merge == "sum" and GatewayMetrics().provider_state.merge == "latest"


CONFIG = """
server: {{workers: 2}}
ledger: {{enabled: false}}
metrics: {{snapshot_interval: 0.1}}
providers:
  local: {{type: openai_compatible, base_url: "{url}", models: [m1]}}
routing:
  exact_matches:
    chat: {{provider: local, model: m1}}
"""


def test_every_scrape_counts_every_workers_requests(tmp_path: Path) -> None:
    with FakeOpenAI() as up:
        config = tmp_path / "llmmux.yaml"
        config.write_text(CONFIG.format(url=up.url))
        port = free_port()
        process = start_serve(config, port, env={"TMPDIR": str(tmp_path)})
        try:
            wait_healthy(port, process)
            base = f"http://127.0.0.1:{port}"
            for _ in range(40):  # a new connection each time, so the kernel spreads them over both workers
                with openai.OpenAI(base_url=base + "/v1", api_key="x", max_retries=0) as sdk:
                    sdk.chat.completions.create(model="chat", messages=USER)
            time.sleep(0.5)  # > the snapshot interval
            name = 'llmmux_requests_total{model="chat",provider="local",status="200"}'
            assert {parse(httpx.get(base + "/metrics").text)[name] for _ in range(10)} == {40}
            (folder,) = tmp_path.glob("llmmux-metrics-*")
            per_worker = [msgspec.msgpack.decode(p.read_bytes(), type=Snapshot) for p in folder.glob("*.msgpack")]
            served = [sum(v for _, v in s.families["llmmux_requests_total"]) for s in per_worker]
            assert len(served) == 2 and all(served) and sum(served) == 40, served  # both served, the sum adds up
        finally:
            stop_serve(process)
        assert process.returncode == 0
        assert not list(tmp_path.glob("llmmux-metrics-*"))  # the folder is removed on exit
