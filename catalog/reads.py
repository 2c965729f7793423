"""Many rows of a catalog read at once: the candidates of an approximate query, on several threads.

A query through the approximate index (ann.py) rescores its 40 candidates with their float32
vectors, 40 primary-key lookups scattered over a file of many GB. In the page cache they take
under a millisecond; from disk, one after another, each waits for its own random read, and a
cold query cost 19-40 ms at 10M windows (docs/CATALOG.md). Split over READ_THREADS threads, each
with its own read-only connection (SQLite releases the GIL while it reads), the reads overlap
and the disk serves them together.
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from catalog.store import Catalog

READ_THREADS = 8  # lookups in flight at once: a cold query's 40 become 8 rounds of 5


class ParallelReads:
    """Catalog.load_vectors(window_ids=...) split over threads, each on its own connection."""

    def __init__(self, path: Path, threads: int = READ_THREADS):
        self.path, self.threads = path, threads
        self._local = threading.local()  # each thread's own read-only Catalog (the threading rule)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="vlsa-reads")
        # Its threads end, closing their connections, when this object is dropped.
        weakref.finalize(self, self._pool.shutdown, wait=False)

    def _catalog(self) -> Catalog:
        catalog = getattr(self._local, "catalog", None)
        if catalog is None:
            catalog = self._local.catalog = Catalog(self.path, read_only=True)
        return catalog

    def load_vectors(self, modality: str, window_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(window_ids, media_ids, vectors (n, E)) of those of `window_ids` that exist, in no
        particular order. By id within each thread's share: neighbours share pages."""
        parts = np.array_split(np.sort(np.asarray(window_ids, np.int64)), max(1, min(self.threads, len(window_ids))))
        read = lambda part: self._catalog().load_vectors(modality, window_ids=part)  # noqa: E731
        found = list(self._pool.map(read, parts))
        return tuple(np.concatenate([f[i] for f in found]) for i in range(3))
