"""Benchmark catalog search latency at 100k windows, beside a plain numpy scan, in one run.

    python bench/search.py                              # dims 128 and 512, 100k windows
    python bench/search.py --windows 20000 --dims 128 --queries 50

A catalog is filled with random unit vectors (1,000 files of 100 windows, one video vector per
window), then timed: the catalog's query path (SearchService.search_vector: exact top-k plus
the SQL that fetches paths and times) with each backend, per window and per file, and a bare
`matrix @ query` + `argpartition` over the same matrix as the floor. Reports JSON; latencies in
milliseconds, p50 and p95 over the queries, after one warm-up query (which loads the vectors).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog.service import SearchService  # noqa: E402
from catalog.store import Catalog, FileRecord, Settings  # noqa: E402
from vlsa import sqlitevec  # noqa: E402

WINDOWS_PER_FILE = 100


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fill(catalog: Catalog, windows: int, dim: int, rng: np.random.Generator) -> float:
    """Write `windows` random unit vectors as files of WINDOWS_PER_FILE windows; returns seconds."""
    began = time.perf_counter()
    catalog.bind(Settings("bench", None, "bench", dim, 2.0, 2.0))
    files = -(-windows // WINDOWS_PER_FILE)
    for start in range(0, files, 50):  # 50 files (5,000 windows) per transaction
        records = []
        for f in range(start, min(files, start + 50)):
            n = min(WINDOWS_PER_FILE, windows - f * WINDOWS_PER_FILE)
            records.append(FileRecord(f"/bench/{f // 100:03d}/file{f:05d}.mp4", 1, 1, duration=2.0 * n,
                                      has_video=True, windows=[(2.0 * i, 2.0 * i + 2.0) for i in range(n)],
                                      vectors={"video": unit_vectors(rng, n, dim)}))
        catalog.write_files(records)
    return time.perf_counter() - began


def latency(fn, queries: np.ndarray) -> dict[str, float]:
    fn(queries[0])  # warm-up: loads the vectors, builds the index
    times = []
    for q in queries:
        began = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - began)
    ms = np.asarray(times) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def plain_numpy(matrix: np.ndarray, k: int):
    def search(q: np.ndarray) -> np.ndarray:
        scores = matrix @ q
        top = np.argpartition(scores, len(scores) - k)[-k:]
        return top[np.argsort(-scores[top])]
    return search


def bench_dim(dim: int, windows: int, queries: int, top: int, folder: Path) -> dict:
    rng = np.random.default_rng(dim)
    catalog = Catalog(folder / f"bench{dim}.db")
    result: dict = {"dim": dim, "windows": windows, "top": top, "fill_s": round(fill(catalog, windows, dim, rng), 2)}
    qs = unit_vectors(rng, queries, dim)
    service = SearchService(catalog, backend="numpy")
    began = time.perf_counter()
    service.index("video")
    result["load_s"] = round(time.perf_counter() - began, 3)
    result["catalog_numpy"] = latency(lambda q: service.search_vector(q, kind="video", top=top), qs)
    result["catalog_numpy_per_file"] = latency(
        lambda q: service.search_vector(q, kind="video", top=top, per_file=True), qs)
    result["plain_numpy"] = latency(plain_numpy(service.index("video").matrix, top), qs)
    if sqlitevec.available():
        vec = SearchService(catalog, backend="sqlite-vec")
        began = time.perf_counter()
        vec.index("video")
        result["sqlite_vec_build_s"] = round(time.perf_counter() - began, 2)
        few = qs[: max(5, queries // 4)]  # several times slower: fewer queries keep the run short
        result["catalog_sqlite_vec"] = latency(lambda q: vec.search_vector(q, kind="video", top=top), few)
        result["backends_agree"] = all(
            vec.search_vector(q, kind="video", top=top) == service.search_vector(q, kind="video", top=top)
            for q in few)
    catalog.close()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=100_000)
    ap.add_argument("--dims", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--top", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [bench_dim(d, args.windows, args.queries, args.top, Path(tmp)) for d in args.dims]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
