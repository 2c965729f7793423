"""The catalog store: one SQLite file, written through sqlite-utils.

    catalog = Catalog("library.db")                   # creates or migrates the schema
    catalog.media()                                   # every file, indexed or failed
    catalog.windows(media_id)                         # its time windows
    catalog.embedding(window_id, "audio")             # float32 (E,) or None

Tables (schema version 2):
    meta(key, value)                      settings the vectors depend on, the schema version and
                                          a generation counter bumped by every write
    media(id, path, size, mtime_ns, duration, has_video, has_audio, status, error, indexed_at,
          dev, ino)                       dev, ino: the file's identity when read (NULL before v2)
    windows(id, media_id, start, end)     seconds from the start of the file
    embeddings(window_id, modality, vector)   modality 'video' | 'audio' | 'audio_tower' (a tower
                                          checkpoint's own sound vectors); float32 little-endian

Paths are stored as the file system's own bytes (BLOB), so a name that is not UTF-8 survives the
round trip; the API hands them out as `str` decoded like `os.fsdecode` (surrogateescape), which
opens the same file, and `display_path` shows them with replacement characters.

A file's rows change only inside one transaction that also marks it done, so a process killed at
any moment leaves each file either as it was or completely replaced, never half written. The
database runs in WAL mode, so the app can read while the indexer writes. Searching opens it
read-only (`Catalog(path, read_only=True)`); only the indexer creates or migrates a catalog.

The errors and records it hands out (CatalogError, Settings, Media, Window, FileRecord) are
defined in catalog/records.py and importable from here too.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from catalog.connection import BUSY_TIMEOUT_MS, Database, connect, is_read_only_error
from catalog.paths import is_under
from catalog.records import (
    CatalogError,
    CatalogReadOnly,
    CheckpointMismatch,
    FileRecord,
    Media,
    NotFound,
    SchemaError,
    Settings,
    Window,
)
from catalog.schema import MIGRATIONS, SCHEMA_VERSION
from vlsa.vectors import TOWER_VECTORS

log = logging.getLogger(__name__)

WINDOW_MODALITIES = ("video", "audio")  # what a window has: a picture, a sound (the search kinds)
# The joint vectors, and a tower checkpoint's own sound vectors: no schema change (a modality is a
# string); meta TOWER_KEY says every window with sound has one (an older catalog: Indexer.plan).
STORED_MODALITIES = (*WINDOW_MODALITIES, TOWER_VECTORS)
TOWER_KEY = "tower_vectors"
MAX_ID = 2**63 - 1  # SQLite's largest integer, so the largest row id
# SQLite's page cache a connection, in KiB. Its default (2 MB) is 125 of the 16 KB pages: one
# approximate query's 40 candidate vectors and the index pages that lead to them evicted each
# other, and their lookup took 0.85 ms p50 instead of 0.65 (300k windows, 512 dims).
CACHE_KIB = 65536
VECTOR_DTYPE = np.dtype("<f4")  # stored vectors: float32, little-endian whatever the machine
BATCH_SIZE = 32  # windows per model call (and at most per commit): near the CPU's best throughput for tiny
# A new catalog's page size. A vector row at 512 dims (2,060 B) fits once in SQLite's default
# 4 KB page, so at 4 KB a catalog is twice its vectors; 16 KB pages hold 7. SQLite fixes the size
# when the first table is made: an existing catalog keeps its own (a VACUUM would rewrite it).
PAGE_SIZE = 16384

# Meta keys that describe how the vectors were made: a catalog holds vectors of one kind only.
SETTING_KEYS = ("fingerprint", "checkpoint", "preset", "embed_dim", "window", "stride")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Catalog:
    """One catalog file: media files, their windows and one vector per window and modality.

    `read_only` (searching): an existing catalog is opened without write access, so nothing is
    created, migrated or written, and a read-only mount or a full disk do not matter; only the
    indexer (the default) creates or migrates.

    Threads: a catalog, and a SearchService over it, is used only on the thread that opened it
    (SQLite raises ProgrammingError on any other); nothing in catalog/ takes a lock. A program
    that serves several threads runs all its catalog work on one (the app: app/context.py).
    """

    def __init__(self, path: str | os.PathLike, create: bool = True, read_only: bool = False):
        self.path, self.read_only = Path(path), read_only
        if (read_only or not create) and not self.path.is_file():
            raise CatalogError(f"{self.path}: no catalog there (build one with `vlsa index`)")
        try:
            self.db = Database(connect(self.path, read_only))
            self.db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")  # reads the schema: after the read-only fallback
            if read_only:
                self._check_version()
                return
            if not self.db.table_names():  # a new file: before WAL and the first table fix the size
                self.db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            if self.db.journal_mode != "wal":
                self.db.enable_wal()
            # NORMAL is durable across a killed process in WAL mode (only a power cut can lose the
            # last commits) and spares an fsync per batch.
            self.db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
            self._check_writable()
        except sqlite3.DatabaseError as e:
            if is_read_only_error(e):
                raise CatalogReadOnly(self.path) from None
            raise SchemaError(f"{self.path}: not a VLSA catalog ({e})") from None

    def _check_writable(self) -> None:
        """A file opened for writing that cannot be written (its mode, a read-only mount) fails only
        at the first write, after the indexer's scan: take and give back the write lock now. A
        writer holding it at this moment is not waited for (the first write will wait)."""
        self.db.execute("PRAGMA busy_timeout = 0")
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("ROLLBACK")
        except sqlite3.OperationalError as e:
            if is_read_only_error(e):
                raise
        finally:
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_version(self) -> int:
        """The schema version; SchemaError for a file that is not a catalog this vlsa can read
        (read-only, also one that is older: only the indexer migrates)."""
        version = self.schema_version()
        if version == 0 and (self.read_only or set(self.db.table_names()) - {"meta"}):
            tables = ", ".join(sorted(self.db.table_names())) or "none, an empty file"
            raise SchemaError(f"{self.path}: not a VLSA catalog (tables: {tables})")
        if version > SCHEMA_VERSION:
            raise SchemaError(f"{self.path}: catalog schema {version} is newer than this vlsa "
                              f"understands ({SCHEMA_VERSION}); upgrade vlsa")
        if self.read_only and version < SCHEMA_VERSION:
            raise SchemaError(f"{self.path}: catalog schema {version} is older than this vlsa's "
                              f"({SCHEMA_VERSION}); run `vlsa index` on it to migrate it")
        return version

    def _migrate(self) -> None:
        version = self._check_version()
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.db.atomic():
                MIGRATIONS[target](self.db)
                self._set_meta({"schema_version": target})
            log.info("%s: catalog schema migrated to version %d", self.path, target)

    # --- meta ---

    def schema_version(self) -> int:
        if "meta" not in self.db.table_names():
            return 0
        return int(self.meta().get("schema_version", 0))

    def meta(self) -> dict[str, str]:
        return {row[0]: row[1] for row in self.db.execute("SELECT key, value FROM meta")}

    def _set_meta(self, values: dict[str, object]) -> None:
        rows = [{"key": k, "value": None if v is None else str(v)} for k, v in values.items()]
        self.db["meta"].upsert_all(rows, pk="key")

    def generation(self) -> int:
        """Bumped by every write: a cache of vectors is stale when this changed."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def max_window_id(self) -> int:
        """The highest window id ever handed out (ids are never reused); 0 before the first."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'max_window_id'").fetchone()
        return int(row[0]) if row else 0

    def _bump(self) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES ('generation', '1') ON CONFLICT(key) "
                        "DO UPDATE SET value = CAST(value AS INTEGER) + 1")

    @property
    def settings(self) -> Settings | None:
        """How the vectors were made; None for a catalog nothing was indexed into yet."""
        meta = self.meta()
        if "fingerprint" not in meta:
            return None
        return Settings(fingerprint=meta["fingerprint"], checkpoint=meta.get("checkpoint"),
                        preset=meta["preset"], embed_dim=int(meta["embed_dim"]),
                        window=float(meta["window"]), stride=float(meta["stride"]))

    def bind(self, settings: Settings, rebuild: bool = False) -> None:
        """Record the settings the indexer will use; refuse settings that would mix vectors.

        With `rebuild`, everything indexed with other settings is deleted first.
        """
        current = self.settings
        if current is not None and current.differences(settings):
            if not rebuild:
                raise CheckpointMismatch(_mismatch_message(self.path, current, settings))
            log.info("%s: rebuilding: %s changed", self.path, ", ".join(current.differences(settings)))
        if current == settings:
            return  # nothing to record: no write, so readers' caches stay valid
        with self.db.atomic():
            if current is not None and current.differences(settings):
                for table in ("embeddings", "windows", "media"):
                    self.db.execute(f"DELETE FROM {table}")
                self.db.execute("DELETE FROM meta WHERE key = ?", [TOWER_KEY])
            self._set_meta({k: getattr(settings, k) for k in SETTING_KEYS})
            self._bump()

    # --- writing (the indexer) ---

    def known_files(self) -> dict[str, tuple[int, int]]:
        """path -> (size, mtime_ns) of every recorded file, indexed or failed."""
        rows = self.db.execute("SELECT path, size, mtime_ns FROM media")
        return {os.fsdecode(path): (size, mtime) for path, size, mtime in rows}

    def file_record(self, path: str) -> FileRecord | None:
        """What `write_files` wrote for `path`, to write it into another catalog; None if unknown."""
        rows = list(self.db.query("SELECT * FROM media WHERE path = ?", [os.fsencode(path)]))
        if not rows:
            return None
        m = _media(rows[0])
        record = FileRecord(path, m.size, m.mtime_ns, m.duration, m.has_video, m.has_audio, m.error,
                            dev=m.dev, ino=m.ino)
        windows = self.windows(m.id)  # by start, as written
        record.windows = [(w.start, w.end) for w in windows]
        for modality in STORED_MODALITIES:
            if windows and self.embedding(windows[0].id, modality) is not None:
                record.vectors[modality] = np.stack([self.embedding(w.id, modality) for w in windows])
        return record

    # --- a tower checkpoint's own sound vectors ---

    def sound_modalities(self) -> tuple[str, ...]:
        """Of every window with sound: ("audio",), with TOWER_VECTORS once mark_tower_vectors."""
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [TOWER_KEY]).fetchone()
        return ("audio", TOWER_VECTORS) if row else ("audio",)

    def lacking_tower_vectors(self) -> set[str]:
        """Paths of the files with a window that has a joint sound vector and no tower vector."""
        rows = self.db.execute(
            "SELECT DISTINCT m.path FROM media m JOIN windows w ON w.media_id = m.id "
            "JOIN embeddings e ON e.window_id = w.id AND e.modality = 'audio' "
            "LEFT JOIN embeddings t ON t.window_id = w.id AND t.modality = ? WHERE t.window_id IS NULL",
            [TOWER_VECTORS])
        return {os.fsdecode(path) for (path,) in rows}

    def mark_tower_vectors(self, tower: str) -> None:
        """Record that every window with sound has a tower vector (none lacking_tower_vectors):
        searches by sound use them from now on. Cleared by a rebuild."""
        with self.db.atomic():
            self._set_meta({TOWER_KEY: tower})
            self._bump()

    def remove_media(self, paths: Iterable[str]) -> int:
        """Delete these files with their windows and vectors, in one transaction; returns how many."""
        removed = 0
        with self.db.atomic():
            for path in paths:
                row = self.db.execute("SELECT id FROM media WHERE path = ?", [os.fsencode(path)]).fetchone()
                if row is not None:
                    self._delete_rows(row[0])
                    self.db.execute("DELETE FROM media WHERE id = ?", [row[0]])
                    removed += 1
            if removed:
                self._bump()
        return removed

    def write_files(self, records: Sequence[FileRecord]) -> None:
        """Replace each file's rows (media, windows, vectors), all in one transaction."""
        if not records:
            return
        with self.db.atomic():
            for record in records:
                self._write_file(record)
            self._bump()

    def _delete_rows(self, media_id: int) -> None:
        self.db.execute("DELETE FROM embeddings WHERE window_id IN "
                        "(SELECT id FROM windows WHERE media_id = ?)", [media_id])
        self.db.execute("DELETE FROM windows WHERE media_id = ?", [media_id])

    def _write_file(self, record: FileRecord) -> None:
        path = os.fsencode(record.path)
        row = {"path": path, "size": record.size, "mtime_ns": record.mtime_ns, "duration": record.duration,
               "has_video": int(record.has_video), "has_audio": int(record.has_audio),
               "status": "failed" if record.error else "ok", "error": record.error, "indexed_at": now(),
               "dev": _to_sqlite(record.dev), "ino": _to_sqlite(record.ino)}
        existing = self.db.execute("SELECT id FROM media WHERE path = ?", [path]).fetchone()
        if existing is not None:  # keep its id, so links to the file survive a re-index
            media_id = existing[0]
            self._delete_rows(media_id)
            self.db["media"].update(media_id, row)
        else:
            media_id = self.db["media"].insert(row).last_pk
        if record.error or not record.windows:
            return
        # Window ids are assigned here, not by SQLite, so they follow the order files are written
        # in: a rerun after a crash hands out the same ids as an uninterrupted run. They are never
        # reused (SQLite's MAX(id) + 1 would hand a deleted top id to a new window), so an
        # approximate index built up to id H knows every window above H is new (catalog/ann.py).
        first = 1 + max(self.max_window_id(), self.db.execute("SELECT COALESCE(MAX(id), 0) FROM windows").fetchone()[0])
        ids = range(first, first + len(record.windows))
        self._set_meta({"max_window_id": ids[-1]})
        self.db["windows"].insert_all(
            {"id": i, "media_id": media_id, "start": s, "end": e} for i, (s, e) in zip(ids, record.windows, strict=True))
        for modality, vectors in record.vectors.items():
            if len(vectors) != len(record.windows):
                raise CatalogError(f"{record.path}: {len(vectors)} {modality} vectors for "
                                   f"{len(record.windows)} windows")
            blobs = np.ascontiguousarray(vectors, dtype=VECTOR_DTYPE)
            if not np.isfinite(blobs).all():  # every writer passes here: no NaN vector is ever stored
                raise CatalogError(f"{record.path}: non-finite {modality} vectors; nothing written")
            self.db["embeddings"].insert_all(
                {"window_id": i, "modality": modality, "vector": v.tobytes()} for i, v in zip(ids, blobs, strict=True))

    # --- reading (search and the app) ---

    def media(self, folder: str | None = None, status: str | None = None) -> list[Media]:
        """Recorded files, by path; `folder` keeps those under it, `status` 'ok' or 'failed'."""
        sql, params = "SELECT * FROM media", []
        if status is not None:
            sql, params = sql + " WHERE status = ?", [status]
        rows = [_media(r) for r in self.db.query(sql + " ORDER BY path", params)]
        return [m for m in rows if folder is None or is_under(m.path, folder)]

    def indexed_stat(self, path: str) -> tuple[int, int, int | None, int | None] | None:
        """(size, mtime_ns, dev, ino) recorded for `path` (exactly as recorded) if it was indexed
        without error; None for a failed or unknown file. dev and ino are None in older rows."""
        row = self.db.execute("SELECT size, mtime_ns, dev, ino FROM media WHERE path = ? AND status = 'ok'",
                              [os.fsencode(path)]).fetchone()
        return None if row is None else (row[0], row[1], _from_sqlite(row[2]), _from_sqlite(row[3]))

    def media_by_id(self, media_id: int) -> Media:
        _check_id(media_id, "media file", self.path)
        rows = list(self.db.query("SELECT * FROM media WHERE id = ?", [media_id]))
        if not rows:
            raise NotFound(f"no media file with id {media_id} in {self.path}")
        return _media(rows[0])

    def windows(self, media_id: int) -> list[Window]:
        """The windows of one file, by start time, each with the modalities it has vectors for."""
        rows = self.db.execute(
            'SELECT w.id, w.media_id, w.start, w."end", GROUP_CONCAT(e.modality) FROM windows w '
            "LEFT JOIN embeddings e ON e.window_id = w.id WHERE w.media_id = ? GROUP BY w.id "
            "ORDER BY w.start", [media_id])
        return [_window(r) for r in rows]

    def window(self, window_id: int) -> Window:
        _check_id(window_id, "window", self.path)
        row = self.db.execute(
            'SELECT w.id, w.media_id, w.start, w."end", GROUP_CONCAT(e.modality) FROM windows w '
            "LEFT JOIN embeddings e ON e.window_id = w.id WHERE w.id = ? GROUP BY w.id", [window_id]).fetchone()
        if row is None:
            raise NotFound(f"no window with id {window_id} in {self.path}")
        return _window(row)

    def embedding(self, window_id: int, modality: str) -> np.ndarray | None:
        """float32 (E,) stored for this window and modality; None if it has none."""
        _check_id(window_id, "window", self.path)
        row = self.db.execute("SELECT vector FROM embeddings WHERE window_id = ? AND modality = ?",
                              [window_id, modality]).fetchone()
        return None if row is None else np.frombuffer(row[0], dtype=VECTOR_DTYPE).astype(np.float32)

    def load_vectors(self, modality: str, after: int = 0, media_ids: Sequence[int] | None = None,
                     window_ids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(window_ids int64 (N,), media_ids int64 (N,), vectors float32 (N, E)) of one modality,
        ordered by file then start, so each file's rows are contiguous. Only windows with ids above
        `after`, of the files `media_ids`, or among `window_ids` (those that still exist), if given."""
        sql, params = ("SELECT e.window_id, w.media_id, e.vector FROM embeddings e JOIN windows w ON w.id = e.window_id "
                       "WHERE e.modality = ? AND e.window_id > ?"), [modality, after]
        for column, values in (("w.media_id", media_ids), ("e.window_id", window_ids)):
            if values is not None:
                sql, params = sql + f" AND {column} IN (SELECT value FROM json_each(?))", [*params, _json_ints(values)]
        rows = self.db.execute(sql + " ORDER BY w.media_id, w.start", params).fetchall()
        if not rows:
            settings = self.settings
            dim = settings.embed_dim if settings else 0
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        window_ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        media_ids = np.fromiter((r[1] for r in rows), np.int64, len(rows))
        matrix = np.frombuffer(b"".join(r[2] for r in rows), dtype=VECTOR_DTYPE).reshape(len(rows), -1)
        finite = np.isfinite(matrix).all(axis=1)
        if not finite.all():  # written before vectors were checked: a NaN row would outrank or hide real hits
            log.warning("%s: left out %d non-finite %s vectors (written by an older vlsa)",
                        self.path, int((~finite).sum()), modality)
            window_ids, media_ids, matrix = window_ids[finite], media_ids[finite], matrix[finite]
        return window_ids, media_ids, matrix.astype(np.float32)

    def vector_chunks(self, modality: str, rows: int, every: int = 1,
                      after: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(window_ids int64, vectors float32 (n, E)) of one modality in chunks of up to `rows`, by
        window id, from ids above `after`: all of them in bounded memory (building an approximate
        index), or with `every` > 1 only ids that are multiples of it (a sample to train one on)."""
        last = after
        while True:
            chunk = self.db.execute("SELECT window_id, vector FROM embeddings WHERE modality = ? AND window_id > ? "
                                    "AND window_id % ? = 0 ORDER BY window_id LIMIT ?",
                                    [modality, last, every, rows]).fetchall()
            if not chunk:
                return
            last = chunk[-1][0]
            ids = np.fromiter((r[0] for r in chunk), np.int64, len(chunk))
            yield ids, np.frombuffer(b"".join(r[1] for r in chunk), dtype=VECTOR_DTYPE).reshape(len(chunk), -1)

    def window_files(self, upto: int) -> tuple[np.ndarray, np.ndarray]:
        """(window_ids, media_ids) int64 of the windows with ids up to `upto`, by id."""
        rows = self.db.execute("SELECT id, media_id FROM windows WHERE id <= ? ORDER BY id", [upto])
        pairs = np.fromiter(itertools.chain.from_iterable(rows), np.int64).reshape(-1, 2)  # no list of 10M tuples
        return pairs[:, 0].copy(), pairs[:, 1].copy()

    def count_vectors(self, modality: str, upto: int | None = None) -> int:
        """How many vectors of one modality are stored (of windows with ids up to `upto`)."""
        return self.db.execute("SELECT COUNT(*) FROM embeddings WHERE modality = ? AND window_id <= ?",
                               [modality, MAX_ID if upto is None else upto]).fetchone()[0]

    def hits_info(self, window_ids: Sequence[int]) -> dict[int, tuple[int, str, float, float]]:
        """window_id -> (media_id, path, start, end) for a handful of windows."""
        if not window_ids:
            return {}
        marks = ",".join("?" * len(window_ids))
        rows = self.db.execute(f'SELECT w.id, w.media_id, m.path, w.start, w."end" FROM windows w '
                               f"JOIN media m ON m.id = w.media_id WHERE w.id IN ({marks})", list(window_ids))
        return {r[0]: (r[1], os.fsdecode(r[2]), r[3], r[4]) for r in rows}

    def media_filter(self, folder: str | None = None, min_duration: float | None = None,
                     max_duration: float | None = None) -> np.ndarray:
        """int64 ids of the indexed files that pass the filters. A folder is a range of the path
        index (paths beginning with it and "/"), not a walk over every path (1 s at 100,000 files);
        stored paths are absolute and normal (the scan's), one with a "." part or "//" is checked
        by paths.is_under."""
        sql, params = "SELECT id, path FROM media WHERE status = 'ok'", []
        if folder is not None:
            top = os.fsencode(os.path.abspath(folder)).rstrip(b"/")
            if top:  # not the root, which holds every path
                sql, params = sql + " AND (path = ? OR (path >= ? AND path < ?))", [top, top + b"/", top + b"0"]
        if min_duration is not None:
            sql, params = sql + " AND duration >= ?", [*params, min_duration]
        if max_duration is not None:
            sql, params = sql + " AND duration <= ?", [*params, max_duration]
        ids = [i for i, p in self.db.execute(sql, params)
               if folder is None or not (b"/." in p or b"//" in p) or is_under(os.fsdecode(p), folder)]
        return np.asarray(ids, dtype=np.int64)

    def stats(self) -> dict[str, int]:
        """Counts: files ok and failed, windows, vectors per modality."""
        one = lambda sql: self.db.execute(sql).fetchone()[0]  # noqa: E731
        out = {"media_ok": one("SELECT COUNT(*) FROM media WHERE status = 'ok'"),
               "media_failed": one("SELECT COUNT(*) FROM media WHERE status = 'failed'"),
               "windows": one("SELECT COUNT(*) FROM windows")}
        for m in WINDOW_MODALITIES:
            out[f"{m}_vectors"] = self.db.execute(
                "SELECT COUNT(*) FROM embeddings WHERE modality = ?", [m]).fetchone()[0]
        return out


def _json_ints(values: Sequence[int]) -> str:
    """Ids as one JSON array: a single SQL parameter however many there are (json_each reads it)."""
    return json.dumps([int(v) for v in values])


def _check_id(value: int, what: str, path: Path) -> None:
    """NotFound for an id no row can have (SQLite refuses integers past 64 bits with an OverflowError)."""
    if not 0 < value <= MAX_ID:
        raise NotFound(f"no {what} with id {value} in {path}")


def _media(row: dict) -> Media:
    return Media(id=row["id"], path=os.fsdecode(row["path"]), size=row["size"], mtime_ns=row["mtime_ns"],
                 duration=row["duration"], has_video=bool(row["has_video"]), has_audio=bool(row["has_audio"]),
                 status=row["status"], error=row["error"], indexed_at=row["indexed_at"],
                 dev=_from_sqlite(row.get("dev")), ino=_from_sqlite(row.get("ino")))


def _to_sqlite(number: int | None) -> int | None:
    """An unsigned 64-bit st_dev or st_ino as SQLite's signed INTEGER (some file systems use the top bit)."""
    return number - 2**64 if number is not None and number > MAX_ID else number


def _from_sqlite(number: int | None) -> int | None:
    return number % 2**64 if number is not None else None


def _window(row: tuple) -> Window:
    modalities = tuple(m for m in WINDOW_MODALITIES if row[4] and m in row[4].split(","))
    return Window(id=row[0], media_id=row[1], start=row[2], end=row[3], modalities=modalities)


def _mismatch_message(path: Path, current: Settings, wanted: Settings) -> str:
    made = current.checkpoint or f"an untrained {current.preset} model"
    if "fingerprint" in current.differences(wanted):
        return (f"{path} was built with another checkpoint ({made}, fingerprint {current.fingerprint}; "
                f"this one is {wanted.fingerprint}); pass --rebuild to re-index it with this one")
    return (f"{path} was built with window {current.window:g} s, stride {current.stride:g} s "
            f"(asked: {wanted.window:g} s, {wanted.stride:g} s); pass --rebuild to re-index with these")
