"""The approximate index beside the catalog (catalog/ann.py), forced on tiny catalogs.

Every test builds the index at any size (`update(..., min_vectors=1)`) and searches through it
(`exact_below=0`), and compares with the exact scan of the same catalog (`exact_below=None`),
which is the truth the index must never contradict.
"""

import json

import numpy as np
import pytest

from catalog import ann
from catalog.service import SearchService
from catalog.store import Catalog, FileRecord, Settings

E = 16
WINDOWS = 6  # per file


def unit(rng, n: int) -> np.ndarray:
    v = rng.standard_normal((n, E)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def record(i: int, vectors: np.ndarray, folder: str | None = None) -> FileRecord:
    """File i, in folder a or b by parity, its duration growing with i (the duration filters cut it)."""
    n = len(vectors)
    return FileRecord(f"/lib/{folder or 'ab'[i % 2]}/f{i:03d}.mp4", 1, i, duration=float(n + i), has_video=True,
                      windows=[(2.0 * k, 2.0 * k + 2.0) for k in range(n)], vectors={"video": vectors})


@pytest.fixture
def catalog(tmp_path):
    rng = np.random.default_rng(3)
    with Catalog(tmp_path / "c.db") as catalog:
        catalog.bind(Settings("f" * 16, None, "tiny", E, 2.0, 2.0))
        catalog.write_files([record(i, unit(rng, WINDOWS)) for i in range(80)])
        assert ann.update(catalog, "video", min_vectors=1) == "built"
        yield catalog


def approximate(catalog: Catalog) -> SearchService:
    service = SearchService(catalog, exact_below=0)
    assert service.ann("video") is not None
    return service


def assert_same_hits(catalog: Catalog, queries, **options) -> None:
    through_index, exact = approximate(catalog), SearchService(catalog, exact_below=None)
    for q in queries:
        assert through_index.search_vector(q, kind="video", **options) == exact.search_vector(q, kind="video", **options)


def test_ann_never_returns_deleted_or_changed_windows(catalog):
    """A file re-indexed with new vectors (the last one written, whose window ids SQLite's
    MAX(id) + 1 would hand out again) and a removed file: their old windows, which the index
    still holds, are never returned; the new vectors are found at once.

    Catches: candidates not checked against the live catalog (the old windows come back), window
    ids reused by the store (the re-indexed file's new windows pass for the old ones, unchanged,
    and are not found), and the delta above the index's last id not searched."""
    changed, removed = catalog.media()[-1], catalog.media()[0]
    old = {w.id: catalog.embedding(w.id, "video") for m in (changed, removed) for w in catalog.windows(m.id)}
    new_vectors = unit(np.random.default_rng(9), WINDOWS)
    catalog.write_files([record(79, new_vectors)])
    catalog.remove_media([removed.path])
    service = approximate(catalog)
    for vector in old.values():  # each old vector as the query: the index ranks its old window first
        hits = service.search_vector(vector, kind="video", top=5)
        assert not {h.window_id for h in hits} & old.keys()
    for vector in new_vectors:
        best = service.search_vector(vector, kind="video", top=1)[0]
        assert best.path == changed.path and best.score == pytest.approx(1.0)
    assert_same_hits(catalog, [*old.values(), *new_vectors], top=5)


def test_ann_service_follows_a_catalog_changed_while_it_runs(catalog):
    """One service, kept open while another connection adds and removes files and then brings
    the index up to date: each query sees the catalog as it is at that moment.

    Catches: the index and its delta cached without the catalog's generation (new files are not
    found, removed ones come back), an `update` that does not add the delta to the index, and one
    that rewrites the whole file when windows were only removed."""
    service = approximate(catalog)
    rng = np.random.default_rng(5)
    added = unit(rng, WINDOWS)
    gone = catalog.media()[10]
    gone_vector = catalog.embedding(catalog.windows(gone.id)[0].id, "video")
    assert service.search_vector(gone_vector, kind="video", top=1)[0].media_id == gone.id
    with Catalog(catalog.path) as writer:  # as `vlsa index` would, in another process
        writer.write_files([record(100, added)])
        writer.remove_media([gone.path])
        assert service.search_vector(added[0], kind="video", top=1)[0].path.endswith("f100.mp4")
        assert gone.id not in {h.media_id for h in service.search_vector(gone_vector, kind="video", top=10)}
        assert ann.update(writer, "video", min_vectors=1) == "updated"
    index = service.ann("video")
    assert len(index.delta) == 0 and index.info.count == 81 * WINDOWS
    assert service.search_vector(added[1], kind="video", top=1)[0].path.endswith("f100.mp4")
    assert_same_hits(catalog, [added[2], gone_vector], top=10)
    file = index.info.file
    catalog.remove_media([catalog.media()[-1].path])  # only a removal: the index file is kept
    assert ann.update(catalog, "video", min_vectors=1) == "updated"
    assert service.ann("video").info.file == file
    assert service.ann("video").info.generation == catalog.generation()
    assert_same_hits(catalog, [added[3]], top=10)


def test_cached_filters_follow_the_catalog_and_the_filter(catalog, monkeypatch):
    """Through the index and through the exact scan, one service kept open: a folder filter's
    files (and the index's bitmap of their windows) are cached, yet a file written into the folder
    by another connection is found with the same filter at the next query, and another folder
    gets its own hits.

    Catches: the files cached on the filter without the catalog's generation (the new file is
    filtered out), and either cache keyed without the filter (the other folder gets the first's
    files, or through the index the first's bitmap: no hits, where the exact fallback is off)."""
    rng = np.random.default_rng(11)
    services = {"approximate": approximate(catalog), "exact": SearchService(catalog, exact_below=None)}
    queries = unit(rng, 3)
    before = {name: service.search_vector(queries[0], kind="video", top=5, folder="/lib/a")
              for name, service in services.items()}
    assert before["approximate"] == before["exact"] and {h.path[:7] for h in before["exact"]} == {"/lib/a/"}
    added = unit(rng, WINDOWS)
    with Catalog(catalog.path) as writer:  # as `vlsa index` would, in another process
        writer.write_files([record(101, added, folder="a")])
    for name, service in services.items():
        assert service.search_vector(added[0], kind="video", top=1, folder="/lib/a")[0].path == "/lib/a/f101.mp4", name
    monkeypatch.setattr(ann, "ANN_MIN_VECTORS", 0)  # no exact fallback to hide a wrong bitmap
    for folder in ("/lib/a", "/lib/b"):
        hits = {name: [service.search_vector(q, kind="video", top=5, folder=folder) for q in queries]
                for name, service in services.items()}
        assert hits["approximate"] == hits["exact"]
        assert {h.path[:7] for found in hits["exact"] for h in found} == {folder + "/"}


def test_ann_killed_build_leaves_the_old_index_usable(catalog, monkeypatch):
    """A build that dies while writing the index file: the JSON still names the old, complete
    file, which the next search reads, and nothing half-written is left behind.

    Catches: writing the index file in place or the JSON before the file (the old index is
    overwritten or the JSON names a file that is not whole)."""
    before = (ann.folder(catalog) / "video.json").read_text()
    catalog.write_files([record(200, unit(np.random.default_rng(6), WINDOWS))])
    faiss = ann._faiss()
    real_write = faiss.write_index

    def dies_mid_write(index, path):
        real_write(index, path)
        with open(path, "r+b") as f:
            f.truncate(100)  # what a kill in the middle leaves
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(faiss, "write_index", dies_mid_write)
    monkeypatch.setattr(ann, "REBUILD_GROWTH", 0.0)  # a full rebuild: writes a new file
    with pytest.raises(KeyboardInterrupt):
        ann.update(catalog, "video", min_vectors=1)
    monkeypatch.undo()
    assert (ann.folder(catalog) / "video.json").read_text() == before
    info = json.loads(before)
    assert sorted(p.name for p in ann.folder(catalog).iterdir()) == sorted(
        [info["file"], ann.files_name(info["file"]), "video.json"])
    assert approximate(catalog).ann("video").info.generation == info["generation"]
    assert_same_hits(catalog, unit(np.random.default_rng(7), 10), top=5)


def test_ann_filters_agree_with_exact_search(catalog, monkeypatch):
    """Folder, duration, per-file, several query rows and `search_like`'s own window left out,
    through the index: the same hits as the exact scan, including a filter so narrow that the
    lists the index probes hold too few of its windows, and its subset is scanned exactly.

    Catches: a filter applied to the candidates only, after the index chose them (16 candidates
    hold too few of a tenth of the windows), per-file taken before the filters, and the exact fallback
    missing (with one list probed of the four, the file's windows in other lists are lost)."""
    queries = unit(np.random.default_rng(8), 12)
    for options in ({"folder": "/lib/a"}, {"min_duration": 60.0}, {"max_duration": 20.0},
                    {"per_file": True}, {"per_file": True, "folder": "/lib/b"}):
        assert_same_hits(catalog, queries, top=6, **options)
    assert_same_hits(catalog, [queries[:3]], top=6)  # a sound's several windows
    window = catalog.windows(catalog.media()[3].id)[0].id
    through_index, exact = approximate(catalog), SearchService(catalog, exact_below=None)
    assert through_index.search_like(window, kind="video") == exact.search_like(window, kind="video")
    with monkeypatch.context() as m:  # the filter inside the scan alone: no exact fallback, few candidates
        m.setattr(ann, "ANN_MIN_VECTORS", 0)
        m.setattr(ann, "MAX_FETCH", 16)
        assert_same_hits(catalog, queries, top=4, max_duration=float(WINDOWS + 7))  # files 0-7: 48 of 480 windows
    monkeypatch.setattr(ann, "NPROBE", 1)
    assert_same_hits(catalog, queries, top=10, max_duration=float(WINDOWS))  # file 0 only: 6 windows


@pytest.mark.parametrize("update_index", [False, True], ids=["delta", "updated"])
def test_ann_service_survives_a_file_added_then_deleted(catalog, update_index):
    """One search service, on its own read-only connection like the app's, open throughout while
    the indexer adds a file, a search finds it, the indexer deletes it, and the next search runs:
    that search neither raises nor returns the deleted file, and gives the exact scan's hits.
    `delta`: the index left as it was (the added file is in the delta only); `updated`: `vlsa
    index` brings the index up to date after each write.

    Catches: the delta reloaded only when the highest window id grows (a deletion leaves it
    where it was, the stale delta offers the deleted window: KeyError, or without that a hit short
    of the exact scan's)."""
    reader = Catalog(catalog.path, read_only=True)
    service = SearchService(reader, exact_below=0)
    added = unit(np.random.default_rng(12), WINDOWS)
    with Catalog(catalog.path) as writer:  # as `vlsa index` would, in another process
        writer.write_files([record(100, added)])
        if update_index:
            assert ann.update(writer, "video", min_vectors=1) == "updated"
        assert service.search_vector(added[0], kind="video", top=5)[0].path == "/lib/a/f100.mp4"
        writer.remove_media(["/lib/a/f100.mp4"])  # one file of the folder's 41
        if update_index:
            assert ann.update(writer, "video", min_vectors=1) == "updated"
    for query in added:
        hits = service.search_vector(query, kind="video", top=5)
        assert "/lib/a/f100.mp4" not in {h.path for h in hits}
        assert hits == SearchService(catalog, exact_below=None).search_vector(query, kind="video", top=5)
    reader.close()


@pytest.mark.parametrize("exact_below", [0, None], ids=["approximate", "exact"])
def test_search_survives_a_hit_deleted_mid_search(catalog, exact_below):
    """A file deleted by the indexer after the search scored the vectors and before it read the
    hits' rows (a live race: the two are separate reads of a catalog another process writes):
    the search neither raises nor returns it, and gives the hits of the catalog as it is after.

    Catches: a hit's row looked up as if it must exist (KeyError on today's window that went), and
    the gone hit dropped without searching again (one hit short of the exact scan's)."""
    reader = Catalog(catalog.path, read_only=True)
    service = SearchService(reader, exact_below=exact_below)
    victim = catalog.media()[5]
    query = catalog.embedding(catalog.windows(victim.id)[0].id, "video")
    assert service.search_vector(query, kind="video", top=5)[0].media_id == victim.id  # caches loaded
    real_hits_info = service.catalog.hits_info

    def deleted_first(window_ids):
        with Catalog(catalog.path) as writer:
            writer.remove_media([victim.path])
        return real_hits_info(window_ids)

    service.catalog.hits_info = deleted_first
    hits = service.search_vector(query, kind="video", top=5)
    assert victim.id not in {h.media_id for h in hits}
    assert hits == SearchService(catalog, exact_below=None).search_vector(query, kind="video", top=5)
    reader.close()
