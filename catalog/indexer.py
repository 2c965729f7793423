"""Index a media library into a catalog: scan, cut into windows, decode, embed, store.

    indexer = Indexer(catalog, model)                 # window and stride from the model's clip
    report = indexer.run(["~/Videos"])                # incremental: unchanged files are skipped

    Indexer(catalog, model, workers=4).run(roots)     # decoding in 4 loader worker processes

Files are decoded as streams of windows (in loader worker processes with `workers`, see
catalog/decode.py) while the main process embeds; windows from several files share embedding
batches (a library of one-second sounds would otherwise run the model on batches of one). After
each batch, the files whose every window is embedded are written, in scan order, in one
transaction: a file is stored whole or not at all, and a rerun after a crash picks up at the
first file not written, assigning the same ids an uninterrupted run would. All writes happen in
the main process. catalog/distributed.py runs the same on each rank of a torchrun job.

Every batch goes through the model at the full batch size (a short batch is padded with zeros and
the padding's outputs dropped): a window's vector then does not depend on which windows happened
to share its batch, which would otherwise change the last bits of the float arithmetic.
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from catalog.decode import FilePiece, decode_loader
from catalog.paths import display_path, is_under
from catalog.scan import FileStat, ScanResult, scan
from catalog.store import BATCH_SIZE, Catalog, CatalogError, FileRecord, Settings
from catalog.windows import WindowData
from vlsa.api import VLSA
from vlsa.audio_tower import input_samples
from vlsa.vectors import TOWER_VECTORS


@dataclass
class IndexReport:
    indexed: int = 0  # files embedded this run
    unchanged: int = 0  # files skipped: same size and modification time as recorded
    removed: int = 0  # recorded files that are gone from the library
    windows: int = 0  # windows embedded this run
    media_seconds: float = 0.0  # seconds of media embedded this run
    wall_seconds: float = 0.0
    reused: int = 0  # of those indexed or failed: taken from an interrupted distributed run's parts
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, one-line reason), this run
    skipped: list[tuple[str, str]] = field(default_factory=list)  # scan: loops, broken links

    def add(self, record: FileRecord) -> None:
        """Count a file written this run."""
        if record.error:
            self.failed.append((record.path, record.error))
        else:
            self.indexed += 1
            self.windows += len(record.windows)
            self.media_seconds += max(e for _, e in record.windows)

    def to_dict(self) -> dict:
        return {"indexed": self.indexed, "unchanged": self.unchanged, "removed": self.removed,
                "failed": len(self.failed), "reused": self.reused, "windows": self.windows,
                "media_seconds": round(self.media_seconds, 3), "wall_seconds": round(self.wall_seconds, 3),
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
                 batch_size: int = BATCH_SIZE, checkpoint: str | None = None, progress: bool = False,
                 workers: int = 0):
        self.catalog, self.model = catalog, model.eval()
        self.window = float(window or model.config.clip_seconds)
        self.stride = float(stride or self.window)
        if not (0 < self.window < math.inf and 0 < self.stride < math.inf and batch_size >= 1):
            raise ValueError("window and stride must be finite and positive, the batch size at least 1")
        if workers < 0:
            raise ValueError("the number of decode workers cannot be negative")
        self.batch_size, self.checkpoint, self.progress, self.workers = batch_size, checkpoint, progress, workers
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
        report, todo = self.plan(roots, rebuild=rebuild, prune=prune)
        self.index_files(todo, report)
        record_tower_vectors(self.catalog, self.model)
        return report

    def plan(self, roots: Iterable[str], rebuild: bool = False,
             prune: bool = False) -> tuple[IndexReport, list[FileStat]]:
        """Bind the settings, scan, remove the vanished files: the report so far and the files to
        embed (new or changed, in scan order). Raises as `run` does."""
        report, roots = IndexReport(), list(roots)
        self._began = time.perf_counter()
        self.catalog.bind(self.settings(), rebuild=rebuild)
        found = scan(roots)
        report.skipped = found.skipped
        known = self.catalog.known_files()
        report.removed = self.catalog.remove_media(vanished(known, found, roots, prune))
        lacking = self._lacking_tower_vectors()
        todo = [f for f in found.files if known.get(f.path) != (f.size, f.mtime_ns) or f.path in lacking]
        report.unchanged = len(found.files) - len(todo)
        return report, todo

    def _lacking_tower_vectors(self) -> set[str]:
        """With an audio tower, the catalogued files whose sound has no tower vector yet (indexed
        before those were stored): embedded again, so that search by sound can use them."""
        if not self.model.has_audio_tower or TOWER_VECTORS in self.catalog.sound_modalities():
            return set()
        return self.catalog.lacking_tower_vectors()

    def index_files(self, files: Sequence[FileStat], report: IndexReport) -> None:
        """Embed `files` and write them into the catalog in their order; counted into `report`."""
        jobs = [_Job(FileRecord(f.path, f.size, f.mtime_ns, dev=f.dev, ino=f.ino)) for f in files]
        self._pending = deque(jobs)
        workers = min(self.workers, len(files))  # no processes started for a run with nothing to decode
        loader = decode_loader(files, self.model.config, self.window, self.stride, self.batch_size, workers)
        if jobs:
            self._warm_up()
        with tqdm(total=len(jobs), unit="file", disable=not (self.progress and jobs), dynamic_ncols=True) as bar:
            for piece in loader:
                self._take(jobs[piece.position], piece, report, bar)
            self._flush(report, bar, final=True)
        report.wall_seconds = time.perf_counter() - self._began

    def _take(self, job: _Job, piece: FilePiece, report: IndexReport, bar: tqdm) -> None:
        """Queue a piece of a file's windows, running batches as the queue fills."""
        record = job.record
        if piece.tracks is not None:  # the file's first piece
            tracks = piece.tracks
            record.duration, record.has_video, record.has_audio = tracks.duration, tracks.has_video, tracks.has_audio
            record.windows = tracks.windows
        record.error = record.error or piece.error
        for k in range(len(piece)):
            index, frames, wave = piece.window(k)
            self._queue.append((job, WindowData(index, *record.windows[index], frames, wave)))
            job.waiting += 1
            if len(self._queue) >= self.batch_size:
                self._flush(report, bar)
        if piece.last:
            job.decoded = True
            self._write_ready(report, bar)

    # --- batches ---

    def _warm_up(self) -> None:
        """Run the model once on a batch of zeros per modality, before the progress bar starts.

        The first model call costs a second or more that no file does (memory, kernel choice);
        in the bar it was the first file's time, so a 30-second job showed `1/113 [00:07<13:49]`.
        A full batch: every batch runs at that size (see the module's docstring)."""
        cfg = self.model.config
        size = cfg.video.size
        self.model.embed_decoded("video", torch.zeros(1, cfg.video.frames, 3, size, size, dtype=torch.uint8),
                                 self.batch_size)
        self.model.embed_decoded("audio", torch.zeros(1, input_samples(cfg)), self.batch_size)

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
        # The joint vectors, and with an audio tower its own sound vectors (from the same run).
        for name, vectors in self.model.embed_decoded_all(modality, raw, self.batch_size).items():
            for (job, data), vector in zip(rows, vectors.numpy(), strict=True):
                record = job.record  # each file's vectors filled in row by row as the batches come back
                if name not in record.vectors:
                    record.vectors[name] = np.zeros((len(record.windows), len(vector)), np.float32)
                record.vectors[name][data.index] = vector

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
            report.add(job.record)
        # One update for the batch: tqdm draws the first update at once and skips the next ones
        # for a tenth of a second, so per-file updates showed 1 file done where a batch was.
        bar.update(len(ready))
        rate = report.media_seconds / max(1e-6, time.perf_counter() - self._began)
        bar.set_postfix_str(f"{rate:.1f} media-s/s, {len(report.failed)} failed", refresh=False)


def record_tower_vectors(catalog: Catalog, model: VLSA) -> None:
    """After a run with an audio tower: once every window with sound has its tower's own vector,
    mark the catalog so (searches by sound then use them). A run over some of the catalog's
    folders may leave older files elsewhere without one; they are embedded by a later run."""
    if (model.has_audio_tower and TOWER_VECTORS not in catalog.sound_modalities()
            and not catalog.lacking_tower_vectors()):
        catalog.mark_tower_vectors(model.config.audio.tower)


# What a re-index may remove without --prune (rsync --max-delete is the model): an unmounted drive
# or a moved folder looks like many files gone at once, a deleted file like one.
MAX_REMOVED_SHARE = 0.5  # more of the catalog's files than this gone in one run is refused
# A subfolder that held at least this many catalogued files and now holds no media is refused
# as emptied (an unmounted drive's mount point); a folder of one file emptied is a file deleted.
EMPTIED_FOLDER_MIN = 2


def vanished(known: Iterable[str], found: ScanResult, roots: list[str], prune: bool = False) -> list[str]:
    """The catalogued files under `roots` that the scan saw gone: not found, and not under a
    folder or link it could not read (a file that could not be looked for is kept).

    Raises CatalogError, unless `prune`, for a root that is missing, or that holds no media while
    files under it are catalogued (an unmounted drive's mount point); for a subfolder of a root
    likewise emptied; and for a run that would remove more than MAX_REMOVED_SHARE of the catalog.
    """
    known = list(known)
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
    if not prune:
        _refuse_mass_removal(gone, len(known), found, roots)
    return gone


def _refuse_mass_removal(gone: list[str], total: int, found: ScanResult, roots: list[str]) -> None:
    """CatalogError if `gone` empties a subfolder of a root or exceeds MAX_REMOVED_SHARE of the
    `total` catalogued files; the message says what would go."""
    emptied = emptied_folders(gone, found, roots)
    if emptied:
        folder, count = emptied[0]
        more = f" (and {len(emptied) - 1} more folders like it)" if len(emptied) > 1 else ""
        raise CatalogError(f"{display_path(folder)}: holds no media now, and its {count} catalogued files would be "
                           f"removed{more} (an unmounted drive looks like this); nothing was changed: pass --prune "
                           "to remove them from the catalog")
    if len(gone) >= EMPTIED_FOLDER_MIN and len(gone) > MAX_REMOVED_SHARE * total:
        raise CatalogError(f"this run would remove {len(gone)} of the catalog's {total} files (more than "
                           f"{MAX_REMOVED_SHARE:.0%} at once), e.g. {display_path(gone[0])}; nothing was changed: "
                           "pass --prune to remove them from the catalog")


def emptied_folders(gone: list[str], found: ScanResult, roots: list[str]) -> list[tuple[str, int]]:
    """(folder, files) for the topmost subfolders of `roots` (roots themselves are checked by
    `vanished`) that hold no media now and from which at least EMPTIED_FOLDER_MIN catalogued
    files are gone."""
    tops = [os.path.abspath(r) for r in roots]
    lost: dict[str, int] = {}
    for path in gone:
        for folder in _folders_below_root(path, tops):
            lost[folder] = lost.get(folder, 0) + 1
    candidates = {f for f, n in lost.items() if n >= EMPTIED_FOLDER_MIN}
    for f in found.files if candidates else ():  # a candidate with any media under it now was not emptied
        folder, parent = os.path.dirname(f.path), None
        while folder != parent:  # up to "/": string operations only, this runs for every file found
            candidates.discard(folder)
            folder, parent = os.path.dirname(folder), folder
    topmost = [f for f in sorted(candidates) if not any(f != o and is_under(f, o) for o in candidates)]
    return [(f, lost[f]) for f in topmost]


def _folders_below_root(path: str, roots: list[str]) -> list[str]:
    """The folders holding `path`, from its own up to (not including) the root it is under."""
    root = max((r for r in roots if is_under(path, r)), key=len, default=None)
    folders, folder = [], os.path.dirname(path)
    while root is not None and folder != root and is_under(folder, root):
        folders.append(folder)
        folder = os.path.dirname(folder)
    return folders
