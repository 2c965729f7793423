"""Who may change a catalog while others use it: one indexer at a time, and no demo re-indexing
a catalog that another process serves.

    with indexing("library.db", "vlsa index"):   # CatalogBusy if another process indexes it
        ...                                       # (bind, scan, remove, embed, write)
    with serving("library.db", "vlsa app"):      # held while serving; any number of servers
        ...
    with not_served("library.db", "vlsa demo"):  # CatalogBusy if a process serves it
        ...

Two lock files beside the catalog, each locked with flock(2), which the OS drops when the
process ends however it ends (a kill -9 leaves no stale lock; forked children do not inherit it;
the files stay, empty of meaning):

    <db>.lock          indexers: exclusive. SQLite would let two indexers both run for an hour
                       and then fail one of them with "database is locked" at its first write.
    <db>.serve.lock    servers: shared. `vlsa demo`, which re-indexes (and may regenerate or
                       rebuild) its catalog on every start, takes it exclusive, so a second demo
                       on one folder refuses rather than change what the first one serves.

A plain `vlsa index` does not take the serving lock: indexing beside a running `vlsa app` is
how a served library is kept up to date (the app sees the changes at its next request).
`vlsa search` takes no lock: it only reads. Each holder writes "PID WHO" into the file, so a
refusal names the process that holds the lock.

A catalog in a read-only folder cannot be indexed (CatalogError saying so); it is served without
a lock, since nothing can index it there either.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from catalog.records import CatalogBusy, CatalogError, CatalogReadOnly

# The lock files this process holds open. A forked child (a decode worker) gets copies of them,
# which would keep the lock held after the indexer is killed, until the last worker noticed:
# each child closes its copies as it starts (the parent's lock is not touched by that).
_HELD: set[int] = set()


def _drop_inherited_locks() -> None:
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_inherited_locks)

INDEX_SUFFIX = ".lock"
SERVE_SUFFIX = ".serve.lock"
READ_ONLY_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM)


@contextlib.contextmanager
def indexing(db: str | os.PathLike, who: str) -> Iterator[None]:
    """Hold the catalog's indexing lock (exclusive) for the block."""
    with _locked(Path(f"{db}{INDEX_SUFFIX}"), exclusive=True, who=who, db=db, doing="indexing"):
        yield


@contextlib.contextmanager
def not_served(db: str | os.PathLike, who: str) -> Iterator[None]:
    """Hold the catalog's serving lock exclusively for the block: no process serves it meanwhile."""
    with _locked(Path(f"{db}{SERVE_SUFFIX}"), exclusive=True, who=who, db=db, doing="serving"):
        yield


@contextlib.contextmanager
def serving(db: str | os.PathLike, who: str) -> Iterator[None]:
    """Hold the catalog's serving lock (shared with other servers) for the block; CatalogBusy
    while a demo re-indexes it. Without a lock where none can be made (a read-only folder)."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(_locked(Path(f"{db}{SERVE_SUFFIX}"), exclusive=False, who=who, db=db,
                                        doing="re-indexing"))
        except CatalogReadOnly:
            pass  # no lock file can be made in a read-only folder: see the module's docstring
        yield


@contextlib.contextmanager
def _locked(file: Path, exclusive: bool, who: str, db: str | os.PathLike, doing: str) -> Iterator[None]:
    fd = _open(file, db)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            holders = ", ".join(_holders(file)) or "another process"
            raise CatalogBusy(f"{db}: {holders} is {doing} this catalog; wait for it to finish or stop it, "
                              "or use another catalog") from None
        _record(fd, who, exclusive)
        _HELD.add(fd)
        yield
    finally:
        _HELD.discard(fd)
        os.close(fd)  # drops the lock


def _open(file: Path, db: str | os.PathLike) -> int:
    try:
        return os.open(file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno not in READ_ONLY_ERRNOS:
            raise CatalogError(f"{file}: cannot make the catalog's lock file ({e.strerror})") from None
    try:  # another user's lock file: it can still be locked, but not written
        return os.open(file, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        raise CatalogReadOnly(db) from None


def _record(fd: int, who: str, exclusive: bool) -> None:
    """Write this process as a holder: alone under an exclusive lock, one line more under a
    shared one (the lines of dead holders are skipped when read)."""
    line = f"{os.getpid()} {who}\n".encode()
    try:
        if exclusive:
            os.ftruncate(fd, 0)
            os.pwrite(fd, line, 0)
        else:
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, line)
    except OSError:  # opened read-only: the lock holds, the name is not recorded
        pass


def _holders(file: Path) -> list[str]:
    """'pid 1234 (vlsa index)' for each live process the lock file names."""
    try:
        lines = file.read_text(errors="replace").splitlines()
    except OSError:
        return []
    named = []
    for line in lines:
        pid, _, who = line.partition(" ")
        if pid.isdigit() and _alive(int(pid)) and f"pid {pid} ({who})" not in named:
            named.append(f"pid {pid} ({who})")
    return named


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
