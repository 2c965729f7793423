"""The SQLite connection under a catalog (catalog/store.py): opening the file read-write or
read-only, telling a read-only file from a damaged one, and sqlite_utils imported without pandas.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import urllib.parse
from pathlib import Path


def _import_sqlite_utils_without_pandas():
    """sqlite_utils imports pandas whenever it is installed (gradio brings it), for DataFrame
    values the catalog never stores: 0.4 s of every `vlsa search` (docs/CATALOG.md). It is
    imported with pandas hidden, unless pandas is loaded already; later imports of pandas work."""
    hide = "pandas" not in sys.modules
    if hide:
        sys.modules["pandas"] = None  # makes `import pandas` raise ImportError, which sqlite_utils expects
    try:
        import sqlite_utils
    finally:
        if hide:
            del sys.modules["pandas"]
    return sqlite_utils


Database = _import_sqlite_utils_without_pandas().Database

BUSY_TIMEOUT_MS = 10_000  # a reader waits this long for the indexer's write lock instead of failing


def connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
    """A connection to the catalog file at `path`: read-write, or read-only without leaving a
    -shm or -wal file where none may be made (see `unchangeable`)."""
    # The stdlib sqlite3 on purpose: the file must stay readable and writable wherever extensions
    # cannot load, so nothing in it needs one (the sqlite-vec index lives in memory, see search.py).
    # sqlite3's thread check stays on: it enforces the threading rule (see Catalog).
    def open_db(target: str, uri: bool = False) -> sqlite3.Connection:
        conn = sqlite3.connect(target, uri=uri, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return conn

    if not read_only:
        return open_db(str(path))
    uri = "file:" + urllib.parse.quote(os.fsencode(path.absolute()))
    if unchangeable(path):  # read as is: SQLite would leave -shm and -wal files, as read-only, beside it
        return open_db(uri + "?mode=ro&immutable=1", uri=True)
    conn = open_db(uri + "?mode=ro", uri=True)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        # A reader of a WAL database needs the -shm file beside it; where that cannot be made (a
        # read-only mount, a full disk) no indexer can be writing either, so the file is read as
        # immutable (no locks, no -shm).
        conn.close()
        return open_db(uri + "?mode=ro&immutable=1", uri=True)


def unchangeable(path: Path) -> bool:
    """Whether no one but root may write the catalog (no write bit in its mode: no indexer can be
    changing it) and no WAL file beside it holds commits not yet in it: a reader then needs
    nothing but the file itself."""
    try:
        return path.stat().st_mode & 0o222 == 0 and not Path(f"{path}-wal").exists()
    except OSError:
        return False


def is_read_only_error(error: sqlite3.Error) -> bool:
    """SQLite's "attempt to write a readonly database" (a file, folder or mount this process may
    not write), whichever extended code it comes with."""
    return getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_READONLY
