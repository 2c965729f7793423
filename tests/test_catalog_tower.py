"""A tower checkpoint's own sound vectors in the catalog: stored beside the joint ones, searched by
a sound example and by "find similar"; a catalog written before them still searches and gets them
at its next index; a checkpoint without a tower never loads one.

The tower model is tiny with the real aisfx trunk (a random one hears every tone alike) and its
adapter's last layer zeroed, so every joint sound vector is the same: the joint vectors cannot
order the sounds, and only the tower's own can.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mediagen import make_audio

from catalog import ann
from catalog.indexer import Indexer
from catalog.model import default_checkpoint, load_model
from catalog.service import SearchService
from catalog.store import TOWER_KEY, Catalog
from vlsa import VLSA, audio_tower
from vlsa.vectors import TOWER_VECTORS

RATE = 44100
TONES = {"a.wav": 440.0, "b.wav": 3000.0, "c.wav": 9000.0, "d.wav": 600.0}


def tone_library(folder):
    folder.mkdir()
    for name, hz in TONES.items():
        make_audio(folder / name, 2.0, sample_rate=RATE, tone_hz=hz)
    return folder


@pytest.fixture
def tower_model() -> VLSA:
    torch.manual_seed(0)
    model = VLSA.from_preset("tiny", **{"audio.tower": "aisfx"}).eval()
    with torch.no_grad():  # every sound the same joint vector: only the tower's own can rank them
        model.audio_adapter[-1].weight.zero_()
    return model


@pytest.fixture
def tower_catalog(tmp_path, tower_model):
    lib = tone_library(tmp_path / "lib")
    with Catalog(tmp_path / "c.db") as catalog:
        report = Indexer(catalog, tower_model).run([str(lib)])
    assert report.indexed == len(TONES) and not report.failed
    return tmp_path / "c.db", lib


def tower_order(model: VLSA, lib, query: str) -> list[str]:
    """The files by their tower vectors' cosine with `query`'s, best first (the API's vectors)."""
    names = sorted(TONES)
    vectors = model.embed_audio_all([str(lib / n) for n in names])[TOWER_VECTORS]
    scores = (vectors @ vectors[names.index(query)]).tolist()
    return [n for _, n in sorted(zip(scores, names, strict=True), key=lambda t: -t[0])]


def names(hits) -> list[str]:
    return [h.display_path.rsplit("/", 1)[-1] for h in hits]


def test_tower_catalog_searches_sounds_by_the_towers_own_vectors(tower_catalog, tower_model):
    """A sound example (a file, and its own window through "find similar") ranks the library by
    the tower's own vectors, where the joint vectors (all alike here) would rank by window id;
    words still score the joint vectors. Catches the sound search left on the joint vectors, the
    tower vectors not stored, and find-similar searching with the window's joint vector."""
    db, lib = tower_catalog
    service = SearchService(Catalog(db, read_only=True), tower_model)
    expected = tower_order(tower_model, lib, "c.wav")
    assert expected[0] == "c.wav" and expected != sorted(TONES)  # the joint order (ties: window id) differs
    hits = service.search_audio(str(lib / "c.wav"), kind="audio", top=4)
    assert names(hits) == expected and {h.modality for h in hits} == {TOWER_VECTORS}
    assert hits[0].score > 0.9999  # the catalogued sound finds itself at cosine 1
    like = service.search_like(hits[0].window_id, kind="audio", top=3)
    assert names(like) == expected[1:] and {h.modality for h in like} == {TOWER_VECTORS}
    assert {h.modality for h in service.search_text("a bell rings", kind="audio")} == {"audio"}


def test_tower_catalog_indexes_its_sound_vectors_approximately(tower_catalog, tower_model):
    """`vlsa index --ann` builds the tower vectors' own approximate index (their width is not the
    joint one), and the search uses it. Catches an index refused for its width (read_info), so the
    tower vectors were always scanned exactly."""
    db, lib = tower_catalog
    with Catalog(db) as catalog:
        assert ann.update(catalog, TOWER_VECTORS, min_vectors=1) == "built"
    service = SearchService(Catalog(db, read_only=True), tower_model, exact_below=0)  # the index whatever the size
    assert service.ann(TOWER_VECTORS) is not None and service.ann(TOWER_VECTORS).dim == 512
    assert names(service.search_audio(str(lib / "c.wav"), kind="audio", top=4)) == tower_order(tower_model, lib, "c.wav")


def test_catalog_written_before_tower_vectors_still_searches_and_gets_them(tower_catalog, tower_model):
    """A tower checkpoint's catalog as vlsa wrote it before tower vectors were stored (no
    'audio_tower' rows, no TOWER_KEY): searching it read-only by a sound works on the joint
    vectors, and the next `vlsa index`, with every file unchanged, adds the tower vectors and the
    sound search uses them. Catches a search that expects tower vectors an older catalog lacks
    (no results), and an index run that leaves the older files without them."""
    db, lib = tower_catalog
    with Catalog(db) as catalog:
        with catalog.db.atomic():
            catalog.db.execute("DELETE FROM embeddings WHERE modality = ?", [TOWER_VECTORS])
            catalog.db.execute("DELETE FROM meta WHERE key = ?", [TOWER_KEY])
    with Catalog(db, read_only=True) as catalog:
        service = SearchService(catalog, tower_model)
        hits = service.search_audio(str(lib / "c.wav"), kind="audio", top=4)
        assert len(hits) == 4 and {h.modality for h in hits} == {"audio"}
        assert len(service.search_like(hits[0].window_id, top=3)) == 3
    with Catalog(db) as catalog:
        report = Indexer(catalog, tower_model).run([str(lib)])
        assert report.indexed == len(TONES) and catalog.count_vectors(TOWER_VECTORS) == len(TONES)
    with Catalog(db, read_only=True) as catalog:
        hits = SearchService(catalog, tower_model).search_audio(str(lib / "c.wav"), kind="audio", top=4)
        assert names(hits) == tower_order(tower_model, lib, "c.wav") and hits[0].modality == TOWER_VECTORS


def test_default_checkpoint_reads_its_sound_encoder_only_when_sound_is_embedded(tmp_path, monkeypatch):
    """The default checkpoint hears through the aisfx tower beside its own audio path: loading
    it and embedding words never read the sound encoder's 25 MB; indexing sound reads it once
    and stores the tower's own vectors, by which a sound example and find-similar then search.
    Catches the encoder read with the model (every text search paying for it), and a default
    whose sound search ignores the tower's vectors."""
    reads = []
    load = audio_tower.load_trunk
    monkeypatch.setattr(audio_tower, "load_trunk", lambda name: reads.append(name) or load(name))
    model, checkpoint = load_model(default_checkpoint())
    assert model.has_audio_tower and model.config.audio.tower_residual
    model.embed_text(["a dog barks"])
    assert reads == []
    lib = tone_library(tmp_path / "lib")
    with Catalog(tmp_path / "c.db") as catalog:
        Indexer(catalog, model, checkpoint=checkpoint).run([str(lib)])
        assert reads == ["aisfx"] and catalog.sound_modalities() == ("audio", TOWER_VECTORS)
    service = SearchService(Catalog(tmp_path / "c.db", read_only=True), model)
    hits = service.search_audio(str(lib / "c.wav"), kind="audio", top=4)
    assert names(hits)[0] == "c.wav" and {h.modality for h in hits} == {TOWER_VECTORS}
    assert service.search_like(hits[0].window_id, top=3)
    assert reads == ["aisfx"]
    np.testing.assert_allclose(service.sound_query(str(lib / "c.wav"))[TOWER_VECTORS][0],
                               service.catalog.embedding(hits[0].window_id, TOWER_VECTORS), atol=1e-5)
