"""Exact top-k over the stored vectors of one modality.

Two backends with one interface, `top(query, k, allowed, per_file) -> [(row, score)]`:

- `MatrixIndex`: every vector in one float32 matrix, scored by one matrix-vector product and a
  partial sort (`np.partition`). The default: bench/search.py measured it faster than sqlite-vec at 100k windows
  (see docs/CATALOG.md) and it needs no extension.
- `SqliteVecIndex`: the same vectors in a sqlite-vec `vec0` table of an in-memory database on a
  sqlean connection (the stdlib sqlite3 here cannot load extensions). The table lives in memory,
  not in the catalog file, so the file stays usable where the extension cannot load.

Both return the same rows in the same order with the same scores (the dot product, recomputed in
numpy for the rows sqlite-vec returns); ties are broken by the lower row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from vlsa import sqlitevec

T = TypeVar("T")

log = logging.getLogger(__name__)

BACKENDS = ("numpy", "sqlite-vec")
VEC_MAX_K = 4096  # sqlite-vec's limit on k in one KNN query


class MatrixIndex:
    """Brute-force scoring of an (N, E) float32 matrix whose rows are grouped by file."""

    def __init__(self, window_ids: np.ndarray, media_ids: np.ndarray, matrix: np.ndarray):
        self.window_ids, self.media_ids = window_ids, media_ids
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        # First row of each file's run of rows (rows come ordered by file; see Catalog.load_vectors).
        change = np.flatnonzero(np.diff(media_ids)) + 1 if len(media_ids) else np.zeros(0, np.int64)
        self.group_starts = np.concatenate([[0], change]).astype(np.int64) if len(media_ids) else change

    def __len__(self) -> int:
        return len(self.window_ids)

    def scores(self, query: np.ndarray) -> np.ndarray:
        """float32 (N,): dot product of every row with the query."""
        return self.matrix @ query.astype(np.float32, copy=False)

    def top(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
            per_file: bool = False) -> list[tuple[int, float]]:
        """The k best (row, score), best first; `allowed` is a bool mask over rows; with `per_file`
        only each file's best row competes."""
        if len(self) == 0 or k <= 0:
            return []
        scores = self.scores(query)
        if allowed is not None:
            scores[~allowed] = -np.inf
        if per_file:
            best = np.maximum.reduceat(scores, self.group_starts)
            ends = np.append(self.group_starts[1:], len(scores))
            rows = [int(self.group_starts[g] + np.argmax(scores[self.group_starts[g]: ends[g]]))
                    for g in _candidates(best, k)]
        else:
            rows = _candidates(scores, k)
        return self._finish(query, rows, k)

    def top_windows(self, query: np.ndarray, k: int, media: np.ndarray | None = None,
                    excluded: np.ndarray | None = None, per_file: bool = False) -> list[tuple[int, int, float]]:
        """top() by ids: (window_id, media_id, score) of the k best, only of the files `media`
        (None: all) and none of the windows `excluded`."""
        allowed = None
        if media is not None or excluded is not None:
            allowed = keep_mask(self.window_ids, self.media_ids, media, excluded)
        return [(int(self.window_ids[r]), int(self.media_ids[r]), s) for r, s in self.top(query, k, allowed, per_file)]

    def _finish(self, query: np.ndarray, rows, k: int) -> list[tuple[int, float]]:
        """Rescore the candidate rows with row_scores and keep the k best, ties to the lower row."""
        rows = np.asarray(rows, np.int64)
        scores = row_scores(self.matrix[rows], query)
        best = np.lexsort((rows, -scores))[:k]
        return list(zip(rows[best].tolist(), scores[best].tolist(), strict=True))


def kept(cache: dict, key, make: Callable[[], T], limit: int) -> T:
    """cache[key], made with make() the first time; past `limit` entries the oldest is dropped."""
    if key not in cache:
        if len(cache) >= limit:
            del cache[next(iter(cache))]
        cache[key] = make()
    return cache[key]


def row_scores(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """float32 (n,): each row's dot product with the query, the reported score of a hit.

    Summed row by row in an order fixed by the width alone, so a row's score does not depend on
    which rows were scored with it; a BLAS matrix-vector product sums a row in another order for
    another number of rows. So every backend and the approximate index report identical scores.
    """
    return (matrix * query.astype(np.float32, copy=False)).sum(axis=1)


def keep_mask(window_ids: np.ndarray, media_ids: np.ndarray, media: np.ndarray | None,
              excluded: np.ndarray | None) -> np.ndarray:
    """bool over rows: the file is among `media` (None: any) and the window not among `excluded`."""
    keep = np.ones(len(window_ids), bool)
    if media is not None:
        keep &= np.isin(media_ids, media)
    if excluded is not None:
        keep &= ~np.isin(window_ids, excluded)
    return keep


def _candidates(scores: np.ndarray, k: int) -> np.ndarray:
    """Rows of the k highest finite scores; among rows tied with the k-th, the lowest."""
    if k < len(scores):
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        above = np.flatnonzero(scores > kth)
        rows = np.concatenate([above, np.flatnonzero(scores == kth)[: k - len(above)]])
    else:
        rows = np.arange(len(scores))
    return rows[np.isfinite(scores[rows])]


class SqliteVecIndex(MatrixIndex):
    """The same interface, with candidates found by sqlite-vec's exact KNN (cosine distance)."""

    def __init__(self, window_ids: np.ndarray, media_ids: np.ndarray, matrix: np.ndarray):
        super().__init__(window_ids, media_ids, matrix)
        self.conn = sqlitevec.connect()
        dim = self.matrix.shape[1]
        self.conn.execute(f"CREATE VIRTUAL TABLE vec USING vec0(embedding float[{dim}] distance_metric=cosine)")
        # rowid = row + 1: vec0 rowids start at 1.
        self.conn.executemany("INSERT INTO vec(rowid, embedding) VALUES (?, ?)",
                              ((i + 1, row.tobytes()) for i, row in enumerate(self.matrix)))

    def _knn(self, query: np.ndarray, k: int) -> np.ndarray:
        rows = self.conn.execute("SELECT rowid FROM vec WHERE embedding MATCH ? AND k = ?",
                                 (query.astype(np.float32).tobytes(), min(k, VEC_MAX_K))).fetchall()
        return np.asarray([r[0] - 1 for r in rows], dtype=np.int64)

    def top(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
            per_file: bool = False) -> list[tuple[int, float]]:
        """Ask sqlite-vec for more neighbours until k pass the filters (or every row was seen)."""
        if len(self) == 0 or k <= 0:
            return []
        want = k
        while True:
            rows = self._knn(query, want)
            if allowed is not None:
                rows = rows[allowed[rows]]
            if per_file:
                rows = rows[np.unique(self.media_ids[rows], return_index=True)[1]]
            exhausted = want >= len(self)
            if len(rows) >= k or exhausted or want >= VEC_MAX_K:
                break
            want = min(want * 4, len(self))
        if len(rows) < k and not exhausted:
            # Past sqlite-vec's k limit: finish with the matrix so the answer stays exact.
            log.debug("sqlite-vec: k limit reached, finishing with the matrix scan")
            return super().top(query, k, allowed, per_file)
        return self._finish(query, rows, k)


def build_index(backend: str, window_ids: np.ndarray, media_ids: np.ndarray, matrix: np.ndarray) -> MatrixIndex:
    if backend == "numpy":
        return MatrixIndex(window_ids, media_ids, matrix)
    if backend == "sqlite-vec":
        return SqliteVecIndex(window_ids, media_ids, matrix)
    raise ValueError(f"unknown search backend {backend!r}; choose one of {', '.join(BACKENDS)}")
