"""Load sqlite-vec, the optional extension behind `vlsa search --backend sqlite-vec`.

One probe for the catalog's search backend and `vlsa doctor`'s report, so the two never disagree
on whether it loads. The stdlib sqlite3 here cannot load extensions; sqlean's sqlite3 can.
"""

from __future__ import annotations


class VecUnavailable(RuntimeError):
    """sqlite-vec cannot be used here; the message says why in one line."""


def connect():
    """An in-memory sqlean connection with sqlite-vec loaded, or VecUnavailable."""
    try:
        import sqlean
        import sqlite_vec
    except ImportError as e:
        raise VecUnavailable(f"sqlite-vec backend needs sqlean.py and sqlite-vec ({e})") from None
    try:
        conn = sqlean.connect(":memory:")
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        return conn
    except (AttributeError, OSError, sqlean.Error) as e:
        raise VecUnavailable(f"sqlite-vec does not load here ({e})") from None


def available() -> bool:
    """Whether sqlite-vec loads here."""
    try:
        connect().close()
        return True
    except VecUnavailable:
        return False
