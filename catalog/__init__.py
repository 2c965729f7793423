"""catalog: index a media library into one SQLite file and search it (docs/CATALOG.md).

    from catalog import Catalog, Indexer, SearchService
    from catalog.model import load_model

    model, path = load_model("ckpt/")
    with Catalog("library.db") as catalog:
        Indexer(catalog, model, checkpoint=path).run(["~/Videos"])
        hits = SearchService(catalog, model).search_text("a dog barks", top=5)

Modules: store (the SQLite schema and the Catalog class), records (its errors and records),
paths (how paths are compared and shown), scan (finding media files), windows (cutting files
into windows and decoding them as a stream), decode (that decoding in loader worker processes),
indexer, distributed (indexing on the ranks of a torchrun job), search (exact
top-k backends), ann (the approximate index beside the catalog, for large libraries), service
(SearchService and Hit), model (which checkpoint), cli (`vlsa index`, `vlsa search`).
"""

from catalog.paths import display_path
from catalog.store import (
    Catalog,
    CatalogError,
    CheckpointMismatch,
    Media,
    NotFound,
    SchemaError,
    Settings,
    Window,
)


def __getattr__(name: str):
    # Lazy: the indexer needs torch, and a text search imports this package without it
    # (catalog/text_export.py); `from catalog import Indexer` works as before.
    if name in ("Indexer", "IndexReport"):
        from catalog import indexer

        return getattr(indexer, name)
    if name in ("Hit", "SearchService"):
        from catalog import service

        return getattr(service, name)
    raise AttributeError(name)


__all__ = ["Catalog", "CatalogError", "CheckpointMismatch", "Hit", "IndexReport", "Indexer", "Media",
           "NotFound", "SchemaError", "SearchService", "Settings", "Window", "display_path"]
