"""What the catalog hands out and takes in: its errors, and the records of its settings, files,
windows and what the indexer writes for one file (catalog/store.py keeps them in SQLite).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from catalog.paths import display_path


class CatalogError(ValueError):
    """A catalog that cannot be used as asked; the message is one line."""


class SchemaError(CatalogError):
    """The file is not a catalog, or one written by a newer version."""


class CatalogBusy(CatalogError):
    """Another process indexes (or serves) the catalog in a way this use cannot share (catalog/lock.py)."""


class CatalogReadOnly(CatalogError):
    """The catalog (or its folder) cannot be written by this process, and indexing must write it."""

    def __init__(self, path):
        super().__init__(f"{path}: read-only (the catalog or its folder cannot be written here); indexing needs "
                         "to write it, while `vlsa search` and `vlsa app` can read it as it is")


class CheckpointMismatch(CatalogError):
    """The catalog was built with another checkpoint or other window settings."""


class NotFound(CatalogError, LookupError):
    """No window or media file with that id."""


@dataclass(frozen=True)
class Settings:
    """How a catalog's vectors were made; two catalogs with equal settings hold comparable vectors."""

    fingerprint: str  # VLSA.fingerprint(): hash of config and weights
    checkpoint: str | None  # the checkpoint folder, absolute; None for a seeded untrained preset
    preset: str  # the model's preset name
    embed_dim: int
    window: float  # seconds of media per window
    stride: float  # seconds between window starts

    def differences(self, other: Settings) -> list[str]:
        """Names of the settings that change the vectors (the checkpoint path alone does not)."""
        keys = ("fingerprint", "embed_dim", "window", "stride")
        return [k for k in keys if getattr(self, k) != getattr(other, k)]


@dataclass(frozen=True)
class Media:
    id: int
    path: str  # os.fsdecode of the stored bytes: opens the file even when the name is not UTF-8
    size: int
    mtime_ns: int
    duration: float | None
    has_video: bool
    has_audio: bool
    status: str  # 'ok' | 'failed'
    error: str | None  # one line, for failed files
    indexed_at: str
    # The file's identity when indexed (links followed): the app serves an open file only if it is
    # this one. None in rows written before schema 2.
    dev: int | None = None
    ino: int | None = None

    @property
    def display_path(self) -> str:
        return display_path(self.path)


@dataclass(frozen=True)
class Window:
    id: int
    media_id: int
    start: float
    end: float
    modalities: tuple[str, ...] = ()  # which embeddings it has


@dataclass
class FileRecord:
    """What the indexer writes for one file: its stat, its tracks and its windows' vectors, or an error."""

    path: str
    size: int
    mtime_ns: int
    duration: float | None = None
    has_video: bool = False
    has_audio: bool = False
    error: str | None = None
    windows: list[tuple[float, float]] = field(default_factory=list)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # modality -> (len(windows), E)
    dev: int | None = None  # st_dev and st_ino of the file read (links followed), see Media
    ino: int | None = None
