"""app.scores: a score's strength against its query's scores over the library."""

import numpy as np
import pytest

from app.scores import Spread, strength_words


def test_scores_strength_counts_standard_deviations_above_the_querys_mean():
    """Catches a strength not divided by the spread, measured from another centre than the mean,
    or dividing by zero when every window scores alike."""
    spread = Spread.of(np.array([0.90, 0.92, 0.94, 0.96, 0.98]))  # a narrow, high band of cosines
    assert spread.mean == pytest.approx(0.94)
    assert Spread.of(np.array([0.0, 0.0, 0.0, 1.0])).mean == pytest.approx(0.25)  # the mean, not the median
    assert spread.strength(0.98) == pytest.approx(0.04 / np.std([0.90, 0.92, 0.94, 0.96, 0.98]))
    assert spread.strength(0.90) < 0 < spread.strength(0.95)
    assert Spread.of(np.full(4, 0.5)).strength(0.5) == 0.0  # every window alike: no strength
    assert Spread.of(np.zeros(0)).strength(0.3) == 0.0


def test_scores_strength_words_from_strong_to_weak():
    """Catches a threshold moved (each word starts exactly at its number of standard deviations)."""
    assert [strength_words(z) for z in (4.0, 3.0, 2.9, 2.5, 2.0, 1.9, 1.0, 0.9, -1.0)] == \
        ["strong match", "strong match", "good match", "good match", "good match", "fair match", "fair match",
         "weak match", "weak match"]


def test_scores_a_cosine_of_one_is_an_exact_match_whatever_its_strength():
    """Catches the exact-match rule missing (a weak strength named 'weak match') or too loose."""
    assert strength_words(0.5, 1.0) == strength_words(-2.0, 1 - 1e-5) == "exact match"
    assert strength_words(0.5, 0.999) == "weak match" and strength_words(3.5, 0.9) == "strong match"


def test_scores_a_library_sound_searched_by_itself_is_called_an_exact_match(tmp_path):
    """A library file uploaded as the query finds itself, named "exact match" in its caption, its
    JSON and its details; the other files are not. Catches the words taken from the z-score alone:
    among three sounds the file itself stands ~1.4 deviations above the mean, a "fair match"
    (issue 33, 1)."""
    import torch
    from mediagen import make_audio

    from app import callbacks
    from app.context import make_context
    from catalog.indexer import Indexer
    from catalog.service import SearchService
    from catalog.store import Catalog
    from vlsa.api import VLSA

    torch.manual_seed(0)
    model = VLSA.from_preset("tiny").eval()
    library = tmp_path / "lib"
    library.mkdir()
    for name, hz in (("low.wav", 110.0), ("mid.wav", 700.0), ("high.wav", 3000.0)):
        make_audio(library / name, 1.0, tone_hz=hz)
    catalog = Catalog(tmp_path / "c.db")
    Indexer(catalog, model).run([str(library)])
    ctx = make_context(SearchService(catalog, model), workdir=tmp_path / "work")
    try:
        gallery, rows, hits, query, _ = callbacks.search_audio(ctx, str(library / "mid.wav"), "audio")
        assert rows[0]["name"] == "mid.wav" and rows[0]["match"] == "exact match"
        assert "exact match" in gallery[0][1] and all(r["match"] != "exact match" for r in rows[1:])
        assert "**exact match**" in callbacks.select_result(ctx, hits, query, 0)[5]
    finally:
        ctx.close()
        catalog.close()
