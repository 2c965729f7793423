"""Index a media library into a catalog: scan, cut into windows, decode, embed, store.

    indexer = Indexer(catalog, model)                 # window and stride from the model's clip
    report = indexer.run(["~/Videos"])                # incremental: unchanged files are skipped

Files are decoded one after another as streams of windows; windows from consecutive files share
embedding batches (a library of one-second sounds would otherwise run the model on batches of
one). After each batch, the files whose every window is embedded are written, in scan order, in
one transaction: a file is stored whole or not at all, and a rerun after a crash picks up at the
first file not written, assigning the same ids an uninterrupted run would.

Every batch goes through the model at the full batch size (a short batch is padded with zeros and
the padding's outputs dropped): a window's vector then does not depend on which windows happened
to share its batch, which would otherwise change the last bits of the float arithmetic.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from catalog.paths import display_path, is_under
from catalog.scan import FileStat, ScanResult, scan
from catalog.store import VECTOR_DTYPE, Catalog, CatalogError, FileRecord, Settings
from catalog.windows import WindowData, file_windows, iter_windows
from vlsa.api import VLSA
from vlsa.media import MediaError, probe

log = logging.getLogger(__name__)

BATCH_SIZE = 32  # windows per model call: near the CPU's best throughput for tiny, modest memory
# A file's vectors are held until the file is written whole (one transaction): a file that would
# need more (hours at a tiny stride, or headers claiming an absurd duration) fails instead.
MAX_VECTOR_BYTES = 2**30


@dataclass
class IndexReport:
    indexed: int = 0  # files embedded this run
    unchanged: int = 0  # files skipped: same size and modification time as recorded
    removed: int = 0  # recorded files that are gone from the library
    windows: int = 0  # windows embedded this run
    media_seconds: float = 0.0  # seconds of media embedded this run
    wall_seconds: float = 0.0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, one-line reason), this run
    skipped: list[tuple[str, str]] = field(default_factory=list)  # scan: loops, broken links

    def to_dict(self) -> dict:
        return {"indexed": self.indexed, "unchanged": self.unchanged, "removed": self.removed,
                "failed": len(self.failed), "windows": self.windows, "media_seconds": round(self.media_seconds, 3),
                "wall_seconds": round(self.wall_seconds, 3),
                "errors": [{"path": display_path(p), "error": e} for p, e in self.failed],
                "skipped": [{"path": display_path(p), "reason": r} for p, r in self.skipped]}


@dataclass
class _Job:
    """A file being indexed: its record fills in as its windows come back from the model."""

    record: FileRecord
    decoded: bool = False  # every window has been queued (or decoding failed)
    waiting: int = 0  # windows queued but not yet embedded

    @property
    def complete(self) -> bool:
        return self.decoded and (self.waiting == 0 or self.record.error is not None)


class Indexer:
    """Brings a catalog up to date with the files under some folders, using one model."""

    def __init__(self, catalog: Catalog, model: VLSA, window: float | None = None, stride: float | None = None,
                 batch_size: int = BATCH_SIZE, checkpoint: str | None = None, progress: bool = False):
        self.catalog, self.model = catalog, model.eval()
        self.window = float(window or model.config.clip_seconds)
        self.stride = float(stride or self.window)
        if not (0 < self.window < math.inf and 0 < self.stride < math.inf and batch_size >= 1):
            raise ValueError("window and stride must be finite and positive, the batch size at least 1")
        self.batch_size, self.checkpoint, self.progress = batch_size, checkpoint, progress
        self._queue: list[tuple[_Job, WindowData]] = []
        self._pending: deque[_Job] = deque()  # in scan order; written from the front when complete
        self._began = time.perf_counter()

    def settings(self) -> Settings:
        cfg = self.model.config
        return Settings(fingerprint=self.model.fingerprint(), checkpoint=self.checkpoint, preset=cfg.preset,
                        embed_dim=cfg.embed_dim, window=self.window, stride=self.stride)

    def run(self, roots: Iterable[str], rebuild: bool = False, prune: bool = False) -> IndexReport:
        """Index new and changed files under `roots`, drop vanished ones; returns what happened.

        A root that is missing, or holds no media while the catalog holds files under it, is
        refused with a CatalogError (an unmounted drive looks like that) unless `prune`, which
        takes it as emptied for good.
        """
        report, roots = IndexReport(), list(roots)
        self._began = time.perf_counter()
        self.catalog.bind(self.settings(), rebuild=rebuild)
        found = scan(roots)
        report.skipped = found.skipped
        known = self.catalog.known_files()
        report.removed = self.catalog.remove_media(vanished(known, found, roots, prune))
        todo = [f for f in found.files if known.get(f.path) != (f.size, f.mtime_ns)]
        report.unchanged = len(found.files) - len(todo)
        with tqdm(total=len(todo), unit="file", disable=not (self.progress and todo), dynamic_ncols=True) as bar:
            for stat in todo:
                self._index_file(stat, report, bar)
            self._flush(report, bar, final=True)
        report.wall_seconds = time.perf_counter() - self._began
        return report

    # --- one file ---

    def _index_file(self, stat: FileStat, report: IndexReport, bar: tqdm) -> None:
        """Queue the windows of one file, running batches as the queue fills; record a failure."""
        job = _Job(FileRecord(stat.path, stat.size, stat.mtime_ns))
        self._pending.append(job)
        windows = self._decode(job.record)
        while True:
            # Only errors from decoding this file are caught here; one from a batch (the model,
            # the store) concerns other files too and ends the run.
            try:
                data = next(windows)
            except StopIteration:
                break
            except (MediaError, OSError, ValueError, RuntimeError) as e:
                # One bad file must not end a long run; MediaError is the expected kind, the
                # others come from decoders failing in ways vlsa.media does not name.
                if not isinstance(e, MediaError):
                    log.debug("%s: unexpected decoding error", stat.path, exc_info=True)
                job.record.error = _one_line(e, stat.path)
                break
            self._queue.append((job, data))
            job.waiting += 1
            if len(self._queue) >= self.batch_size:
                self._flush(report, bar)
        job.decoded = True
        self._write_ready(report, bar)

    def _decode(self, record: FileRecord) -> Iterator[WindowData]:
        """Probe the file, plan its windows (filling in `record`) and decode them one by one."""
        info = probe(record.path)
        record.duration, record.has_video, record.has_audio = info.duration, info.has_video, info.has_audio
        if not (info.has_video or info.has_audio):
            raise MediaError(f"{record.path}: no decodable video or audio stream")
        count = math.ceil(info.duration / self.stride) if math.isfinite(info.duration) else math.inf
        size = count * self.model.config.embed_dim * VECTOR_DTYPE.itemsize * (info.has_video + info.has_audio)
        if size > MAX_VECTOR_BYTES:
            raise MediaError(f"{record.path}: {count:g} windows {self.stride:g} s apart in {info.duration:g} s; "
                             f"their vectors would not fit in memory (use a longer --stride)")
        record.windows = file_windows(info, self.window, self.stride)
        dim = self.model.config.embed_dim
        for modality, present in (("video", info.has_video), ("audio", info.has_audio)):
            if present:  # filled in row by row as the batches come back
                record.vectors[modality] = np.zeros((len(record.windows), dim), np.float32)
        yield from iter_windows(record.path, record.windows, self.model.config, self.window,
                                info.has_video, info.has_audio)

    # --- batches ---

    def _flush(self, report: IndexReport, bar: tqdm, final: bool = False) -> None:
        """Embed the queued windows, then write the files that are now complete."""
        if self._queue:
            batch, self._queue = self._queue, []
            self._embed(batch, "video", lambda d: d.frames)
            self._embed(batch, "audio", lambda d: d.wave)
            for job, _ in batch:
                job.waiting -= 1
        self._write_ready(report, bar, force=final)

    def _embed(self, batch: list[tuple[_Job, WindowData]], modality: str, get) -> None:
        rows = [(job, data) for job, data in batch if get(data) is not None]
        if not rows:
            return
        raw = torch.stack([get(data) for _, data in rows])
        vectors = self.model.embed_decoded(modality, raw, self.batch_size).numpy()
        for (job, data), vector in zip(rows, vectors, strict=True):
            job.record.vectors[modality][data.index] = vector

    def _write_ready(self, report: IndexReport, bar: tqdm, force: bool = False) -> None:
        """Write the complete files at the front of the pending queue in one transaction.

        Failed files alone are held back until a batch's worth piles up (or the run ends), so a
        folder of broken files does not cost a commit each.
        """
        ready: list[_Job] = []
        while self._pending and self._pending[0].complete:
            ready.append(self._pending.popleft())
        if not ready:
            return
        if not force and all(j.record.error for j in ready) and len(ready) < self.batch_size:
            self._pending.extendleft(reversed(ready))
            return
        self.catalog.write_files([j.record for j in ready])
        for job in ready:
            self._count(job, report, bar)

    def _count(self, job: _Job, report: IndexReport, bar: tqdm) -> None:
        record = job.record
        if record.error:
            report.failed.append((record.path, record.error))
        else:
            report.indexed += 1
            report.windows += len(record.windows)
            report.media_seconds += max(e for _, e in record.windows)
        bar.update(1)
        rate = report.media_seconds / max(1e-6, time.perf_counter() - self._began)
        bar.set_postfix_str(f"{rate:.1f} media-s/s, {len(report.failed)} failed", refresh=False)


def vanished(known: Iterable[str], found: ScanResult, roots: list[str], prune: bool = False) -> list[str]:
    """The catalogued files under `roots` that the scan saw gone: not found, and not under a
    folder or link it could not read (a file that could not be looked for is kept).

    Raises CatalogError for a root that is missing, or that holds no media while files under it
    are catalogued (an unmounted drive's mount point), unless `prune`.
    """
    present = {f.path for f in found.files}
    gone = [p for p in known if p not in present and any(is_under(p, r) for r in roots)
            and not any(is_under(p, u) for u in found.unread)]
    for root in roots:
        if prune or any(is_under(f.path, root) for f in found.files):
            continue
        name, lost = display_path(os.path.abspath(root)), sum(is_under(p, root) for p in gone)
        exists = os.path.exists(root)
        if not exists and not lost:
            raise CatalogError(f"{name}: no such file or folder")
        if lost:
            raise CatalogError(f"{name}: {'no media files' if exists else 'missing'}, and {lost} catalogued files "
                               "are under it (an unmounted drive looks like this); nothing was changed: pass "
                               "--prune to remove them from the catalog")
    return gone


def _one_line(err: BaseException, path: str) -> str:
    """The error as one line that names the file (MediaError messages already do)."""
    text = display_path(" ".join(str(err).split()) or type(err).__name__)
    name = display_path(path)
    return text if text.startswith(name) else f"{name}: {text}"
