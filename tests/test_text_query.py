"""A text query through the catalog's ONNX export (catalog/text_export.py, vlsa/text_query.py):
the vectors of the shipped checkpoint's own text path, no torch in the process, never another
model's export.

One catalog of one shipped clip, indexed with the shipped checkpoint, and its export (seconds).
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

from catalog import text_export
from catalog.indexer import Indexer
from catalog.model import load_model
from catalog.service import SearchService
from catalog.store import Catalog
from vlsa.checkpoint import SHIPPED

CLIP = SHIPPED.parent / "media" / "clip" / "00003_a_glass_breaks.mp4"
QUERIES = ["a dog barks", "rain", "Café crème: a glass breaks!",
           "the quick brown fox jumps over the lazy dog while a bird sings and rain falls on a tin roof, "
           "far longer than the twenty-four ids the tokenizer keeps"]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """(catalog path, shipped model, its export's path)."""
    folder = tmp_path_factory.mktemp("export")
    model, checkpoint = load_model(SHIPPED)
    db = folder / "c.db"
    with Catalog(db) as catalog:
        assert Indexer(catalog, model, checkpoint=checkpoint).run([str(CLIP)]).indexed == 1
    return db, model, text_export.update(db, model)


def test_text_query_export_embeds_as_the_shipped_model(indexed):
    """The export's vectors are the model's embed_text (cosine > 0.9999), one query at a time
    and as one batch of different lengths (padding), a query longer than max_len included.

    Catches: the ONNX path tokenising otherwise than the torch path, padding that is not masked
    (seen to fail with every mask column set to 1 in token_ids), and a graph traced with a fixed
    length (seen to fail with SentenceEncoder's padding trim traced in)."""
    db, model, path = indexed
    encoder = text_export.open_for(db, model.fingerprint())
    assert path.is_file() and encoder is not None
    expected = model.embed_text(QUERIES).numpy()
    alone = np.stack([encoder.embed([query])[0] for query in QUERIES])
    batch = encoder.embed(QUERIES)
    assert (alone * expected).sum(axis=1).min() > 0.9999, (alone * expected).sum(axis=1)
    assert (batch * expected).sum(axis=1).min() > 0.9999, (batch * expected).sum(axis=1)


LOADED_AFTER_SEARCH = """
import sys
from vlsa.cli import main
sys.argv = ["vlsa", "search", "a glass breaks", "--db", sys.argv[1], "--top", "1"]
main()
print("loaded:", *sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers"}), file=sys.stderr)
"""


def test_text_search_with_an_export_imports_no_torch(indexed):
    """`vlsa search "words"` on a catalog with its export prints its results without importing
    torch or transformers (the 3.5 s of a text search's 6.2 that they took, docs/PERFORMANCE.md).

    Catches: any module on the search path importing torch again (seen to fail with
    `import torch` put back at the top of catalog/cli.py) and a search that ignores the export."""
    db, _, _ = indexed
    proc = subprocess.run([sys.executable, "-c", LOADED_AFTER_SEARCH, str(db)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert CLIP.name in proc.stdout
    assert "loaded:\n" in proc.stderr, proc.stderr


def test_text_export_of_another_model_is_not_used(indexed, tmp_path):
    """An export made for another model is never used: not when it carries the name of this
    catalog's model (its recorded fingerprint is checked), and `update` removes it.

    Catches: an export trusted by its file name alone (seen to fail with the fingerprint check
    in TextQueryEncoder.open removed), which would embed words with a stale model after a
    checkpoint was swapped."""
    db, model, path = indexed
    copy = tmp_path / "c.db"
    shutil.copy(db, copy)
    other = text_export.export_path(copy, "0" * 16)  # an export another checkpoint made
    shutil.copy(path, other)
    assert text_export.open_for(copy, "0" * 16) is None
    assert SearchService.open(copy).text_encoder is None  # this catalog's model has no export here
    mine = text_export.export_path(copy, model.fingerprint())
    shutil.copy(path, mine)
    assert SearchService.open(copy).text_encoder is not None
    shutil.copy(path, text_export.export_path(copy, "0" * 16))
    text_export.update(copy, model)
    assert not other.exists() and mine.exists()


@pytest.mark.parametrize("bad", [np.full(128, np.nan, np.float32), np.ones(7, np.float32)])
def test_text_export_giving_a_wrong_vector_is_not_searched_with(indexed, monkeypatch, bad):
    """The export is a file beside the catalog that anyone who can write there can replace: a
    vector of the wrong size or not finite is not searched with; the words are embedded by the
    model instead. Catches the export's output trusted as it comes (a NaN query ranks nothing,
    a wrong size is a numpy error in the search)."""
    db, model, _ = indexed
    service = SearchService.open(db)
    assert service.text_encoder is not None
    monkeypatch.setattr(service.text_encoder, "embed", lambda texts: bad[None])
    monkeypatch.setattr(SearchService, "model", model)  # what the catalog's checkpoint loads
    want = model.embed_text(["a dog barks"])[0].numpy()
    np.testing.assert_allclose(service.embed_text("a dog barks"), want, atol=1e-6)
