"""The catalog's SQLite schema, as a chain of migrations: `Catalog` runs the steps from a file's
version up to SCHEMA_VERSION, each in the transaction that records its number.

Each step brings the schema from version n - 1 to n. Released steps are never edited: a change to
the schema is a new step at the end of the chain.
"""

from __future__ import annotations

from catalog.connection import Database

SCHEMA_VERSION = 2


def _migrate_to_1(db: Database) -> None:
    """The first schema: meta, media, windows, embeddings."""
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["media"].create(
        {"id": int, "path": bytes, "size": int, "mtime_ns": int, "duration": float, "has_video": int,
         "has_audio": int, "status": str, "error": str, "indexed_at": str},
        pk="id", not_null={"path", "size", "mtime_ns", "status"},
    )
    db["media"].create_index(["path"], unique=True)
    db["windows"].create({"id": int, "media_id": int, "start": float, "end": float}, pk="id",
                         not_null={"media_id", "start", "end"}, foreign_keys=[("media_id", "media", "id")])
    db["windows"].create_index(["media_id", "start"])
    db["embeddings"].create({"window_id": int, "modality": str, "vector": bytes}, pk=("window_id", "modality"),
                            not_null={"vector"}, foreign_keys=[("window_id", "windows", "id")])


def _migrate_to_2(db: Database) -> None:
    """Each file's device and inode, so the app can tell that a file it opened is the one indexed
    (a same-size, same-time replacement is another file). Rows from before stay NULL until the
    file is indexed again (see app/files.py for how the app treats them)."""
    db["media"].add_column("dev", int)
    db["media"].add_column("ino", int)


MIGRATIONS = {1: _migrate_to_1, 2: _migrate_to_2}
