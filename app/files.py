"""Which files the app may read and serve, and which uploads it accepts.

The app serves two kinds of files: the media files of its catalog and its own temporary files
(clips cut for the player, gradio's cache of uploads and images). `FileGuard` decides, for the
callbacks before they decode a file and for the HTTP file route (app/server.py).

Open first, then check what was opened: a path checked and then opened again can be a link
swapped in between (a catalogued name flipped between the media and /etc/shadow served the
secret). So `open_file` opens the path once and every decision is about that open file: its
device, inode, size and modification time (`os.fstat`) against the catalog's record of the
file, and its own path (the one the kernel holds for it) for the hidden-file and own-folder rules.
Whoever reads the file then reads it through `OpenFile.pinned`, a name of that same open file.

A catalogued file is looked up by path, never by folder: what lies beside a media file (its
folder's other files, the folder of a file that failed to index, the rest of a folder reached
through a link) is not served. Hidden files (a name starting with a dot) are never served,
catalogued or not. A row of a catalog from before schema 2 has no device and inode: its file is
served only when the path recorded is the opened file's own path (no link on the way) and size
and time match; files reached through links are refused until `vlsa index --rebuild` records them.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from app.gates import UPLOAD_QUOTA_BYTES
from catalog.paths import is_under
from catalog.store import Catalog, Media
from vlsa.media import MediaError, MediaInfo, probe

MAX_UPLOAD_BYTES = 25 * 2**20  # a query sound: a minute of 16-bit stereo wav is 10 MB
MAX_UPLOAD_SECONDS = 60.0  # the search listens to the first 30 s; longer uploads are a mistake
GRADIO_CACHE = "gradio"  # gradio's cache (GRADIO_TEMP_DIR) within the app's folder: uploads land there
# Opened for reading only; O_NONBLOCK so a fifo named like media cannot hang the open (it has no
# effect on regular files, the only kind served).
OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
FD_FOLDER = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


class FileRefused(gr.Error):
    """A path that is neither a catalogued media file nor one of the app's own (shown to the user)."""


class UploadRejected(gr.Error):
    """An upload that is not a usable query sound: not audio, too long or too large."""


def real_path(path: str | os.PathLike) -> str:
    """`path` with links and `..` resolved."""
    return os.path.realpath(os.fspath(path))


def is_hidden(path: str) -> bool:
    return os.path.basename(path).startswith(".")


def refused(path: str | os.PathLike) -> FileRefused:
    return FileRefused(f"Refused: {Path(path).name} is not a catalogued media file, or it changed since "
                       "it was indexed (run `vlsa index` again).")


@dataclass
class OpenFile:
    """A regular file opened for reading, with what was checked about it."""

    fd: int
    path: str  # as asked for, made absolute (links not resolved)
    real: str  # the opened file's own path (links and `..` resolved)
    stat: os.stat_result  # of the open file (fstat), not of a path

    @property
    def pinned(self) -> str:
        """A name of this open file, not of a path: opening it (FFmpeg, FileResponse) reads the
        file that was checked even if the path now leads elsewhere. Valid until `close`."""
        return f"{FD_FOLDER}/{self.fd}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> OpenFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_file(path: str | os.PathLike) -> OpenFile:
    """`path` opened once, as a regular file that is not hidden; FileRefused otherwise (also
    for a name that cannot be opened: missing, unreadable, a NUL byte, too long)."""
    try:
        given = os.path.abspath(os.fspath(path))
        fd = os.open(given, OPEN_FLAGS)
    except (ValueError, OSError):
        raise refused(path) from None
    try:
        opened = OpenFile(fd, given, "", os.fstat(fd))
    except OSError:
        os.close(fd)  # not leaked when fstat fails
        raise refused(path) from None
    try:
        opened.real = _own_path(opened)
    except OSError:
        opened.close()
        raise refused(path) from None
    if not stat.S_ISREG(opened.stat.st_mode) or is_hidden(given) or is_hidden(opened.real):
        opened.close()
        raise refused(path)
    return opened


def _own_path(opened: OpenFile) -> str:
    """The path of the open file itself. Linux names it (/proc/self/fd); elsewhere the path as
    resolved now, accepted only if it leads to the very file that is open."""
    link = f"/proc/self/fd/{opened.fd}"
    if os.path.islink(link):
        return os.readlink(link)
    real = real_path(opened.path)
    now = os.stat(real)
    if (now.st_dev, now.st_ino) != (opened.stat.st_dev, opened.stat.st_ino):
        raise OSError(f"{opened.path} changed while it was opened")
    return real


def is_indexed(opened: OpenFile, recorded_path: str, record: tuple[int, int, int | None, int | None] | None) -> bool:
    """Whether the open file is the file the catalog recorded at `recorded_path`: (size, mtime_ns,
    dev, ino) as `Catalog.indexed_stat` returns them. A row without dev and ino (written before
    schema 2) must be the opened file's own path: no link on the way, which the inode would vouch for."""
    if record is None:
        return False
    size, mtime_ns, dev, ino = record
    st = opened.stat
    if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
        return False
    if dev is not None and ino is not None:
        return (st.st_dev, st.st_ino) == (dev, ino)
    return recorded_path == opened.real


def open_indexed(path: str, media: Media) -> OpenFile:
    """`path` opened if it is `media`'s file as its catalog row records it (no catalog read: any thread)."""
    opened = open_file(path)
    if not is_indexed(opened, media.path, (media.size, media.mtime_ns, media.dev, media.ino)):
        opened.close()
        raise refused(path)
    return opened


@dataclass
class FileGuard:
    """The catalog's indexed files and the app's own folder, hidden files never."""

    catalog: Catalog
    workdir: str  # real path of the app's temporary folder (clips, gradio's cache)

    @classmethod
    def for_catalog(cls, catalog: Catalog, workdir: str | os.PathLike) -> FileGuard:
        return cls(catalog, real_path(workdir))

    def open(self, path: str | os.PathLike) -> OpenFile:
        """`path` opened, if the app may read and serve the file that opened; else FileRefused.
        Reads the catalog: call it on the thread that opened the catalog (see catalog/store.py)."""
        opened = open_file(path)
        if not (self.own(opened) or self.indexed(opened)):
            opened.close()
            raise refused(path)
        return opened

    def own(self, opened: OpenFile) -> bool:
        """Whether the open file is one of the app's own: in its folder, in no hidden folder there.
        Answered without the catalog, so on any thread."""
        if not is_under(opened.real, self.workdir):
            return False
        inside = os.path.relpath(opened.real, self.workdir).split(os.sep)
        return not any(part.startswith(".") for part in inside)

    def indexed(self, opened: OpenFile) -> bool:
        """Whether the open file is a catalogued media file: the catalog records the paths the
        indexer walked (absolute, links not resolved), so the path as asked or the opened file's
        own path must be recorded, with this file's identity."""
        return any(is_indexed(opened, p, self.catalog.indexed_stat(p)) for p in {opened.path, opened.real})

    def allows(self, path: str | os.PathLike) -> bool:
        """Whether `open(path)` would succeed now (the file is opened and closed again)."""
        try:
            self.open(path).close()
            return True
        except FileRefused:
            return False

    def check(self, path: str | os.PathLike) -> str:
        """`path` if allowed, else FileRefused (as given, so messages name the file the user knows).
        Only for a yes or no: to read the file, `open` it and read `pinned`."""
        if not self.allows(path):
            raise refused(path)
        return os.fspath(path)


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = MAX_UPLOAD_BYTES
    max_seconds: float = MAX_UPLOAD_SECONDS
    quota_bytes: int = UPLOAD_QUOTA_BYTES  # all uploads kept at once (app/gates.py: UploadQuota)


def discard_upload(path: str | None, workdir: str | os.PathLike) -> None:
    """Delete an uploaded sound once searched: only a file in gradio's cache in the app's folder,
    never one elsewhere (an API client may name any path it knows)."""
    if path and is_under(real_path(path), real_path(os.path.join(workdir, GRADIO_CACHE))):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def check_upload(path: str | os.PathLike | None, limits: UploadLimits | None = None) -> MediaInfo:
    """The probed upload if it is a sound within the limits; otherwise UploadRejected, whose
    message says what is wrong in words a user can act on."""
    limits = limits or UploadLimits()
    if path is None:
        raise UploadRejected("Upload a sound or record one first.")
    name = Path(path).name
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise UploadRejected(f"{name} is gone: an uploaded sound is deleted once searched; upload it again.") from None
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
