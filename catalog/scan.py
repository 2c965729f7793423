"""Find the media files of a library: a recursive walk with an extension allow-list.

Hidden files and folders (a leading dot, which covers .git), node_modules and similar tool
folders are skipped. Symbolic links are followed, but every folder and file is visited once,
keyed by (device, inode): a link back to an ancestor, a link loop or a second link to the same
file cannot make the walk run forever or index a file twice. Paths come out absolute, not
resolved, in sorted order, so two scans of the same tree agree.

What could not be read (a folder that cannot be listed, a link to a drive that is gone) is
reported, and listed in `unread`: the indexer keeps what it catalogued there, since a file that
could not be looked for has not been seen gone.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from vlsa.media import MEDIA_EXTENSIONS

log = logging.getLogger(__name__)

# Folders that hold tool state, thumbnails or dependencies, never a library's own media.
EXCLUDED_FOLDERS = frozenset({"node_modules", "__pycache__", "@eaDir", "$RECYCLE.BIN", "System Volume Information"})


@dataclass(frozen=True)
class FileStat:
    path: str  # absolute; may hold surrogate escapes (a name that is not UTF-8)
    size: int
    mtime_ns: int
    dev: int | None = None  # st_dev, st_ino: which file it is (the app checks what it opens against them)
    ino: int | None = None


@dataclass
class ScanResult:
    files: list[FileStat] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, one-line reason)
    unread: list[str] = field(default_factory=list)  # folders or links whose contents are unknown


def is_media(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in MEDIA_EXTENSIONS


def _excluded(name: str) -> bool:
    return name.startswith(".") or name in EXCLUDED_FOLDERS


def _reason(err: OSError, path: str) -> str:
    if err.errno == errno.ELOOP:
        return "symbolic link loop"
    if err.errno == errno.ENOENT:
        return "broken symbolic link" if os.path.islink(path) else "missing"
    return (err.strerror or str(err)).lower()


def _unreadable(result: ScanResult, path: str, err: OSError, report: bool = True) -> None:
    result.unread.append(path)
    if report:
        result.skipped.append((path, _reason(err, path)))


def scan(roots: Iterable[str | os.PathLike]) -> ScanResult:
    """The media files under `roots` (folders or single files), sorted by path."""
    result, seen = ScanResult(), set()
    for root in roots:
        root = os.path.abspath(os.fspath(root))
        try:
            st = os.stat(root)
        except OSError as e:
            result.skipped.append((root, _reason(e, root)))  # a missing root: the indexer decides
            continue
        if os.path.isdir(root):
            _walk(root, result, seen)
        elif (st.st_dev, st.st_ino) not in seen:  # a file named on the command line: taken as is
            seen.add((st.st_dev, st.st_ino))
            result.files.append(FileStat(root, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino))
    result.files.sort(key=lambda f: os.fsencode(f.path))
    return result


def _walk(top: str, result: ScanResult, seen: set[tuple[int, int]]) -> None:
    """Depth-first over folders, iteratively (deep trees cannot overflow the stack)."""
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                log.debug("%s: already visited (a link to a folder seen before)", folder)
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: os.fsencode(e.name))
        except OSError as e:
            _unreadable(result, folder, e)
            continue
        for entry in reversed(entries):  # reversed onto the stack: visited in name order
            _visit(entry, stack, result, seen)


def _visit(entry: os.DirEntry, stack: list[str], result: ScanResult, seen: set[tuple[int, int]]) -> None:
    if _excluded(entry.name):
        return
    try:
        st = entry.stat()  # follows links: a loop or a dangling link raises here
    except OSError as e:  # it may be a folder: what was catalogued under it stays
        _unreadable(result, entry.path, e, report=entry.is_symlink() or is_media(entry.name))
        return
    if stat.S_ISDIR(st.st_mode):
        stack.append(entry.path)
        return
    if not is_media(entry.name):
        return
    if not stat.S_ISREG(st.st_mode):  # a fifo or device named like media: reading it could block
        result.skipped.append((entry.path, "not a regular file"))
        return
    if (st.st_dev, st.st_ino) in seen:  # a second link to a file already listed
        return
    seen.add((st.st_dev, st.st_ino))
    result.files.append(FileStat(entry.path, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino))
