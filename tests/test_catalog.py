"""catalog: the store, scanning, windows and the indexer, in-process on generated media."""

import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from mediagen import make_audio, make_truncated, make_video

import catalog.indexer
from catalog import store
from catalog.indexer import Indexer
from catalog.model import load_model, model_for_catalog
from catalog.paths import is_under
from catalog.scan import scan
from catalog.service import SearchService
from catalog.store import Catalog, CatalogError, CheckpointMismatch, FileRecord, SchemaError, Settings
from catalog.windows import plan_windows
from vlsa.api import VLSA

E = 8  # vector width in the store-only tests


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return VLSA.from_preset("tiny").save_pretrained(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def model(checkpoint) -> VLSA:
    return VLSA.from_pretrained(checkpoint)


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """Generated once, copied into each test's library (copies keep their modification times)."""
    folder = tmp_path_factory.mktemp("sources")
    return {
        "av.mp4": make_video(folder / "av.mp4", 5.0),  # 5 s: windows 0-2, 2-4, 4-5
        "silent.mp4": make_video(folder / "silent.mp4", 3.0, audio=False),
        "tone.wav": make_audio(folder / "tone.wav", 1.5, tone_hz=660.0),
    }


def library(folder: Path, sources: dict[str, Path], names=("av.mp4", "silent.mp4", "tone.wav")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(sources[name].read_bytes())
    return folder


def run(catalog: Catalog, model: VLSA, roots, checkpoint=None, rebuild=False, **options):
    indexer = Indexer(catalog, model, checkpoint=str(checkpoint) if checkpoint else None, **options)
    return indexer.run([str(r) for r in roots], rebuild=rebuild)


def settings(**changes) -> Settings:
    base = dict(fingerprint="f" * 16, checkpoint=None, preset="tiny", embed_dim=E, window=2.0, stride=2.0)
    return Settings(**{**base, **changes})


def record(path: str, n: int, seed: int = 0, **fields) -> FileRecord:
    rng = np.random.default_rng(seed)
    windows = [(2.0 * i, 2.0 * i + 2.0) for i in range(n)]
    return FileRecord(path, size=100, mtime_ns=1, duration=2.0 * n, has_audio=True, windows=windows,
                      vectors={"audio": rng.standard_normal((n, E)).astype(np.float32)}, **fields)


def rows(catalog: Catalog, table: str) -> list[tuple]:
    return catalog.db.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()


# --- store ---


def test_store_creates_schema_in_wal_mode(tmp_path):
    with Catalog(tmp_path / "c.db") as catalog:
        assert catalog.schema_version() == store.SCHEMA_VERSION == 2
        assert catalog.db.journal_mode == "wal"
        assert set(catalog.db.table_names()) == {"meta", "media", "windows", "embeddings"}
    with Catalog(tmp_path / "c.db") as catalog:  # reopening migrates nothing
        assert catalog.schema_version() == 2 and catalog.settings is None


def test_store_migrates_a_v1_catalog_keeping_its_rows_without_identity(tmp_path, monkeypatch):
    """A catalog written before files had a device and inode (schema 1) opens for the indexer,
    keeps its rows with no identity (dev, ino None), and records one for files written since; a
    reader (the app) refuses it until the indexer has migrated it. Catches a migration step left
    out of MIGRATIONS (the v1 file then has no dev column) and identities that do not round-trip."""
    with monkeypatch.context() as m:  # the catalog an older vlsa made
        m.setattr(store, "SCHEMA_VERSION", 1)
        with Catalog(tmp_path / "old.db") as catalog:
            catalog.bind(settings())
            catalog.db.execute("INSERT INTO media (path, size, mtime_ns, status) VALUES (?, 5, 7, 'ok')",
                               [b"/old.wav"])
    with pytest.raises(SchemaError, match="run `vlsa index` on it"):
        Catalog(tmp_path / "old.db", read_only=True)
    with Catalog(tmp_path / "old.db") as catalog:
        assert catalog.schema_version() == 2
        assert catalog.indexed_stat("/old.wav") == (5, 7, None, None)
        catalog.write_files([FileRecord("/new.wav", 1, 2, dev=3, ino=2**64 - 1)])  # the top bit set
        assert catalog.indexed_stat("/new.wav") == (1, 2, 3, 2**64 - 1)
        assert catalog.file_record("/new.wav").ino == 2**64 - 1


def test_store_new_catalogs_have_16k_pages_and_old_ones_keep_theirs(tmp_path, monkeypatch):
    """A new catalog is made with PAGE_SIZE pages (a 512-dim vector row, 2 KB, fits 7 to a page
    instead of one to a 4 KB page); a file made with 4 KB pages keeps them and is still written.

    Catches: the page size set after the first table (SQLite ignores it then) or not at all, and
    an attempt to change an existing file's page size that breaks it."""
    with Catalog(tmp_path / "new.db") as catalog:
        assert catalog.db.execute("PRAGMA page_size").fetchone()[0] == store.PAGE_SIZE == 16384
    with monkeypatch.context() as m:  # a catalog as an older vlsa made it, with SQLite's default
        m.setattr(store, "PAGE_SIZE", 4096)
        Catalog(tmp_path / "old.db").close()
    with Catalog(tmp_path / "old.db") as catalog:
        catalog.bind(settings())
        catalog.write_files([record("/a.wav", 3)])
        assert catalog.db.execute("PRAGMA page_size").fetchone()[0] == 4096
        assert catalog.stats()["audio_vectors"] == 3


def test_store_refuses_what_is_not_a_catalog(tmp_path):
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all, " * 100)
    with pytest.raises(SchemaError, match="not a VLSA catalog"):
        Catalog(tmp_path / "junk.db")
    conn = sqlite3.connect(tmp_path / "other.db")
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.close()
    with pytest.raises(SchemaError, match="not a VLSA catalog"):
        Catalog(tmp_path / "other.db")
    with Catalog(tmp_path / "new.db") as catalog:
        catalog.db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaError, match="newer"):
        Catalog(tmp_path / "new.db")
    with pytest.raises(CatalogError, match="no catalog"):
        Catalog(tmp_path / "missing.db", create=False)


def test_store_replaces_a_files_rows_in_one_transaction(tmp_path):
    with Catalog(tmp_path / "c.db") as catalog:
        catalog.bind(settings())
        catalog.write_files([record("/lib/a.wav", 3), record("/lib/b.wav", 1)])
        (a,) = [m for m in catalog.media() if m.path == "/lib/a.wav"]
        before = rows(catalog, "embeddings")
        broken = record("/lib/c.wav", 2)
        broken.vectors["audio"] = broken.vectors["audio"][:1]  # one vector for two windows
        with pytest.raises(CatalogError, match="1 audio vectors for 2 windows"):
            catalog.write_files([record("/lib/a.wav", 2, seed=1), broken])
        assert rows(catalog, "embeddings") == before and len(catalog.windows(a.id)) == 3  # all rolled back
        catalog.write_files([record("/lib/a.wav", 2, seed=1)])
        again = catalog.media_by_id(a.id)  # same id, new rows
        assert again.path == "/lib/a.wav" and [w.end for w in catalog.windows(a.id)] == [2.0, 4.0]
        first = catalog.windows(a.id)[0]
        assert np.array_equal(catalog.embedding(first.id, "audio"), record("/lib/a.wav", 2, seed=1).vectors["audio"][0])
        assert catalog.embedding(first.id, "video") is None and first.modalities == ("audio",)


def test_store_keeps_non_utf8_paths_losslessly(tmp_path):
    path = os.fsdecode(b"/lib/caf\xe9 \xff.wav")
    with Catalog(tmp_path / "c.db") as catalog:
        catalog.bind(settings())
        catalog.write_files([record(path, 1)])
        (media,) = catalog.media()
        assert media.path == path and os.fsencode(media.path) == b"/lib/caf\xe9 \xff.wav"
        assert media.display_path == "/lib/caf\ufffd \ufffd.wav"
        assert catalog.known_files() == {path: (100, 1)}
        assert catalog.remove_media([path]) == 1 and catalog.media() == []


def test_store_bind_refuses_another_checkpoint_unless_rebuild(tmp_path):
    with Catalog(tmp_path / "c.db") as catalog:
        catalog.bind(settings())
        catalog.write_files([record("/lib/a.wav", 2)])
        catalog.bind(settings(checkpoint="/moved/copy"))  # same weights elsewhere: fine
        with pytest.raises(CheckpointMismatch, match="another checkpoint.*--rebuild"):
            catalog.bind(settings(fingerprint="0" * 16))
        with pytest.raises(CheckpointMismatch, match="window 2 s"):
            catalog.bind(settings(window=4.0))
        assert catalog.stats()["windows"] == 2
        catalog.bind(settings(fingerprint="0" * 16), rebuild=True)
        assert catalog.stats()["windows"] == 0 and catalog.settings.fingerprint == "0" * 16


# --- scan and windows ---


@pytest.mark.parametrize(("path", "folder", "under"), [
    ("/a/b", "/a", True), ("/a", "/a/", True), ("/ab", "/a", False), ("/a/../b", "/a", False),
    ("/a\udcff/b", "/a\udcff", True), ("/x", "/", True), ("//x", "/", True), ("/x", "//", True),
    ("//a/b", "/a", False),
])
def test_paths_is_under_compares_whole_components(path, folder, under):
    """Catches a prefix test on text ("/ab" under "/a"), paths compared before being made
    absolute, and a root that leaves out paths spelled from "//"."""
    assert is_under(path, folder) is under


def test_scan_keeps_media_skips_hidden_and_tool_folders(tmp_path):
    for rel in ["b.MP4", "a.wav", "notes.txt", ".hidden.mp3", ".git/x.wav", "node_modules/y.wav",
                "sub/.cache/z.mp4", "sub/c.flac", "sub/deeper/d.ogg"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = scan([tmp_path])
    assert [Path(f.path).relative_to(tmp_path).as_posix() for f in found.files] == [
        "a.wav", "b.MP4", "sub/c.flac", "sub/deeper/d.ogg"]
    assert found.skipped == [] and all(f.size == 1 for f in found.files)


def test_scan_survives_link_loops_and_duplicates(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.wav").write_bytes(b"x")
    (tmp_path / "sub" / "up").symlink_to(tmp_path)  # a folder link back to an ancestor
    (tmp_path / "self.mp4").symlink_to(tmp_path / "self.mp4")  # a link to itself
    (tmp_path / "ping").symlink_to(tmp_path / "pong")
    (tmp_path / "pong").symlink_to(tmp_path / "ping")
    (tmp_path / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    (tmp_path / "same.wav").symlink_to(tmp_path / "sub" / "a.wav")  # a second name for one file
    found = scan([tmp_path, tmp_path / "sub"])
    assert [Path(f.path).name for f in found.files] == ["same.wav"]  # a.wav is the same inode
    reasons = {Path(p).name: r for p, r in found.skipped}
    assert reasons == {"self.mp4": "symbolic link loop", "ping": "symbolic link loop",
                       "pong": "symbolic link loop", "gone.wav": "broken symbolic link"}


@pytest.mark.parametrize("duration, window, stride, expected", [
    (5.0, 2.0, 2.0, [(0, 2), (2, 4), (4, 5)]),
    (4.3, 2.0, 2.0, [(0, 2), (2, 4)]),  # a 0.3 s tail is dropped
    (0.2, 2.0, 2.0, [(0, 0.2)]),  # shorter than a window: one window
    (4.0, 2.0, 1.0, [(0, 2), (1, 3), (2, 4)]),
    (0.0, 2.0, 2.0, []),
])
def test_plan_windows(duration, window, stride, expected):
    assert plan_windows(duration, window, stride) == [(float(a), float(b)) for a, b in expected]


# --- indexer ---


def test_indexer_vectors_match_the_model_api(tmp_path, model, sources):
    """Windows decoded as a stream and embedded in padded batches give what embed_video and
    embed_audio give for (path, start, start + window)."""
    lib = library(tmp_path / "lib", sources, ["av.mp4"])
    with Catalog(tmp_path / "c.db") as catalog:
        report = run(catalog, model, [lib])
        assert report.indexed == 1 and report.windows == 3
        (media,) = catalog.media()
        windows = catalog.windows(media.id)
        items = [(media.path, w.start, w.start + 2.0) for w in windows]
        for modality, embed in (("video", model.embed_video), ("audio", model.embed_audio)):
            stored = np.stack([catalog.embedding(w.id, modality) for w in windows])
            assert np.allclose(stored, embed(items).numpy(), atol=1e-5), modality


def test_indexer_embeds_the_tracks_each_file_has(tmp_path, model, sources):
    lib = library(tmp_path / "lib", sources)
    with Catalog(tmp_path / "c.db") as catalog:
        run(catalog, model, [lib])
        tracks = {Path(m.path).name: (m.has_video, m.has_audio, {mod for w in catalog.windows(m.id)
                                                                   for mod in w.modalities}) for m in catalog.media()}
    assert tracks == {"av.mp4": (True, True, {"video", "audio"}), "silent.mp4": (True, False, {"video"}),
                      "tone.wav": (False, True, {"audio"})}


def test_indexer_warms_the_model_before_its_progress_bar(tmp_path, model, sources, monkeypatch):
    """The first bar of `vlsa demo` said `1/113 [00:07<13:49]` for a 30-second job: catches the
    model's first (slow) call made inside the bar, where it counts as the first file's time, and
    files written together counted one update each (tqdm draws the first of a burst alone)."""
    events = []

    class Bar(catalog.indexer.tqdm):
        def __init__(self, *args, **kwargs):
            events.append("bar")
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            events.append(("update", n))
            return super().update(n)

    def embed_decoded(modality, x, batch_size=None):
        events.append(("embed", modality))
        return VLSA.embed_decoded(model, modality, x, batch_size)

    monkeypatch.setattr(catalog.indexer, "tqdm", Bar)
    monkeypatch.setattr(model, "embed_decoded", embed_decoded)
    with Catalog(tmp_path / "c.db") as cat:
        run(cat, model, [library(tmp_path / "lib", sources)], progress=True)
    assert events[:3] == [("embed", "video"), ("embed", "audio"), "bar"], events
    assert [e for e in events if e[0] == "update"] == [("update", 3)]  # 6 windows: one batch for all 3 files


def test_indexer_is_incremental(tmp_path, model, sources):
    lib = library(tmp_path / "lib", sources)
    with Catalog(tmp_path / "c.db") as catalog:
        first = run(catalog, model, [lib])
        assert (first.indexed, first.windows) == (3, 6)
        before = rows(catalog, "embeddings")
        again = run(catalog, model, [lib])
        assert (again.indexed, again.windows, again.unchanged) == (0, 0, 3)
        assert rows(catalog, "embeddings") == before
        # Touch one file: only it is embedded again; the others keep their rows.
        tone = next(m for m in catalog.media() if m.path.endswith("tone.wav"))
        old = {w.id for w in catalog.windows(tone.id)}
        st = os.stat(lib / "tone.wav")
        os.utime(lib / "tone.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        touched = run(catalog, model, [lib])
        assert (touched.indexed, touched.windows, touched.unchanged) == (1, 1, 2)
        new = {w.id for w in catalog.windows(tone.id)}  # same media id, new window rows
        assert catalog.media_by_id(tone.id).mtime_ns == st.st_mtime_ns + 10**9
        after = rows(catalog, "embeddings")
        assert [r for r in after if r[0] not in new] == [r for r in before if r[0] not in old]
        # Delete one: it leaves the catalog and the results.
        (lib / "silent.mp4").unlink()
        gone = run(catalog, model, [lib])
        assert (gone.removed, gone.indexed) == (1, 0)
        hits = SearchService(catalog, model).search_text("a red square", top=100)
        assert hits and not any(h.path.endswith("silent.mp4") for h in hits)
        assert catalog.stats() == {"media_ok": 2, "media_failed": 0, "windows": 4, "video_vectors": 3,
                                   "audio_vectors": 4}


def test_indexer_records_what_it_cannot_decode(tmp_path, model, sources):
    lib = library(tmp_path / "lib", sources, ["tone.wav"])
    (lib / "empty.mp4").write_bytes(b"")
    make_truncated(sources["av.mp4"], lib / "truncated.mp4", 0.5)
    (lib / "letter.mp3").write_text("Dear reader, this is not a sound.\n" * 20)
    name = os.fsdecode(bytes(lib) + b"/caf\xe9.wav")  # not UTF-8
    with open(name, "wb") as f:
        f.write(sources["tone.wav"].read_bytes())
    (lib / "loop.wav").symlink_to(lib / "loop.wav")
    with Catalog(tmp_path / "c.db") as catalog:
        report = run(catalog, model, [lib])
        assert report.indexed == 2 and report.skipped == [(str(lib / "loop.wav"), "symbolic link loop")]
        errors = {Path(p).name: e for p, e in report.failed}
        assert set(errors) == {"empty.mp4", "truncated.mp4", "letter.mp3"}
        assert "empty file" in errors["empty.mp4"]
        for error in errors.values():
            assert "\n" not in error and error.startswith(str(lib))
        failed = {Path(m.path).name: m.error for m in catalog.media(status="failed")}
        assert failed == errors
        ok = {m.path for m in catalog.media(status="ok")}
        assert ok == {str(lib / "tone.wav"), name}
        assert run(catalog, model, [lib]).indexed == 0 and not run(catalog, model, [lib]).failed


def test_indexer_refuses_another_checkpoint(tmp_path, model, checkpoint, sources):
    lib = library(tmp_path / "lib", sources, ["tone.wav"])
    with Catalog(tmp_path / "c.db") as catalog:
        run(catalog, model, [lib], checkpoint=checkpoint)
        assert model_for_catalog(catalog).fingerprint() == model.fingerprint()
        other, _ = load_model(preset="tiny")
        with torch.no_grad():
            other.logit_scale.add_(1.0)  # any change to the weights is another checkpoint
        with pytest.raises(CheckpointMismatch, match="--rebuild"):
            run(catalog, other, [lib])
        assert run(catalog, other, [lib], rebuild=True).indexed == 1
        with pytest.raises(CheckpointMismatch):
            model_for_catalog(catalog, checkpoint)


def test_indexer_three_hour_video_by_minute_windows(tmp_path, model):
    """A 3-hour file is decoded as a stream (here 1 fps at 16x16, one window a minute)."""
    long = make_video(tmp_path / "long.mp4", 3 * 3600, fps=1, size=(16, 16), audio=False)
    with Catalog(tmp_path / "c.db") as catalog:
        report = run(catalog, model, [long], window=60.0)
        assert report.windows == 180 and not report.failed
        windows = catalog.windows(catalog.media()[0].id)
        assert windows[-1].end == pytest.approx(10800.0) and windows[1].start == 60.0


def test_a_catalog_is_used_only_on_the_thread_that_opened_it(tmp_path):
    """The app's one threading rule (catalog/store.py, Catalog): SQLite itself refuses a
    connection used from another thread. Catches check_same_thread=False coming back, which let
    the app's worker threads share the connection behind a lock instead."""
    with Catalog(tmp_path / "c.db") as catalog, ThreadPoolExecutor(max_workers=1) as other:
        assert catalog.stats()["media_ok"] == 0
        with pytest.raises(sqlite3.ProgrammingError, match="thread"):
            other.submit(catalog.stats).result()
