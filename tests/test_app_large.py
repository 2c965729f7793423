"""The app above the approximate index's size, forced on tiny catalogs: what a search shows besides
its hits (strength, the "when in the file" strip, folder filters, per-file best, find-similar)
comes from the index, the window -> file map beside it and a few rows of the catalog, never from
a modality's whole matrix, and says what the whole-matrix path says.

Each modality (picture and sound) is checked alike. The whole-matrix path is SearchService.index
(every vector of a modality in memory) and Catalog.window_files (every window's file): both are
made to fail where the index path is used, and the exact service (exact_below=None) gives the
numbers the index path must repeat.
"""


import numpy as np
import pytest

from app import render
from catalog import ann
from catalog.reads import ParallelReads
from catalog.service import SearchService
from catalog.store import WINDOW_MODALITIES, Catalog, FileRecord, Settings

E = 16
WINDOWS = 6  # per file


def unit(rng, n: int) -> np.ndarray:
    v = rng.standard_normal((n, E)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def record(i: int, rng, folder: str | None = None) -> FileRecord:
    """File i in folder a or b by parity, with a picture and a sound vector per window."""
    return FileRecord(f"/lib/{folder or 'ab'[i % 2]}/f{i:03d}.mp4", 1, i, duration=2.0 * WINDOWS, has_video=True,
                      has_audio=True, windows=[(2.0 * k, 2.0 * k + 2.0) for k in range(WINDOWS)],
                      vectors={m: unit(rng, WINDOWS) for m in WINDOW_MODALITIES})


@pytest.fixture
def catalog(tmp_path):
    rng = np.random.default_rng(5)
    with Catalog(tmp_path / "c.db") as catalog:
        catalog.bind(Settings("f" * 16, None, "tiny", E, 2.0, 2.0))
        catalog.write_files([record(i, rng) for i in range(40)])
        for modality in WINDOW_MODALITIES:
            assert ann.update(catalog, modality, min_vectors=1) == "built"
        yield catalog


def no_whole_matrix(monkeypatch) -> None:
    """From here on, reading a modality's whole matrix, or every window's file, fails the test."""
    def whole(*args, **kwargs):
        raise AssertionError("the whole-matrix path was used above the index size")
    monkeypatch.setattr(SearchService, "index", whole)
    monkeypatch.setattr(Catalog, "window_files", whole)


def services(catalog: Catalog) -> tuple[SearchService, SearchService]:
    """(through the index, as a catalog above its size is searched; the exact scan)."""
    through_index = SearchService(catalog, exact_below=0)
    assert all(through_index.ann(m) is not None for m in WINDOW_MODALITIES)
    return through_index, SearchService(catalog, exact_below=None)


def test_app_time_strip_reads_one_files_rows_above_the_index_size(catalog, monkeypatch):
    """The "when in the file" strip of a result, per modality, is the exact path's picture, drawn
    from the file's own rows. Catches render.temporal reading the modality's whole matrix
    (SearchService.index) to find one file's windows."""
    through_index, exact = services(catalog)
    media = catalog.media()[3]
    window = catalog.windows(media.id)[2]
    query = unit(np.random.default_rng(1), 1)[0]
    expected = {m: render.temporal(exact, media.id, m, query, window.id, media.duration) for m in WINDOW_MODALITIES}
    no_whole_matrix(monkeypatch)
    for modality in WINDOW_MODALITIES:
        strip = render.temporal(through_index, media.id, modality, query, window.id, media.duration)
        assert np.array_equal(strip, expected[modality]), modality


def test_app_filters_per_file_and_find_similar_use_the_map_above_the_index_size(catalog, monkeypatch):
    """Folder filters, per-file best and find-similar through the index answer as the exact scan
    does, the filters' windows found in the window -> file map written with the index. Catches
    the bitmap of a filter's windows made from the catalog's windows (Catalog.window_files, 25 s
    at 10M windows) instead of the map."""
    through_index, exact = services(catalog)
    monkeypatch.setattr(ann, "ANN_MIN_VECTORS", 0)  # no exact fallback to hide a wrong bitmap
    queries = unit(np.random.default_rng(3), 4)
    like = catalog.windows(catalog.media()[5].id)[1].id
    asks = [dict(query=q, kind=kind, top=5, per_file=per_file, folder=folder)
            for q in queries for kind in ("any", *WINDOW_MODALITIES)
            for per_file in (False, True) for folder in (None, "/lib/a", "/lib/b")]
    expected = [exact.search_vector(**ask) for ask in asks]
    expected_like = [exact.search_like(like, folder=folder, top=5) for folder in (None, "/lib/b")]
    no_whole_matrix(monkeypatch)
    assert [through_index.search_vector(**ask) for ask in asks] == expected
    assert [through_index.search_like(like, folder=folder, top=5) for folder in (None, "/lib/b")] == expected_like
    assert {h.path[:7] for h in through_index.search_vector(queries[0], folder="/lib/a")} == {"/lib/a/"}


def test_ann_file_map_follows_the_index_and_a_stale_one_is_never_used(catalog, monkeypatch, caplog):
    """The map is written with each build under the index file's name (the old one removed); a
    map left from another build where this build's should be is refused (and the catalog read
    instead), so a filter still finds the files added since. Catches a map read without checking
    which build made it: the new file's windows are missing from the filter's bitmap."""
    old = ann.read_info(catalog, "video")
    old_map = (ann.folder(catalog) / ann.files_name(old.file)).read_bytes()
    rng = np.random.default_rng(4)
    added = record(100, rng, folder="a")
    catalog.write_files([added])
    assert ann.update(catalog, "video", min_vectors=1) == "updated"
    new = ann.read_info(catalog, "video")
    names = {p.name for p in ann.folder(catalog).iterdir() if p.name.startswith("video")}
    assert names == {new.file, ann.files_name(new.file), "video.json"}
    (ann.folder(catalog) / ann.files_name(new.file)).write_bytes(old_map)  # another build's map
    monkeypatch.setattr(ann, "ANN_MIN_VECTORS", 0)  # no exact fallback to hide a wrong bitmap
    hits = SearchService(catalog, exact_below=0).search_vector(added.vectors["video"][0], kind="video", top=1,
                                                              folder="/lib/a")
    assert hits[0].path == added.path
    assert "not usable" in caplog.text


def test_ann_update_writes_the_map_an_older_index_lacks(catalog):
    """An index built before the map existed is given one by the next `vlsa index` (update),
    though the index itself is current. Catches update returning 'current' without it, which
    leaves every first filtered query reading every window's file."""
    info = ann.read_info(catalog, "audio")
    path = ann.folder(catalog) / ann.files_name(info.file)
    made = np.load(path)
    path.unlink()
    assert ann.update(catalog, "audio", min_vectors=1) == "current"
    assert np.array_equal(np.load(path), made)
    window_ids, media_ids = catalog.window_files(info.max_window_id)
    runs = np.load(path)  # each window's file, found by its run
    assert np.array_equal(runs[np.searchsorted(runs[:, 0], window_ids, side="right") - 1, 1], media_ids)


def test_catalog_media_filter_takes_a_folder_as_a_path_range(tmp_path):
    """A folder passes the files under it and no other: not a sibling that begins with its name,
    and not a path with a ".." that leads out of it. Catches a range that is the folder's name
    without its "/" (the sibling passes) and the range trusted for a path that is not normal."""
    rng = np.random.default_rng(6)
    names = ["/lib/a/x.mp4", "/lib/ab/y.mp4", "/lib/a/sub/z.mp4", "/lib/a/../b/w.mp4", "/lib/a0.mp4", "/lib/b/v.mp4"]
    with Catalog(tmp_path / "c.db") as catalog:
        catalog.bind(Settings("f" * 16, None, "tiny", E, 2.0, 2.0))
        catalog.write_files([FileRecord(n, 1, 1, 2.0, True, windows=[(0.0, 2.0)], vectors={"video": unit(rng, 1)})
                             for n in names])
        path_of = {m.id: m.path for m in catalog.media()}
        passed = lambda folder: sorted(path_of[i] for i in catalog.media_filter(folder))  # noqa: E731
        assert passed("/lib/a") == passed("/lib/a/") == ["/lib/a/sub/z.mp4", "/lib/a/x.mp4"]
        assert passed("/lib/a/sub") == ["/lib/a/sub/z.mp4"]
        assert passed("/") == sorted(names)
        assert passed("/nowhere") == []


def test_reads_parallel_reads_return_every_existing_row(catalog):
    """The candidates read over several threads are the rows one connection reads, those of ids
    that no longer exist left out. Catches a thread's share lost or read twice."""
    gone = catalog.media()[0]
    ids = np.arange(1, catalog.max_window_id() + 3)  # two ids past the last: no such windows
    catalog.remove_media([gone.path])
    reads = ParallelReads(catalog.path, threads=3)
    for modality in WINDOW_MODALITIES:
        window_ids, media_ids, vectors = reads.load_vectors(modality, ids)
        want = catalog.load_vectors(modality, window_ids=ids)
        order = np.argsort(window_ids)
        assert np.array_equal(window_ids[order], np.sort(want[0]))
        assert np.array_equal(vectors[order], want[2][np.argsort(want[0])])
        assert gone.id not in set(media_ids.tolist())
