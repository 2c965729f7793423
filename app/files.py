"""Which files the app may read and serve, and which uploads it accepts.

The app serves two kinds of files: the media files of its catalog and its own temporary files
(clips cut for the player, gradio's cache of uploads and images). `FileGuard` decides, for the
callbacks before they open a file and for the HTTP file route (app/server.py).

A catalogued file is looked up by path, never by folder: what lies beside a media file (its
folder's other files, the folder of a file that failed to index, the rest of a folder reached
through a link) is not served. The lookup starts from the real path (links and `..` resolved) and
checks that the file found is the one indexed (size and modification time), so `lib/linked/../x`
or a link swapped in after indexing cannot reach another file. Hidden files (a name starting with
a dot) are never served, catalogued or not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from catalog.paths import is_under
from catalog.store import Catalog
from vlsa.media import MediaError, MediaInfo, probe

MAX_UPLOAD_BYTES = 25 * 2**20  # a query sound: a minute of 16-bit stereo wav is 10 MB
MAX_UPLOAD_SECONDS = 60.0  # the search listens to the first 30 s; longer uploads are a mistake


class FileRefused(gr.Error):
    """A path that is neither a catalogued media file nor one of the app's own (shown to the user)."""


class UploadRejected(gr.Error):
    """An upload that is not a usable query sound: not audio, too long or too large."""


def real_path(path: str | os.PathLike) -> str:
    """`path` with links and `..` resolved: what the guard compares."""
    return os.path.realpath(os.fspath(path))


def is_hidden(path: str) -> bool:
    return os.path.basename(path).startswith(".")


@dataclass
class FileGuard:
    """The catalog's indexed files (by real path) and the app's own folder, hidden files never."""

    catalog: Catalog
    workdir: str  # real path of the app's temporary folder (clips, gradio's cache)

    @classmethod
    def for_catalog(cls, catalog: Catalog, workdir: str | os.PathLike) -> FileGuard:
        return cls(catalog, real_path(workdir))

    def allows(self, path: str | os.PathLike) -> bool:
        """Whether the app may read and serve `path`. Reads the catalog: call it on the thread
        that opened the catalog (see catalog/store.py, Catalog)."""
        own = self.own(path)
        if own is not None:
            return own
        try:
            given, target = os.path.abspath(os.fspath(path)), real_path(path)
            if is_hidden(given) or is_hidden(target):
                return False
            found = os.stat(target)
        except (ValueError, OSError):  # a NUL byte in the name, a name too long, no such file
            return False
        # The catalog records the paths the indexer walked (absolute, links not resolved) with
        # their size and modification time: the real path itself, or the path as given if it
        # leads there, must be recorded, and the file found must be the one that was indexed
        # (as the indexer itself tells an unchanged file), not a link swapped in since.
        recorded = [self.catalog.indexed_stat(p) for p in {target, given} if real_path(p) == target]
        return (found.st_size, found.st_mtime_ns) in recorded

    def own(self, path: str | os.PathLike) -> bool | None:
        """`allows(path)` for a path in the app's own folder, answered without the catalog (so on
        any thread); None for any other path, which only `allows` on the catalog's thread decides."""
        try:
            given, target = os.path.abspath(os.fspath(path)), real_path(path)
        except (ValueError, OSError):
            return False
        if not is_under(target, self.workdir):
            return None
        inside = os.path.relpath(target, self.workdir).split(os.sep)
        return not is_hidden(given) and not any(part.startswith(".") for part in inside)

    def check(self, path: str | os.PathLike) -> str:
        """`path` if allowed, else FileRefused. The path is returned as given (not resolved), so
        error messages and file names stay the ones the user knows."""
        if not self.allows(path):
            raise FileRefused(f"Refused: {Path(path).name} is not a catalogued media file, or it changed since "
                              "it was indexed (run `vlsa index` again).")
        return os.fspath(path)


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
