"""app: the words a result is called by (vlsa/calibration.py), as the page and the API show them."""


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
