"""The catalog's text query encoder: its model's text path exported to ONNX, beside the catalog.

    update(db, model)                # `vlsa index`, `vlsa demo`: write it if missing (seconds, once)
    encoder = open_for(db, settings.fingerprint)   # `vlsa search "..."`: None -> embed with the model

One file, `<catalog>-text-<fingerprint>.onnx`, for the model that made the catalog's vectors (the
fingerprint the catalog records). With it a text search needs neither torch nor transformers
(vlsa/text_query.py): `vlsa search "a dog barks"` in about a second instead of six. A catalog
without one (indexed before it existed, or with a model whose text path cannot be exported)
is searched through the model, as before; `vlsa index` again writes it without re-embedding.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

from vlsa.text_query import TextQueryEncoder, can_export, write_export

log = logging.getLogger(__name__)


def export_path(db: str | os.PathLike, fingerprint: str) -> Path:
    db = Path(db)
    return db.with_name(f"{db.name}-text-{fingerprint}.onnx")


def open_for(db: str | os.PathLike, fingerprint: str) -> TextQueryEncoder | None:
    """The catalog's export for the model `fingerprint`, or None where there is no usable one."""
    return TextQueryEncoder.open(export_path(db, fingerprint), fingerprint)


def update(db: str | os.PathLike, model) -> Path | None:
    """Write the export of `model` (the catalog's model) beside the catalog unless it is there,
    and remove those of other models; None where the model's text path cannot be exported or the
    exporter is not installed (searches then embed with the model)."""
    if not can_export(model):
        return None
    fingerprint = model.fingerprint()
    path = export_path(db, fingerprint)
    for stale in path.parent.glob(f"{Path(db).name}-text-*.onnx"):
        if stale != path:
            stale.unlink(missing_ok=True)
    if path.is_file():
        return path
    if importlib.util.find_spec("onnx") is None:  # text searches load the model, as they did before
        log.warning("no fast text search for %s: the onnx package is missing (pip install -e . installs it)", db)
        return None
    return write_export(model, path, fingerprint)
