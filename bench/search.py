"""Benchmark catalog search: exact at 100k windows beside a plain numpy scan, and the approximate
index (catalog/ann.py) at millions of windows, with its recall against exact search.

    python bench/search.py                              # dims 128 and 512, 100k windows, exact
    python bench/search.py --windows 20000 --dims 128 --queries 50
    python bench/search.py --windows 1000000 --windows 10000000     # approximate, 512 dims

Below ANN_MIN_VECTORS windows: a catalog is filled with random unit vectors (1,000 files of 100
windows, one video vector per window), then timed: the catalog's query path
(SearchService.search_vector: exact top-k plus the SQL that fetches paths and times) with each
backend, per window and per file, and a bare `matrix @ query` + `argpartition` over the same
matrix as the floor. Reports JSON; latencies in milliseconds, p50 and p95 over the queries, after
one warm-up query (which loads the vectors).

From ANN_MIN_VECTORS windows (at the largest of --dims): vectors shaped like real ones, a mixture
of CENTRES gaussian clusters (see clustered), written to a catalog in chunks while the exact top
10 of every query is kept chunk by chunk (the ground truth); then the index is built with
`catalog.ann.update` (timed), and a fresh process searches through it (SearchService with
`exact_below=0`): p50 / p95 latency, recall@10 against the ground truth, and that process's peak
resident memory (ru_maxrss). Up to EXACT_UP_TO windows the exact path is timed too, in its own process.

A run of hours must not lose what it measured: the results so far are rewritten to --out (with
--dir: DIR/results.json) after each stage, the search process writes its own after each step
(a process killed for memory leaves them, and the error, in the report), and progress goes to
stderr with each process's resident memory and the machine's available memory. With --dir the
catalog, its index and the ground truth stay in DIR, and a rerun reuses a catalog whose fill
finished and an index that is current with it (the search stage alone, in minutes).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog import ann  # noqa: E402
from catalog.service import SearchService  # noqa: E402
from catalog.store import Catalog, FileRecord, Settings  # noqa: E402
from vlsa import sqlitevec  # noqa: E402

WINDOWS_PER_FILE = 100
CENTRES = 3000  # clusters of the mixture: topics of a large library, a few thousand windows each at 10M
# Spread of a window around its centre, as the length of its gaussian offset: 1.0 puts a window at
# cosine 0.71 to its centre, 0.5 to its cluster's other windows and 0 +- 0.04 to the rest, as a
# model's windows of one kind of scene sit closer to each other than to anything else, while
# the nearest ten of a query are separated from the 11th by about a thousandth of cosine.
SPREAD = 1.0
FILL_CHUNK = 100_000  # windows generated and written at a time (200 MB at 512 dims)
EXACT_UP_TO = 2_000_000  # the exact path is timed only up to here: loading its matrix peaked at 6.4 GB at 1M


def progress(message: str) -> None:
    """A line to stderr with the time, this process's resident memory and the machine's available
    memory: a run killed for memory says so in its last lines."""
    rss = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**30
    available = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemAvailable")) / 2**20
    print(f"{time.strftime('%H:%M:%S')} [pid {os.getpid()} rss {rss:.1f} GB, available {available:.1f} GB, "
          f"load {os.getloadavg()[0]:.1f}] {message}", file=sys.stderr, flush=True)


class Report:
    """The results so far, rewritten to `path` (if any) whenever a stage adds to them, so a run
    killed part way still tells what it had measured."""

    def __init__(self, path: Path | None):
        self.path, self.results = path, []

    def save(self) -> None:
        if self.path is not None:
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(self.results, indent=2))
            os.replace(tmp, self.path)


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
    began = time.perf_counter()
    fn(queries[0])  # warm-up: loads the vectors, builds the index, makes a filter's bitmap
    first = time.perf_counter() - began
    times = []
    for q in queries:
        began = time.perf_counter()
        fn(q)
        times.append(time.perf_counter() - began)
    ms = np.asarray(times) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "first_ms": round(first * 1e3, 2)}


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


def clustered(centres: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """n unit vectors, each a random centre plus a gaussian offset of length about SPREAD."""
    dim = centres.shape[1]
    x = centres[rng.integers(0, len(centres), n)] + rng.standard_normal((n, dim), dtype=np.float32) * (SPREAD / dim**0.5)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def fill_clustered(catalog: Catalog, windows: int, queries: np.ndarray, centres: np.ndarray, top: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Write `windows` clustered vectors; returns the exact top window ids (Q, top) of each query."""
    dim = centres.shape[1]
    catalog.bind(Settings("bench", None, "bench", dim, 2.0, 2.0))
    best_scores = np.full((len(queries), top), -np.inf, np.float32)
    best_ids = np.zeros((len(queries), top), np.int64)
    for first in range(0, windows, FILL_CHUNK):
        vectors = clustered(centres, rng, min(FILL_CHUNK, windows - first))
        records = [FileRecord(f"/bench/{(first + f) // 10**6:02d}/file{(first + f) // WINDOWS_PER_FILE:06d}.mp4",
                              1, 1, duration=2.0 * len(part), has_video=True,
                              windows=[(2.0 * i, 2.0 * i + 2.0) for i in range(len(part))], vectors={"video": part})
                   for f in range(0, len(vectors), WINDOWS_PER_FILE) for part in [vectors[f: f + WINDOWS_PER_FILE]]]
        catalog.write_files(records)
        # Window ids are handed out 1, 2, ... in the order written: row r of this chunk is id first + r + 1.
        scores = np.concatenate([best_scores, queries @ vectors.T], axis=1)
        ids = np.concatenate([best_ids, np.broadcast_to(np.arange(first + 1, first + len(vectors) + 1),
                                                         (len(queries), len(vectors)))], axis=1)
        keep = np.argsort(-scores, axis=1)[:, :top]
        best_scores, best_ids = np.take_along_axis(scores, keep, 1), np.take_along_axis(ids, keep, 1)
        if (first // FILL_CHUNK) % 10 == 9 or first + len(vectors) == windows:
            progress(f"filled {first + len(vectors):,} windows")
    return best_ids


NPROBES = (8, 16, 32, 64)  # lists probed a query, timed beside ann.NPROBE (the default)


def drop_cached(db: str) -> None:
    """Empty the page cache of the catalog and the files beside its index (posix_fadvise
    DONTNEED; no root needed): the next reads come from disk, as a library larger than memory
    has them."""
    paths = [Path(db), Path(f"{db}-wal"), *Path(f"{db}-ann").glob("*")]  # the folder ann.folder names
    for path in paths:
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def search_process(db: str, queries: np.ndarray, top: int, exact: bool, partial: str) -> dict:
    """In a fresh process (its memory is the search's alone): open the catalog, time the queries
    (through the index: at each of NPROBES too, with the windows found). What is measured so far
    is written to `partial` after each step, for a process that does not come back."""
    result: dict = {}

    def done(step: str) -> None:
        result["max_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
        Path(partial).write_text(json.dumps(result))
        numbers = result.get(step, "")
        if isinstance(numbers, dict):
            numbers = {k: v for k, v in numbers.items() if k != "found"}
        progress(f"{'exact' if exact else 'approximate'} search: {step} {numbers}")

    service = SearchService.open(db, exact_below=None if exact else 0)
    began = time.perf_counter()
    service.search_vector(queries[0], kind="video", top=top)  # reads the index (or the matrix)
    result["open_s"] = round(time.perf_counter() - began, 2)
    done("open_s")
    if not exact:  # every query once from disk: its candidates' rows are read cold
        drop_cached(db)
        result["cold"] = latency(lambda q: service.search_vector(q, kind="video", top=top), queries[1:])
        done("cold")
    result.update(latency(lambda q: service.search_vector(q, kind="video", top=top), queries))
    result["found"] = [[h.window_id for h in service.search_vector(q, kind="video", top=top)] for q in queries]
    done("p50_ms")
    if not exact:
        index = service.ann("video").index
        for nprobe in NPROBES:
            index.nprobe = nprobe
            timed = latency(lambda q: service.search_vector(q, kind="video", top=top), queries)
            timed["found"] = [[h.window_id for h in service.search_vector(q, kind="video", top=top)] for q in queries]
            result[f"nprobe_{nprobe}"] = timed
            done(f"nprobe_{nprobe}")
        index.nprobe = ann.NPROBE
    result["per_file"] = latency(lambda q: service.search_vector(q, kind="video", top=top, per_file=True), queries[:50])
    done("per_file")
    folder = "/bench/00"  # the first million windows: a tenth of 10M, all of 1M
    drop_cached(db)  # the first filtered query (its first_ms) reads the files and the map from disk
    result["folder"] = latency(lambda q: service.search_vector(q, kind="video", top=top, folder=folder), queries[:50])
    done("folder")
    return result


def in_fresh_process(db: str, queries: np.ndarray, top: int, exact: bool) -> dict:
    """search_process's result; where the process died, what it had written, with the error."""
    partial = Path(db).with_name(f"{Path(db).stem}-{'exact' if exact else 'approximate'}.partial.json")
    partial.unlink(missing_ok=True)
    # An executor, not a Pool: a worker that dies raises here instead of leaving the run waiting.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        try:
            return pool.submit(search_process, db, queries, top, exact, str(partial)).result()
        except Exception as e:  # noqa: BLE001 - a killed worker (BrokenProcessPool) or any error in it
            progress(f"search process failed: {type(e).__name__}: {e}")
            result = json.loads(partial.read_text()) if partial.exists() else {}
            return {**result, "error": f"{type(e).__name__}: {e}"}


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    """Mean share of each query's exact top k that was found."""
    return round(float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth.tolist(), strict=True)])), 4)


def bench_ann(windows: int, dim: int, queries: int, top: int, folder: Path, report: Report) -> dict:
    """Fill, build, search: each stage's numbers go into the report as soon as they exist. A
    catalog in `folder` whose fill finished (its queries and truth saved beside it) is reused,
    and so is an index that is current with it."""
    rng = np.random.default_rng(windows)
    centres = unit_vectors(rng, CENTRES, dim)
    qs = clustered(centres, rng, queries)
    db, saved = folder / f"ann{windows}.db", folder / f"ann{windows}-truth.npy"
    result: dict = {"dim": dim, "windows": windows, "top": top, "centres": CENTRES, "spread": SPREAD}
    report.results.append(result)
    if not saved.exists():  # no finished fill: start from an empty catalog
        for stale in folder.glob(f"ann{windows}.db*"):  # the catalog, its WAL and its index folder
            if stale.is_dir():
                shutil.rmtree(stale)
            else:
                stale.unlink()
    with Catalog(db) as catalog:
        if saved.exists():
            truth = np.load(saved, allow_pickle=False)  # a vector file never holds objects
            progress(f"reusing the catalog {db}")
        else:
            began = time.perf_counter()
            truth = fill_clustered(catalog, windows, qs, centres, top, rng)
            result["fill_s"] = round(time.perf_counter() - began, 1)
            np.save(saved, truth)
        result["catalog_gb"] = round(db.stat().st_size / 2**30, 2)
        result["page_size"] = catalog.db.execute("PRAGMA page_size").fetchone()[0]
        report.save()
        progress(f"catalog ready: {result}; building the index")
        began = time.perf_counter()
        built = ann.update(catalog, "video", min_vectors=1)
        result["build_s" if built == "built" else f"index_{built}_s"] = round(time.perf_counter() - began, 1)
        info = ann.read_info(catalog, "video")
        result["index"] = {"factory": info.factory, "nprobe": ann.NPROBE,
                           "file_gb": round((ann.folder(catalog) / info.file).stat().st_size / 2**30, 2)}
    report.save()
    progress(f"index {built}: {result['index']}; searching in a fresh process")
    searched = result["approximate"] = in_fresh_process(str(db), qs, top, False)
    for part in [searched] + [searched[f"nprobe_{n}"] for n in NPROBES if f"nprobe_{n}" in searched]:
        if "found" in part:
            part["recall_at_10"] = recall(part.pop("found"), truth)
    report.save()
    if windows <= EXACT_UP_TO:
        exact = result["exact"] = in_fresh_process(str(db), qs[:50], top, True)
        exact.pop("found", None)
        report.save()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, action="append",
                    help=f"windows in the catalog, repeatable [default: 100000]; from {ann.ANN_MIN_VECTORS} "
                    "the approximate index on clustered vectors")
    ap.add_argument("--dims", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--dir", type=Path, help="where the catalogs go, kept there so a rerun reuses them "
                    "[default: a temporary folder, removed at the end] (10M windows take about 30 GB)")
    ap.add_argument("--out", type=Path, help="the results as JSON, rewritten after each stage "
                    "[default: DIR/results.json with --dir]; they are printed at the end as well")
    args = ap.parse_args()
    report = Report(args.out or (args.dir / "results.json" if args.dir else None))
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for windows in args.windows or [100_000]:
            if windows >= ann.ANN_MIN_VECTORS:
                bench_ann(windows, max(args.dims), args.queries, args.top, folder, report)
                progress(json.dumps(report.results[-1]))
            else:
                report.results += [bench_dim(d, windows, args.queries, args.top, folder) for d in args.dims]
            report.save()
    print(json.dumps(report.results, indent=2))


if __name__ == "__main__":
    main()
