"""Compare approximate indexes on the clustered vectors of bench/search.py, without a catalog: the
measurement behind catalog/ann.py's choice (docs/CATALOG.md, "The approximate index").

    python bench/ann_libraries.py --windows 100000
    python bench/ann_libraries.py --windows 200000 --lists-per-sqrt 4

FAISS IVF-SQ8 at several nprobe and FAISS HNSW-SQ8 at several efSearch; usearch's HNSW over int8
where `usearch` is installed (it is not a dependency). Reports JSON: build seconds, recall@10
against exact search, p50 / p95 latency of one query in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search import CENTRES, clustered, unit_vectors  # noqa: E402

TOP = 10


def measure(search, queries: np.ndarray, truth: np.ndarray) -> dict:
    """search(q (E,)) -> ids (TOP,); recall against truth and the latency of each query."""
    times, found = [], []
    for q in queries:
        began = time.perf_counter()
        found.append(search(q))
        times.append(time.perf_counter() - began)
    recall = np.mean([len(set(np.asarray(f).tolist()) & set(t)) / TOP for f, t in zip(found, truth.tolist(), strict=True)])
    ms = np.asarray(times) * 1e3
    return {"recall_at_10": round(float(recall), 4), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def faiss_index(factory: str, vectors: np.ndarray, train: int) -> tuple[faiss.Index, float]:
    began = time.perf_counter()
    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    index.train(vectors[:train])
    index.add(vectors)
    return index, round(time.perf_counter() - began, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--lists-per-sqrt", type=float, default=1.0)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    centres = unit_vectors(rng, CENTRES, args.dim)
    vectors, queries = clustered(centres, rng, args.windows), clustered(centres, rng, args.queries)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :TOP]
    results = {}
    lists = max(1, round(args.lists_per_sqrt * args.windows**0.5))
    ivf, results[f"IVF{lists},SQ8 build_s"] = faiss_index(f"IVF{lists},SQ8", vectors, 100 * lists)
    for nprobe in (8, 16, 32, 64):
        ivf.nprobe = nprobe
        results[f"IVF{lists},SQ8 nprobe {nprobe}"] = measure(lambda q: ivf.search(q[None], TOP)[1][0], queries, truth)
    hnsw, results["HNSW32,SQ8 build_s"] = faiss_index("HNSW32,SQ8", vectors, 100_000)
    for ef in (32, 64, 128):
        hnsw.hnsw.efSearch = ef
        results[f"HNSW32,SQ8 efSearch {ef}"] = measure(lambda q: hnsw.search(q[None], TOP)[1][0], queries, truth)
    try:
        from usearch.index import Index
    except ImportError:
        results["usearch"] = "not installed"
    else:
        began = time.perf_counter()
        index = Index(ndim=args.dim, metric="ip", dtype="i8", connectivity=16, expansion_add=128)
        index.add(np.arange(len(vectors)), vectors)
        results["usearch i8 build_s"] = round(time.perf_counter() - began, 1)
        for ef in (32, 64, 128):
            index.expansion_search = ef
            results[f"usearch i8 ef {ef}"] = measure(lambda q: index.search(q, TOP).keys, queries, truth)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
