"""Which files the app may read and serve, and which uploads it accepts.

The app serves two kinds of files: the media of the indexed library and its own temporary files
(clips cut for the player, gradio's cache of uploads and images). `FileGuard` is that allow-list,
enforced twice: at launch through gradio's `allowed_paths` / `blocked_paths` (what the /file=
route serves) and in the callbacks before a library path is opened for a player or a heatmap.

Paths are compared by their real path (symbolic links and `..` resolved), so a link inside the
library that points elsewhere, `root/../secret` and absolute paths outside the roots are refused.

Library roots: the catalog does not record the folders it was indexed from, so the roots are the
folders that directly hold an indexed file (their real paths, nested ones folded into their
ancestor). That is never wider than the library: a sibling folder of the library that holds no
indexed file is not served, nor is the parent of two libraries.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from catalog.store import Catalog
from vlsa.media import MediaError, MediaInfo, probe

MAX_UPLOAD_BYTES = 25 * 2**20  # a query sound: a minute of 16-bit stereo wav is 10 MB
MAX_UPLOAD_SECONDS = 60.0  # the search listens to the first 30 s; longer uploads are a mistake


class FileRefused(gr.Error):
    """A path outside the library roots and the app's temporary folder (shown to the user)."""


class UploadRejected(gr.Error):
    """An upload that is not a usable query sound: not audio, too long or too large."""


def real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.fspath(path))


def is_inside(path: str, folder: str) -> bool:
    """Whether real path `path` is `folder` or under it (both already real)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def fold(folders: Iterable[str]) -> list[str]:
    """Sorted real folders with every folder inside another one left out."""
    kept: list[str] = []
    for folder in sorted({real(f) for f in folders}):
        if not any(is_inside(folder, k) for k in kept):
            kept.append(folder)
    return kept


def library_roots(catalog: Catalog) -> list[str]:
    """The real folders that directly hold a file of the catalog (indexed or failed), folded."""
    return fold(os.path.dirname(m.path) for m in catalog.media())


@dataclass
class FileGuard:
    """The allow-list: library roots and the app's own folder; some files inside them blocked."""

    roots: list[str]  # real paths
    workdir: str  # the app's temporary folder (clips, gradio's cache)
    blocked: list[str] = field(default_factory=list)  # real paths never served (the catalog file)

    @classmethod
    def for_catalog(cls, catalog: Catalog, workdir: str | os.PathLike,
                    extra_blocked: Sequence[str | os.PathLike] = ()) -> FileGuard:
        """Roots from the catalog; the catalog file, its WAL files and `extra_blocked` blocked."""
        db = real(catalog.path)
        blocked = [db, db + "-wal", db + "-shm", *(real(p) for p in extra_blocked)]
        return cls(roots=library_roots(catalog), workdir=real(workdir), blocked=blocked)

    def allows(self, path: str | os.PathLike) -> bool:
        """Whether the app may read and serve `path`."""
        target = real(path)
        if any(is_inside(target, b) for b in self.blocked):
            return False
        return any(is_inside(target, folder) for folder in [*self.roots, self.workdir])

    def check(self, path: str | os.PathLike) -> str:
        """`path` if allowed, else FileRefused. The path is returned as given (not resolved), so
        error messages and file names stay the ones the user knows."""
        if not self.allows(path):
            raise FileRefused(f"Refused: {Path(path).name} is outside the library.")
        return os.fspath(path)

    def launch_paths(self) -> dict[str, list[str]]:
        """gradio launch() arguments that make its file route follow this allow-list."""
        return {"allowed_paths": [*self.roots, self.workdir], "blocked_paths": list(self.blocked)}


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = MAX_UPLOAD_BYTES
    max_seconds: float = MAX_UPLOAD_SECONDS


def check_upload(path: str | os.PathLike | None, limits: UploadLimits | None = None) -> MediaInfo:
    """The probed upload if it is a sound within the limits; otherwise UploadRejected, whose
    message says what is wrong in words a user can act on."""
    limits = limits or UploadLimits()
    if path is None:
        raise UploadRejected("Upload a sound or record one first.")
    name = Path(path).name
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise UploadRejected(f"{name}: cannot read the upload ({e.strerror}).") from None
    if size > limits.max_bytes:
        raise UploadRejected(f"{name} is too large ({size / 2**20:.1f} MB; at most "
                             f"{limits.max_bytes / 2**20:.0f} MB).")
    try:
        info = probe(path)
    except MediaError:
        raise UploadRejected(f"{name} is not an audio file.") from None
    if not info.has_audio:  # FFmpeg opens some other files (text as "tty" video, images)
        raise UploadRejected(f"{name} is not an audio file (no sound track in it).")
    if info.duration > limits.max_seconds:
        raise UploadRejected(f"{name} is too long ({info.duration:.0f} s; at most {limits.max_seconds:.0f} s).")
    return info
