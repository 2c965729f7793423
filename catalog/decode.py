"""Decode the files being indexed in DataLoader worker processes, while the model embeds.

    loader = decode_loader(files, config, window, stride, batch_size, workers=4)
    for piece in loader:            # FilePiece: up to batch_size decoded windows of one file
        ...

Worker k of n decodes files k, k + n, k + 2n, ... of the list, each as a stream of pieces of at
most `batch_size` windows, so a worker holds one piece of one file at a time and the loader's
prefetch bounds memory whatever the files' lengths (a three-hour file is never one item). Pieces
of different files interleave as the workers finish them; the indexer puts them back together by
`position` and writes whole files in list order. With workers=0 the main process decodes, one
file after another (the loader then is a plain loop).

A file that cannot be decoded comes back as a piece carrying the error (one line), never as an
exception: one bad file must not end a long run, and an exception in a worker would end it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from catalog.paths import display_path
from catalog.scan import FileStat
from catalog.store import VECTOR_DTYPE
from catalog.windows import WindowData, file_windows, iter_windows
from vlsa.config import VLSAConfig
from vlsa.media import MediaError, MediaInfo, probe

log = logging.getLogger(__name__)

# A file's vectors are held until the file is written whole (one transaction): a file that would
# need more (hours at a tiny stride, or headers claiming an absurd duration) fails instead.
MAX_VECTOR_BYTES = 2**30
PREFETCH_PIECES = 2  # pieces each worker decodes ahead: enough to hide a batch's embedding


@dataclass
class FileTracks:
    """What probing a file found: its length, its tracks and the windows it is cut into."""

    duration: float
    has_video: bool
    has_audio: bool
    windows: list[tuple[float, float]] = field(default_factory=list)  # empty if planning failed


@dataclass
class FilePiece:
    """Consecutive decoded windows of one file (the `position`-th of the list being indexed).

    The windows' frames and waves travel stacked, one tensor each: a worker hands a tensor to
    the main process through shared memory, a file descriptor apiece.
    """

    position: int
    tracks: FileTracks | None = None  # on a file's first piece
    first: int = 0  # index in the file of the first window here
    frames: torch.Tensor | None = None  # uint8 (n, T, 3, H, W); None without video (or windows)
    waves: torch.Tensor | None = None  # float32 (n, S); None without audio (or windows)
    last: bool = False  # no more pieces of this file follow
    error: str | None = None  # the file failed here (one line naming it); set on its last piece

    @classmethod
    def of(cls, position: int, windows: list[WindowData], **fields) -> FilePiece:
        """The piece holding `windows` (consecutive, of the file at `position`)."""
        return cls(position, first=windows[0].index if windows else 0, frames=_stack([w.frames for w in windows]),
                   waves=_stack([w.wave for w in windows]), **fields)

    def __len__(self) -> int:
        present = self.frames if self.frames is not None else self.waves
        return 0 if present is None else len(present)

    def window(self, k: int) -> tuple[int, torch.Tensor | None, torch.Tensor | None]:
        """(index in the file, frames, wave) of the k-th window here."""
        return (self.first + k, None if self.frames is None else self.frames[k],
                None if self.waves is None else self.waves[k])


def _stack(rows: list[torch.Tensor | None]) -> torch.Tensor | None:
    """One tensor of the rows; None for no rows or a track the file lacks (every row None)."""
    return torch.stack(rows) if rows and rows[0] is not None else None


def default_workers() -> int:
    """Decode workers for one indexing process: the cores it may use, less one for the model,
    shared among the processes torchrun starts on this machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, cores // ranks_here - 1)


class FileDecoder(IterableDataset):
    """The files' windows as FilePieces, each worker taking every n-th file (see the module doc)."""

    def __init__(self, files: Sequence[FileStat], config: VLSAConfig, window: float, stride: float,
                 piece_size: int):
        self.files, self.config, self.window, self.stride = list(files), config, window, stride
        self.piece_size = piece_size

    def __iter__(self) -> Iterator[FilePiece]:
        worker = get_worker_info()
        first, step = (0, 1) if worker is None else (worker.id, worker.num_workers)
        for position in range(first, len(self.files), step):
            yield from self._pieces(position)

    def _pieces(self, position: int) -> Iterator[FilePiece]:
        path = self.files[position].path
        tracks, windows, error = None, [], None
        try:
            info = probe(path)
            tracks = FileTracks(info.duration, info.has_video, info.has_audio)  # recorded even if it fails below
            tracks.windows = self._plan(path, info)
            for data in iter_windows(path, tracks.windows, self.config, self.window, info.has_video, info.has_audio):
                windows.append(data)
                if len(windows) == self.piece_size:
                    yield FilePiece.of(position, windows, tracks=tracks)
                    tracks, windows = None, []  # the tracks ride on a file's first piece only
        except (MediaError, OSError, ValueError, RuntimeError) as e:
            # MediaError is the expected kind; the others come from decoders failing in ways
            # vlsa.media does not name.
            if not isinstance(e, MediaError):
                log.debug("%s: unexpected decoding error", path, exc_info=True)
            error = one_line(e, path)
        yield FilePiece.of(position, windows, tracks=tracks, last=True, error=error)

    def _plan(self, path: str, info: MediaInfo) -> list[tuple[float, float]]:
        """The probed file's windows; MediaError for a file with nothing to embed or too much."""
        if not (info.has_video or info.has_audio):
            raise MediaError(f"{path}: no decodable video or audio stream")
        count = math.ceil(info.duration / self.stride) if math.isfinite(info.duration) else math.inf
        size = count * self.config.embed_dim * VECTOR_DTYPE.itemsize * (info.has_video + info.has_audio)
        if size > MAX_VECTOR_BYTES:
            raise MediaError(f"{path}: {count:g} windows {self.stride:g} s apart in {info.duration:g} s; "
                             f"their vectors would not fit in memory (use a longer --stride)")
        return file_windows(info, self.window, self.stride)


def decode_loader(files: Sequence[FileStat], config: VLSAConfig, window: float, stride: float, piece_size: int,
                  workers: int) -> DataLoader:
    """A loader of FilePieces over `files` (batch_size=None: each item is one piece, as is)."""
    # in_order=False: a piece is taken from whichever worker has one ready, so a worker on a long
    # file does not hold the others up; each worker's pieces still arrive in its own order.
    extra = {"prefetch_factor": PREFETCH_PIECES, "in_order": False} if workers > 0 else {}
    return DataLoader(FileDecoder(files, config, window, stride, piece_size), batch_size=None,
                      num_workers=workers, **extra)


def one_line(err: BaseException, path: str) -> str:
    """The error as one line that names the file (MediaError messages already do)."""
    text = display_path(" ".join(str(err).split()) or type(err).__name__)
    name = display_path(path)
    return text if text.startswith(name) else f"{name}: {text}"
