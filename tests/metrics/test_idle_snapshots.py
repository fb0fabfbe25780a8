"""A worker's metrics snapshot file is written again only when its numbers changed: an idle
worker does not rewrite the same file every second."""

from __future__ import annotations

from pathlib import Path

from llmmux.metrics import GatewayMetrics


def test_an_unchanged_snapshot_is_not_written_again_and_a_changed_one_is(tmp_path: Path) -> None:
    metrics = GatewayMetrics(folder=tmp_path)
    metrics.write_snapshot()
    (written,) = tmp_path.glob("*.msgpack")
    first = written.stat().st_ino, written.stat().st_mtime_ns
    metrics.write_snapshot()
    assert (written.stat().st_ino, written.stat().st_mtime_ns) == first  # each write replaces the file
    metrics.set_provider_state("a", "unavailable")
    metrics.write_snapshot()
    assert written.stat().st_ino != first[0]
    assert "unavailable" in metrics.render()
