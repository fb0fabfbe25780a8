"""bench/ and tests/ are both put on sys.path by bench scripts (and a test imports bench modules):
a bench module named like a tests module or package would import whichever comes first."""

from __future__ import annotations

from pathlib import Path

TREE = Path(__file__).resolve().parents[2]


def top_level_names(folder: Path) -> set[str]:
    modules = {path.stem for path in folder.glob("*.py")}
    packages = {path.parent.name for path in folder.glob("*/__init__.py")}
    return modules | packages


def test_no_bench_module_shares_a_name_with_a_tests_module_or_package() -> None:
    bench = top_level_names(TREE / "bench")
    assert "fake_upstreams" in bench  # the fake upstreams the benchmarks start
    assert top_level_names(TREE / "tests") & bench == set()
