"""An approximate index of one modality's vectors, beside the catalog, for libraries too large to scan.

    update(catalog, "video")                          # `vlsa index`: build it, or bring it up to date
    index = AnnIndex.open(catalog, "video")           # search: None where there is none to use
    index.top(query, k, allowed_media, exclude, per_file)   # [(window_id, media_id, score)]

FAISS, `IVF{lists},SQ8` under inner product: a coarse k-means splits the vectors into lists, each
vector is held as 8-bit codes (a quarter of float32: 10M x 512 dims is 5 GB, not 20), and a query
scans the NPROBE lists nearest to it. docs/CATALOG.md has the measurements behind the choice.

The SQLite catalog stays the source of truth; the index is derived from it and never trusted
alone. Its file records the catalog generation and the highest window id (H) it was built from.
Window ids are never reused (Catalog.max_window_id), so at search time:
- a window above H is new since the build: the delta, loaded from the catalog and scanned exactly,
  and loaded again whenever the catalog's generation moves (a removal changes it, not only growth);
- every candidate at or below H is looked up in the catalog and rescored with its stored vector:
  one that is gone (deleted, or its file re-indexed under new ids) is dropped, and the scores are
  exact, the same the exact scan gives.
So an index behind the catalog is slower to use, never wrong; `update` (run by `vlsa index`)
adds the delta to it, or rebuilds it when deletions or growth have made it a poor fit.

Files, in `<catalog>-ann/`: `<modality>.json` (what the index was built from, and its file),
`<modality>-<generation>.faiss` and beside it `<modality>-<generation>.files.npy`, which file each
window up to H belongs to (file_runs): a filter's bitmap of allowed windows is made from it in
milliseconds, where reading the catalog's 10M window rows took 25 s. Its name follows the index
file's, so a map made for another build is never read. A build writes each file under a temporary
name, fsyncs it and renames it, then replaces the JSON the same way, so a build killed at any
moment leaves the previous JSON naming the previous, complete files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catalog.reads import ParallelReads
from catalog.search import MatrixIndex, keep_mask, kept, row_scores
from catalog.store import Catalog

if TYPE_CHECKING:
    import faiss

log = logging.getLogger(__name__)

# Below this many vectors of a modality the exact scan stays the default: it answers in about
# 13 ms there on an idle 2-core machine, with recall 1 and no index to build or keep in step.
ANN_MIN_VECTORS = 200_000
# Lists scanned a query. Recall@10 on bench/search.py's clustered windows at 16: 0.9995 at 1M,
# 0.970 at 200k (8: 0.9975, 0.961; 32: 0.9995, 0.981); 16 scans half what 32 did, for 4.8 ms p50
# at 1M against 10.8 (docs/CATALOG.md). Below ANN_MIN_VECTORS, where the index serves only when
# asked, 16 fell to 0.92 at 100k (33 windows a cluster: the ten nearest span more lists).
NPROBE = 16
LISTS_PER_SQRT = 1  # lists = sqrt(N), of sqrt(N) vectors each: k-means and assignment cost grow with the count
TRAIN_PER_LIST = 100  # k-means sample a list: 40 (FAISS warns below 39) cost 0.07 of recall at 100k
OVERFETCH = 4  # candidates asked for per result wanted: room for filtered, deleted and per-file losers
MAX_FETCH = 4096  # past this many candidates a filtered query is answered by the exact scan of its subset
CHUNK_ROWS = 50_000  # vectors read from the catalog at a time while building (100 MB at 512 dims)
SELECTORS_KEPT = 4  # filters whose window bitmap is kept between queries (1.25 MB each at 10M windows)
REBUILD_STALE = 0.2  # rebuild rather than add when this share of the indexed windows is gone
REBUILD_GROWTH = 2.0  # ... or the catalog has grown this many times past what the lists were trained on


@dataclass(frozen=True)
class IndexInfo:
    """What an index file holds: the `<modality>.json` beside it."""

    file: str  # the .faiss file's name, in the same folder
    generation: int  # Catalog.generation() it was built from
    max_window_id: int  # Catalog.max_window_id() then: every window above it is newer
    fingerprint: str  # the checkpoint that made the vectors
    dim: int
    count: int  # vectors in the index (deleted ones included until a rebuild)
    trained_on: int  # vectors in the catalog when its lists were trained
    factory: str  # the FAISS index_factory string


def _faiss():
    """FAISS, imported on first use: 0.2 s that a search of a catalog with no index never needs."""
    import faiss
    return faiss


def folder(catalog: Catalog) -> Path:
    return catalog.path.with_name(catalog.path.name + "-ann")


def files_name(index_file: str) -> str:
    """The window -> file map's name for an index file's: `video-7.faiss` -> `video-7.files.npy`."""
    return index_file.removesuffix(".faiss") + ".files.npy"


def file_runs(catalog: Catalog, high: int) -> np.ndarray:
    """int64 (R + 1, 2): which file each window id 0..high belongs to, as runs of ids: row r is
    (first id of run r, its file), 0 for ids with no window; the last row is (high + 1, -1), so a
    map made up to another id is told apart. A file's windows get consecutive ids, so a run is
    about a file: 100,000 rows (1.6 MB) for 10M windows of 100 each."""
    window_ids, media_ids = catalog.window_files(high)
    dense = np.zeros(high + 1, np.int64)
    dense[window_ids] = media_ids
    starts = np.flatnonzero(np.diff(dense, prepend=-1))
    return np.concatenate([np.stack([starts, dense[starts]], axis=1), [[high + 1, -1]]]).astype(np.int64)


def stamp(catalog: Catalog, modality: str) -> tuple[int, int] | None:
    """Changes whenever an index of this modality is written: (inode, mtime) of its JSON."""
    try:
        st = (folder(catalog) / f"{modality}.json").stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def read_info(catalog: Catalog, modality: str) -> IndexInfo | None:
    """The index recorded for this modality, if there is one made with the catalog's checkpoint."""
    try:
        info = IndexInfo(**json.loads((folder(catalog) / f"{modality}.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None
    settings = catalog.settings
    # The checkpoint fixes each modality's width (embed_dim, or a tower's own for its vectors).
    if settings is None or info.fingerprint != settings.fingerprint:
        return None  # built before a --rebuild with another checkpoint: every window it holds is gone
    return info


class AnnIndex:
    """One modality's approximate index plus the exact delta of windows added since it was built."""

    def __init__(self, catalog: Catalog, modality: str, info: IndexInfo, index: faiss.Index):
        self.catalog, self.modality, self.info, self.index = catalog, modality, info, index
        self.index.nprobe = NPROBE
        self._runs: np.ndarray | None = None  # file_runs(), memory-mapped from beside the index
        self.reads = ParallelReads(catalog.path)
        self._selectors: dict[bytes, tuple[object, np.ndarray, int]] = {}  # allowed media -> _selector()
        self.delta_generation: int | None = None  # Catalog.generation() the delta was loaded at
        self.refresh()

    @classmethod
    def open(cls, catalog: Catalog, modality: str, current: AnnIndex | None = None) -> AnnIndex | None:
        """The index on disk (None if there is none usable), with its delta loaded; `current` is
        reused, its delta refreshed, when it is still the one on disk."""
        for _ in range(2):  # a concurrent build may remove the file the JSON named a moment ago
            info = read_info(catalog, modality)
            if info is None:
                return None
            if current is not None and current.info == info:
                current.refresh()
                return current
            try:
                return cls(catalog, modality, info, _faiss().read_index(str(folder(catalog) / info.file)))
            except RuntimeError as e:
                log.warning("%s: approximate index not readable (%s)", catalog.path, str(e).splitlines()[0])
        return None

    def refresh(self) -> None:
        """Load the windows written since the build (ids above max_window_id), to scan exactly,
        again whenever the catalog's generation moved. Any write, not only growth: a file added
        since the build and then deleted leaves the highest id where it was, and a delta kept on
        that would still offer its windows."""
        generation = self.catalog.generation()  # read before the load: a write during it is seen next time
        if generation != self.delta_generation:
            self.delta = MatrixIndex(*self.catalog.load_vectors(self.modality, after=self.info.max_window_id))
            self.delta_generation = generation

    def __len__(self) -> int:
        return self.info.count + len(self.delta)

    @property
    def dim(self) -> int:
        return self.info.dim

    def top(self, query: np.ndarray, k: int, allowed_media: np.ndarray | None = None,
            exclude: np.ndarray | None = None, per_file: bool = False) -> list[tuple[int, int, float]]:
        """(window_id, media_id, score) of the k best windows, best first, scored exactly with the
        catalog's vectors: only files in `allowed_media` (None: all), no window in `exclude`,
        with `per_file` only each file's best window."""
        q = np.ascontiguousarray(query, dtype=np.float32)
        fresh = self.delta.top_windows(q, k, allowed_media, exclude, per_file)
        params, allowed = self._filter(allowed_media)
        fetch = OVERFETCH * k
        while True:
            ids = self.index.search(q[None], min(fetch, self.info.count), params=params)[1][0]
            best = _best(self._rescore(q, ids[ids >= 0], allowed_media, exclude) + fresh, k, per_file)
            # Fewer ids than asked: the probed lists hold no more that pass the filter.
            if len(best) >= k or (ids < 0).any() or fetch >= min(self.info.count, MAX_FETCH):
                break
            fetch *= OVERFETCH
        if len(best) < k and allowed_media is not None and allowed <= ANN_MIN_VECTORS:
            # A filter that few windows pass: they fit the exact scan, which misses none of them.
            subset = MatrixIndex(*self.catalog.load_vectors(self.modality, media_ids=allowed_media))
            return subset.top_windows(q, k, None, exclude, per_file)
        return best

    def _filter(self, allowed_media) -> tuple[object | None, int]:
        """FAISS search parameters that pass only the windows of the allowed files (None: all),
        and how many windows of the index pass: the filter applies inside the scan, so a narrow
        one does not leave the candidates all filtered out. (Excluded windows, a handful, are
        dropped from the candidates instead.)"""
        if allowed_media is None:
            return None, self.info.count
        # The bitmap depends only on the allowed files: which file an indexed window belongs to
        # never changes (ids are not reused). Made once per filter, it costs 0.1 s a query at 1M.
        key = np.asarray(allowed_media, np.int64).tobytes()
        made = kept(self._selectors, key, lambda: self._selector(allowed_media), SELECTORS_KEPT)
        selector, _, passed = made
        params = _faiss().SearchParametersIVF(sel=selector, nprobe=self.index.nprobe)
        params.keep = made  # FAISS holds bare pointers: the bitmap must outlive params
        return params, passed

    def _selector(self, allowed_media) -> tuple[object, np.ndarray, int]:
        """(FAISS IDSelectorBitmap, the bitmap it points into, how many windows pass), made from
        the window -> file runs: one lookup a run and one repeat, milliseconds at 10M windows."""
        runs = self.file_runs()
        starts, media = runs[:, 0], runs[:-1, 1]
        allowed = np.asarray(allowed_media, np.int64)
        passes = np.zeros(max(int(media.max(initial=0)), int(allowed.max(initial=0))) + 1, bool)
        passes[allowed[allowed > 0]] = True  # by file id; 0, no window, never passes
        keep, lengths = passes[media], np.diff(starts)
        bits = np.repeat(keep, lengths)  # one per window id 0..H
        packed = np.packbits(bits, bitorder="little")
        faiss = _faiss()
        return faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(packed)), packed, int(lengths[keep].sum())

    def file_runs(self) -> np.ndarray:
        """file_runs() of the index's windows: the map written with it, memory-mapped; made from
        the catalog (slow at millions of windows) where it is missing or not this build's."""
        if self._runs is None:
            path = folder(self.catalog) / files_name(self.info.file)
            try:
                runs = np.load(path, mmap_mode="r", allow_pickle=False)
                if runs.ndim != 2 or runs.shape[1] != 2 or runs[-1, 0] != self.info.max_window_id + 1:
                    raise ValueError(f"made up to window {runs[-1, 0] - 1}, not {self.info.max_window_id}")
                self._runs = runs
            except (OSError, ValueError, IndexError) as e:
                log.warning("%s: window -> file map not usable (%s); reading it from the catalog", path, e)
                self._runs = file_runs(self.catalog, self.info.max_window_id)
        return self._runs

    def _rescore(self, q: np.ndarray, ids: np.ndarray, allowed_media, exclude) -> list[tuple[int, int, float]]:
        """The candidates that still exist in the catalog and pass the filters, with exact scores."""
        if not len(ids):
            return []
        window_ids, media_ids, vectors = self.reads.load_vectors(self.modality, ids)
        keep = keep_mask(window_ids, media_ids, allowed_media, exclude)
        scores = row_scores(vectors[keep], q)  # as the exact scan scores its winners: identical scores
        return list(zip(window_ids[keep].tolist(), media_ids[keep].tolist(), scores.tolist(), strict=True))


def _best(found: list[tuple[int, int, float]], k: int, per_file: bool) -> list[tuple[int, int, float]]:
    """The k best, ties to the lower window id; each window once (a window written while the
    index was built can be in it and in the delta), with `per_file` each file once."""
    seen: set[int] = set()
    best = []
    for window_id, media_id, score in sorted(found, key=lambda t: (-t[2], t[0])):
        key = media_id if per_file else window_id
        if key not in seen:
            seen.add(key)
            best.append((window_id, media_id, score))
    return best[:k]


# --- building ---------------------------------------------------------------------------------


def update(catalog: Catalog, modality: str, min_vectors: int = ANN_MIN_VECTORS) -> str:
    """Bring the modality's index up to date with the catalog: 'current', 'updated' (the delta
    added), 'built' (from scratch), or 'small' (fewer than `min_vectors`: exact search serves it)."""
    info = read_info(catalog, modality)
    generation, high = catalog.generation(), catalog.max_window_id()
    if info is not None and info.generation == generation:
        if not (folder(catalog) / files_name(info.file)).exists():  # an index from before the map
            _write(catalog, modality, None, info)
        return "current"
    count = catalog.count_vectors(modality)
    if count < max(min_vectors, 1):
        return "small"
    if info is not None:
        gone = info.count - catalog.count_vectors(modality, upto=info.max_window_id)
        if gone <= REBUILD_STALE * info.count and count <= REBUILD_GROWTH * info.trained_on:
            if high == info.max_window_id:  # windows only removed: the file serves as it is
                _write(catalog, modality, None, replace(info, generation=generation))
                return "updated"
            index = _faiss().read_index(str(folder(catalog) / info.file))
            for ids, vectors in catalog.vector_chunks(modality, CHUNK_ROWS, after=info.max_window_id):
                index.add_with_ids(vectors, ids)
            _write(catalog, modality, index, IndexInfo(
                f"{modality}-{generation}.faiss", generation, high, info.fingerprint, info.dim,
                int(index.ntotal), info.trained_on, info.factory))
            return "updated"
    index, factory = _train(catalog, modality, count)
    for ids, vectors in catalog.vector_chunks(modality, CHUNK_ROWS):
        index.add_with_ids(vectors, ids)
    settings = catalog.settings
    _write(catalog, modality, index, IndexInfo(f"{modality}-{generation}.faiss", generation, high,
                                               settings.fingerprint, int(index.d), int(index.ntotal),
                                               count, factory))
    return "built"


def _train(catalog: Catalog, modality: str, count: int) -> tuple[faiss.Index, str]:
    """An empty IVF-SQ8 index, its lists and quantiser trained on a sample of the catalog's vectors."""
    lists = max(1, round(LISTS_PER_SQRT * math.sqrt(count)))
    every = max(1, count // (lists * TRAIN_PER_LIST))  # the sample: ids that are multiples of `every`
    sample = np.concatenate([v for _, v in catalog.vector_chunks(modality, CHUNK_ROWS, every=every)])
    lists = max(1, min(lists, len(sample) // TRAIN_PER_LIST))
    factory = f"IVF{lists},SQ8"
    index = _faiss().index_factory(sample.shape[1], factory, _faiss().METRIC_INNER_PRODUCT)
    index.train(sample)
    return index, factory


def _write(catalog: Catalog, modality: str, index: faiss.Index | None, info: IndexInfo) -> None:
    """Write the index file (None: it is on disk already) and its window -> file map (where it
    is missing), then the JSON that names them, each under a temporary name first."""
    dest = folder(catalog)
    dest.mkdir(exist_ok=True)
    if index is not None:
        _replace(dest / info.file, lambda tmp: _faiss().write_index(index, str(tmp)))
    runs = dest / files_name(info.file)
    if index is not None or not runs.exists():
        _replace(runs, lambda tmp: _save(tmp, file_runs(catalog, info.max_window_id)))
    _replace(dest / f"{modality}.json", lambda tmp: tmp.write_text(json.dumps(asdict(info), indent=1)))
    # Earlier builds' files, and what killed builds left; by exact pattern, so one modality's
    # name that begins another's ("audio", "audio-tower") never takes the other's files.
    ours = re.compile(rf"{re.escape(modality)}-\d+\.(faiss|files\.npy)(\.tmp)?")
    for old in dest.iterdir():
        if ours.fullmatch(old.name) and old.name not in (info.file, runs.name):
            old.unlink(missing_ok=True)


def _save(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # np.save(path) would add ".npy" to the temporary name
        np.save(f, array, allow_pickle=False)


def _replace(path: Path, write) -> None:
    """Make `path` by `write(tmp)`, fsync and rename: readers see the old file or the whole new one."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)
