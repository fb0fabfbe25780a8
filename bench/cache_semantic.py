"""The semantic cache's lookup time against index size, and the index libraries compared.

    .venv/bin/python bench/cache_semantic.py                    # 1k, 10k, 100k entries, 384 dimensions
    .venv/bin/python bench/cache_semantic.py --sizes 1000,10000 --dim 768

For each size: llmmux's `VectorIndex` (numpy, exact cosine over one guard's unit vectors),
then, where installed, usearch and hnswlib (approximate HNSW graphs), each asked the same
queries. Columns: time to build, median and p99 time per lookup (one query at a time, as the
gateway asks), and recall@1 against the exact answer. Vectors are random unit vectors with
each query a perturbed copy of a stored one, so the nearest neighbour is known.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from llmmux.cache.vectors import VectorIndex

QUERIES = 200
FAR = 10.0**12


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def numpy_index(data: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    index = VectorIndex()
    build = timed(lambda: [index.add(f"s:{i}", row.tolist(), "g", FAR) for i, row in enumerate(data)])
    lists = [q.tolist() for q in queries]
    times, found = [], []
    for query in lists:
        start = time.perf_counter()
        best = index.nearest(query, "g", 0.0)
        times.append(time.perf_counter() - start)
        found.append(int(best[0][0][2:]))
    return summary(build, times, found, truth)


def usearch_index(data: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict[str, float] | None:
    try:
        from usearch.index import Index
    except ImportError:
        return None
    index = Index(ndim=data.shape[1], metric="cos", dtype="f32")
    build = timed(lambda: index.add(np.arange(len(data)), data))
    times, found = [], []
    for query in queries:
        start = time.perf_counter()
        match = index.search(query, 1)
        times.append(time.perf_counter() - start)
        found.append(int(match.keys[0]))
    return summary(build, times, found, truth)


def hnswlib_index(data: np.ndarray, queries: np.ndarray, truth: np.ndarray) -> dict[str, float] | None:
    try:
        import hnswlib
    except ImportError:
        return None
    index = hnswlib.Index(space="cosine", dim=data.shape[1])

    def build() -> None:
        index.init_index(max_elements=len(data), ef_construction=200, M=16)
        index.add_items(data, np.arange(len(data)))
        index.set_ef(50)

    took = timed(build)
    times, found = [], []
    for query in queries:
        start = time.perf_counter()
        labels, _ = index.knn_query(query, k=1)
        times.append(time.perf_counter() - start)
        found.append(int(labels[0][0]))
    return summary(took, times, found, truth)


def summary(build: float, times: list[float], found: list[int], truth: np.ndarray) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "build_s": round(build, 3),
        "p50_ms": round(ordered[len(ordered) // 2] * 1000, 4),
        "p99_ms": round(ordered[int(len(ordered) * 0.99)] * 1000, 4),
        "recall": round(float(np.mean(np.array(found) == truth)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--only", default="numpy,usearch,hnswlib", help="which indexes to run")
    args = parser.parse_args()
    rng = np.random.default_rng(17)
    print("| entries | index | build s | lookup p50 ms | lookup p99 ms | recall@1 |\n|---:|---|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        data = rng.standard_normal((size, args.dim)).astype(np.float32)
        data /= np.linalg.norm(data, axis=1, keepdims=True)
        truth = rng.integers(0, size, QUERIES)
        queries = data[truth] + 0.05 * rng.standard_normal((QUERIES, args.dim)).astype(np.float32)
        runs = (("numpy", numpy_index), ("usearch", usearch_index), ("hnswlib", hnswlib_index))
        for name, run in runs:
            if name not in args.only.split(","):
                continue
            row = run(data, queries, truth)
            if row is not None:
                print(
                    f"| {size} | {name} | {row['build_s']} | {row['p50_ms']} | {row['p99_ms']} | {row['recall']} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
