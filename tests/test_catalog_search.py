"""catalog search: exact top-k by matrix scan and by sqlite-vec, filters, and the query kinds."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from mediagen import make_audio, make_video
from requires import unavailable

from catalog.indexer import Indexer
from catalog.search import MatrixIndex, SqliteVecIndex, row_scores
from catalog.service import Hit, SearchService, fuse_by_rank
from catalog.store import Catalog, FileRecord, NotFound, Settings
from vlsa import sqlitevec
from vlsa.api import VLSA

E = 16


def unit(rng, n: int, dim: int = E) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def random_catalog(tmp_path_factory) -> Catalog:
    """60 files in two folders, 1-12 windows each, random unit vectors; some files video only,
    some audio only, most both."""
    rng = np.random.default_rng(7)
    catalog = Catalog(tmp_path_factory.mktemp("search") / "c.db")
    catalog.bind(Settings("f" * 16, None, "tiny", E, 2.0, 2.0))
    records = []
    for i in range(60):
        n = int(rng.integers(1, 13))
        kinds = [("video",), ("audio",), ("video", "audio"), ("video", "audio")][i % 4]
        records.append(FileRecord(f"/lib/{'a' if i % 2 else 'b'}/f{i:02d}.mp4", 1, 1, duration=2.0 * n,
                                  has_video="video" in kinds, has_audio="audio" in kinds,
                                  windows=[(2.0 * k, 2.0 * k + 2.0) for k in range(n)],
                                  vectors={m: unit(rng, n) for m in kinds}))
    catalog.write_files(records)
    yield catalog
    catalog.close()


def brute_force(catalog: Catalog, query: np.ndarray, modality: str, k: int, per_file=False) -> list[tuple[int, float]]:
    """Against a query of several vectors (N, E), a window scores its best cosine with any."""
    window_ids, media_ids, matrix = catalog.load_vectors(modality)
    best = (matrix @ np.atleast_2d(query).T).max(axis=1)
    scored = sorted(zip(best.tolist(), window_ids.tolist(), media_ids.tolist(), strict=True),
                    key=lambda t: (-t[0], t[1]))
    if per_file:
        seen = set()
        scored = [t for t in scored if not (t[2] in seen or seen.add(t[2]))]
    return [(w, s) for s, w, _ in scored[:k]]


def test_search_is_exact_top_k(random_catalog):
    service = SearchService(random_catalog)
    rng = np.random.default_rng(1)
    for query in unit(rng, 20):
        for modality in ("video", "audio"):
            for per_file in (False, True):
                hits = service.search_vector(query, kind=modality, top=7, per_file=per_file)
                expected = brute_force(random_catalog, query, modality, 7, per_file)
                assert [h.window_id for h in hits] == [w for w, _ in expected]
                assert [h.score for h in hits] == pytest.approx([s for _, s in expected], abs=1e-6)


def test_search_of_several_vectors_is_exact_top_k_of_the_best_row(random_catalog):
    """A query sound's windows (N, E): each window of the catalog scores its best row.

    Catches merging the rows' own top-k lists wrongly (a window kept at another row's score,
    one file twice with per_file) and scoring by the mean of the rows."""
    service = SearchService(random_catalog)
    rng = np.random.default_rng(4)
    for rows in (1, 3, 8):
        query = unit(rng, rows)
        for modality in ("video", "audio"):
            for per_file in (False, True):
                hits = service.search_vector(query, kind=modality, top=7, per_file=per_file)
                expected = brute_force(random_catalog, query, modality, 7, per_file)
                assert [h.window_id for h in hits] == [w for w, _ in expected]
                assert [h.score for h in hits] == pytest.approx([s for _, s in expected], abs=1e-6)


@pytest.mark.parametrize("options", [
    {"kind": "video"}, {"kind": "audio", "top": 25}, {"kind": "any"}, {"kind": "any", "per_file": True},
    {"kind": "video", "per_file": True, "top": 40}, {"folder": "/lib/a"}, {"min_duration": 10.0, "top": 3},
    {"kind": "audio", "per_file": True, "folder": "/lib/b", "max_duration": 8.0},
])
def test_search_backends_agree(random_catalog, options):
    """sqlite-vec and the matrix scan return the same windows with the same scores."""
    if not sqlitevec.available():
        unavailable("sqlite-vec does not load here")
    numpy_service = SearchService(random_catalog, backend="numpy")
    vec_service = SearchService(random_catalog, backend="sqlite-vec")
    assert isinstance(vec_service.index("video"), SqliteVecIndex)
    for query in unit(np.random.default_rng(2), 10):
        assert vec_service.search_vector(query, **options) == numpy_service.search_vector(query, **options)


def test_search_per_file_and_filters(random_catalog):
    service = SearchService(random_catalog)
    query = unit(np.random.default_rng(3), 1)[0]
    every = service.search_vector(query, top=10_000)
    per_file = service.search_vector(query, top=10_000, per_file=True)
    assert len(per_file) == 60 == len({h.media_id for h in per_file})
    best = {}
    for h in every:  # every is sorted best first: the first hit of a file is its best
        best.setdefault(h.media_id, h)
    assert per_file == sorted(best.values(), key=lambda h: (-h.score, h.window_id, h.modality))
    best = {}  # by rank (find-similar's fusion): each kind's files, ranked; a file's first hit
    for h in fuse_by_rank([service.search_vector(query, kind=m, top=10_000, per_file=True) for m in ("video", "audio")]):
        best.setdefault(h.media_id, h)
    assert service.search_vector(query, top=10_000, per_file=True, fuse="rank") == list(best.values())
    in_a = service.search_vector(query, top=10_000, folder="/lib/a")
    assert in_a and all(h.path.startswith("/lib/a/") for h in in_a)
    assert len(in_a) == sum(1 for h in every if h.path.startswith("/lib/a/"))
    long = service.search_vector(query, top=10_000, min_duration=20.0, max_duration=22.0)
    durations = {m.id: m.duration for m in random_catalog.media()}
    assert long and all(20.0 <= durations[h.media_id] <= 22.0 for h in long)
    assert service.search_vector(query, folder="/nowhere") == []


def test_search_like_leaves_the_window_out(random_catalog):
    service = SearchService(random_catalog)
    f02 = next(m for m in random_catalog.media() if m.path == "/lib/b/f02.mp4")  # a file with both kinds
    window = random_catalog.windows(f02.id)[0]
    assert window.modalities == ("video", "audio")
    hits = service.search_like(window.id, kind="video", top=5)
    assert window.id not in {h.window_id for h in hits}
    expected = brute_force(random_catalog, random_catalog.embedding(window.id, "video"), "video", 6)[1:]
    assert [h.window_id for h in hits] == [w for w, _ in expected]
    with pytest.raises(NotFound):
        service.search_like(10**9)


def near(rng, axis: np.ndarray, cosine: float, n: int) -> np.ndarray:
    """n unit vectors at about `cosine` to the unit vector `axis`, each a little different."""
    noise = unit(rng, n)
    noise -= np.outer(noise @ axis, axis)  # random directions at right angles to the axis
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    cosines = cosine + np.linspace(0, 0.04, n)[::-1]
    return (np.outer(cosines, axis) + np.sqrt(1 - cosines**2)[:, None] * noise).astype(np.float32)


@pytest.fixture
def lopsided(tmp_path) -> tuple[Catalog, np.ndarray]:
    """8 files of one window with a picture and a sound, and a query whose cosines with every
    picture vector (0.90-0.94) are above those with every sound vector (0.40-0.44), as a
    library of look-alike pictures scores."""
    rng = np.random.default_rng(11)
    query = unit(rng, 1)[0]
    pictures, sounds = near(rng, query, 0.90, 8), near(rng, query, 0.40, 8)[::-1]  # other orders
    catalog = Catalog(tmp_path / "c.db")
    catalog.bind(Settings("f" * 16, None, "tiny", E, 2.0, 2.0))
    catalog.write_files([FileRecord(f"/lib/f{i}.mp4", 1, 1, 2.0, has_video=True, has_audio=True,
                                    windows=[(0.0, 2.0)], vectors={"video": pictures[i: i + 1], "audio": sounds[i: i + 1]})
                         for i in range(8)])
    yield catalog, query
    catalog.close()


@pytest.mark.parametrize("per_file", [False, True])
def test_search_any_interleaves_the_modalities_by_rank(lopsided, per_file):
    """With every picture cosine above every sound cosine, "any" still gives the sound's best
    second and alternates picture and sound by rank, each in its own order.

    Catches a merge on the raw cosine (six pictures, no sound: issue 33, "find similar" of a
    piano clip found by its picture only)."""
    catalog, query = lopsided
    service = SearchService(catalog)
    hits = service.search_vector(query, kind="any", top=6, per_file=per_file, fuse="rank")
    video = service.search_vector(query, kind="video", top=6, per_file=per_file)
    audio = service.search_vector(query, kind="audio", top=6, per_file=per_file)
    if not per_file:
        assert hits == [h for pair in zip(video[:3], audio[:3], strict=True) for h in pair]
    else:  # a file whose picture was shown is not shown again for its sound
        assert [h.modality for h in hits[:2]] == ["video", "audio"] and len({h.media_id for h in hits}) == 6
        assert [h for h in hits if h.modality == "audio"] == [h for h in audio if h in hits]


def test_search_like_of_kind_audio_finds_by_sound_only(lopsided):
    """"Find similar" with the sound chosen: only sound-found results, in the sound's order,
    though every picture scores higher. Catches the kind ignored by search_like."""
    catalog, _ = lopsided
    service = SearchService(catalog)
    window = catalog.windows(catalog.media()[0].id)[0].id
    like = service.search_like(window, kind="audio", top=5)
    assert {h.modality for h in like} == {"audio"} and window not in {h.window_id for h in like}
    assert [h.window_id for h in like] == [w for w, _ in brute_force(catalog, catalog.embedding(window, "audio"), "audio", 6)[1:]]
    assert {h.modality for h in service.search_like(window, kind="any", top=4)} == {"video", "audio"}


def test_search_any_keeps_a_sound_found_as_itself_first(tmp_path):
    """A sound-only file whose sound is the query (cosine 1, rank 1 of the sounds) comes first,
    ahead of a file that both modalities rank second. Catches fusing by summed reciprocal ranks,
    which counts that file twice and puts the exact match behind it."""
    rng = np.random.default_rng(12)
    query = unit(rng, 1)[0]
    pictures, sounds = near(rng, query, 0.5, 3), near(rng, query, 0.3, 3)
    with Catalog(tmp_path / "c.db") as catalog:
        catalog.bind(Settings("f" * 16, None, "tiny", E, 2.0, 2.0))
        catalog.write_files(
            [FileRecord("/lib/itself.wav", 1, 1, 2.0, has_audio=True, windows=[(0.0, 2.0)], vectors={"audio": query[None]})]
            + [FileRecord(f"/lib/f{i}.mp4", 1, 1, 2.0, has_video=True, has_audio=True, windows=[(0.0, 2.0)],
                          vectors={"video": pictures[i: i + 1], "audio": sounds[i: i + 1]}) for i in range(3)])
        hits = SearchService(catalog).search_vector(query, kind="any", top=3, per_file=True, fuse="rank")
        assert hits[0].path == "/lib/itself.wav" and hits[0].score == pytest.approx(1.0)


def test_search_sees_what_is_written_after_it_loaded(tmp_path):
    rng = np.random.default_rng(4)
    with Catalog(tmp_path / "c.db") as catalog:
        catalog.bind(Settings("f" * 16, None, "tiny", E, 2.0, 2.0))
        service = SearchService(catalog)
        assert service.search_vector(unit(rng, 1)[0]) == []  # empty catalog: no results, no error
        vector = unit(rng, 1)
        catalog.write_files([FileRecord("/lib/new.wav", 1, 1, 2.0, has_audio=True, windows=[(0.0, 2.0)],
                                        vectors={"audio": vector})])
        (hit,) = service.search_vector(vector[0])
        assert (hit.path, hit.modality, hit.start, hit.end) == ("/lib/new.wav", "audio", 0.0, 2.0)
        assert hit.score == pytest.approx(1.0)


def test_matrix_index_breaks_ties_by_row():
    matrix = np.ones((6, 4), np.float32) / 2  # every row scores the same
    index = MatrixIndex(np.arange(10, 16), np.array([1, 1, 2, 2, 3, 3]), matrix)
    q = np.ones(4, np.float32) / 2
    assert [r for r, _ in index.top(q, 3)] == [0, 1, 2]
    assert [r for r, _ in index.top(q, 3, per_file=True)] == [0, 2, 4]


def test_row_scores_do_not_depend_on_the_other_rows():
    """A window's score is the same scored alone, among the exact scan's winners or among the
    approximate index's 40 candidates, so both paths report identical scores.

    Catches scoring by a BLAS matrix-vector product (`matrix @ query`): it sums a row in another
    order for another number of rows (here 1 row in 3 agrees at 512 dims)."""
    rng = np.random.default_rng(5)
    matrix, q = unit(rng, 300, 512), unit(rng, 1, 512)[0]
    alone = [row_scores(matrix[i: i + 1], q)[0] for i in range(len(matrix))]
    for n in (2, 3, 7, 40, 300):
        assert row_scores(matrix[:n], q).tolist() == alone[:n]


# --- with the model ---


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    torch.manual_seed(0)
    model = VLSA.from_preset("tiny").eval()
    lib = tmp_path_factory.mktemp("lib")
    make_video(lib / "clip.mp4", 4.0)
    make_audio(lib / "low.wav", 1.0, tone_hz=110.0)
    make_audio(lib / "high.wav", 1.0, tone_hz=3000.0)
    catalog = Catalog(lib.parent / f"{lib.name}.db")
    Indexer(catalog, model).run([str(lib)])
    yield SearchService(catalog, model), lib
    catalog.close()


def test_search_text_audio_and_like(indexed):
    service, lib = indexed
    hits = service.search_text("a low hum", top=3)
    assert len(hits) == 3 and all(isinstance(h, Hit) for h in hits)
    for modality in ("video", "audio"):  # each modality's hits best first (fused by rank)
        scores = [h.score for h in hits if h.modality == modality]
        assert scores == sorted(scores, reverse=True)
    assert {h.modality for h in service.search_text("a red square", kind="video")} == {"video"}
    for name in ("low.wav", "high.wav"):  # a file's own sound finds it first
        best = service.search_audio(lib / name, kind="audio", top=1)[0]
        assert Path(best.path).name == name and best.score > 0.9999
    wave = torch.zeros(service.model.config.audio.sample_rate)  # a waveform works as well as a file
    assert len(service.search_audio(wave, top=2)) == 2
    like = service.search_like(hits[0].window_id, top=2)
    assert len(like) == 2 and hits[0].window_id not in {h.window_id for h in like}
    assert hits[0].to_dict()["path"] == hits[0].display_path
    with pytest.raises(ValueError, match="kind"):
        service.search_text("x", kind="smell")


def test_catalog_lists_media_windows_and_vectors(indexed):
    service, lib = indexed
    catalog = service.catalog
    media = catalog.media(folder=str(lib))
    assert [Path(m.path).name for m in media] == ["clip.mp4", "high.wav", "low.wav"]
    clip = media[0]
    assert (clip.has_video, clip.has_audio, clip.status, clip.error) == (True, True, "ok", None)
    windows = catalog.windows(clip.id)
    assert [(w.start, w.end) for w in windows] == [(0.0, 2.0), (2.0, 4.0)]
    vector = catalog.embedding(windows[1].id, "video")
    assert vector.shape == (128,) and vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert catalog.window(windows[1].id) == windows[1]
    assert os.path.isabs(clip.path)
