"""Data safety of `vlsa index` and `vlsa search`: what indexing may remove, what may be stored,
what a bad option or query file gives, and that searching never writes.

Each test names in its docstring the mistake it catches. The CLI tests run `vlsa.cli.main` in
process (the console entry point, with its one-line error handling), which is what the
subprocess would run, at a fraction of the start-up cost.
"""

import ctypes
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mediagen import make_audio, make_float_wav, make_video

from catalog import scan as scan_module
from catalog.indexer import Indexer
from catalog.model import seeded_preset
from catalog.service import SearchService
from catalog.store import Catalog, CatalogError, FileRecord, SchemaError, Settings
from vlsa import sqlitevec
from vlsa.cli import main
from vlsa.media import MediaError

VLSA_BIN = Path(sys.executable).with_name("vlsa")
RATE = 16000
PR_CAPBSET_DROP = 24  # prctl option, linux/prctl.h


@pytest.fixture(scope="module")
def model():
    return seeded_preset("tiny")


def tone(path: Path, hz: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return make_audio(path, 1.0, tone_hz=hz)


def index(db: Path, model, roots, **options):
    with Catalog(db) as catalog:
        return Indexer(catalog, model).run([str(r) for r in roots], **options)


def paths(db: Path) -> set[str]:
    with Catalog(db) as catalog:
        return {m.path for m in catalog.media()}


def vlsa(capsys, monkeypatch, *args) -> tuple[int, str, str]:
    """Run the `vlsa` console entry point in process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["vlsa", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code in (1, 2) and "Traceback" not in err, err
    assert code == 2 or len(lines) == 1, err  # usage errors add a "Try --help" line
    return lines[-1]


# --- 5: indexing removes only what it saw gone -------------------------------------------------


def test_indexer_keeps_files_behind_a_link_to_a_drive_that_is_gone(tmp_path, model):
    """Catches: rows of a library subfolder that is a link to an unmounted drive being deleted
    (the scan reports the dangling link, then everything under it counted as gone)."""
    lib, drive = tmp_path / "lib", tmp_path / "drive"
    tone(lib / "home.wav")
    tone(drive / "far.wav", 660.0)
    (lib / "usb").symlink_to(drive)
    db = tmp_path / "c.db"
    assert index(db, model, [lib]).indexed == 2
    drive.rename(tmp_path / "unplugged")
    report = index(db, model, [lib])
    assert report.removed == 0 and paths(db) == {str(lib / "home.wav"), str(lib / "usb" / "far.wav")}
    assert [(Path(p).name, r) for p, r in report.skipped] == [("usb", "broken symbolic link")]
    (lib / "usb").unlink()  # the link itself gone from a folder that was read: its files leave
    assert index(db, model, [lib]).removed == 1 and paths(db) == {str(lib / "home.wav")}


def test_indexer_keeps_files_of_a_folder_it_cannot_read(tmp_path, model, monkeypatch):
    """Catches: an unreadable subfolder's rows being deleted. Tests run as root, where chmod 000
    does not stop reading, so the folder's listing fails through a patched os.scandir."""
    lib = tmp_path / "lib"
    tone(lib / "a.wav")
    tone(lib / "locked" / "b.wav", 660.0)
    db = tmp_path / "c.db"
    index(db, model, [lib])
    real = os.scandir

    def scandir(path):
        if Path(path) == lib / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(scan_module.os, "scandir", scandir)
    report = index(db, model, [lib])
    assert report.removed == 0 and len(paths(db)) == 2
    assert [(Path(p).name, r) for p, r in report.skipped] == [("locked", "permission denied")]


@pytest.mark.parametrize("how", ["emptied", "missing"])
def test_indexer_refuses_an_empty_or_missing_root_unless_prune(tmp_path, model, how):
    """Catches: an unmounted drive's mount point (an empty folder) or a root that is gone
    wiping its files from the catalog without a word."""
    mount = tmp_path / "mnt"
    tone(mount / "a.wav")
    tone(mount / "sub" / "b.wav", 660.0)
    db = tmp_path / "c.db"
    index(db, model, [mount])
    for f in (mount / "a.wav", mount / "sub" / "b.wav"):
        f.unlink()
    (mount / "sub").rmdir()
    if how == "missing":
        mount.rmdir()
    with pytest.raises(CatalogError, match="--prune") as info:
        index(db, model, [mount])
    assert str(mount) in str(info.value) and "2 catalogued files" in str(info.value)
    assert len(paths(db)) == 2
    assert index(db, model, [mount], prune=True).removed == 2 and paths(db) == set()


def test_cli_index_refuses_to_empty_a_subfolder_unless_prune(tmp_path, model, capsys, monkeypatch):
    """A drive mounted below a library root, not mounted: its folder is there and empty. Catches
    the re-index removing that folder's files ("2 removed", exit 0) because only roots were
    protected: refused in one line naming the folder, the catalog unchanged; --prune removes."""
    lib = tmp_path / "lib"
    for name, hz in (("a.wav", 440.0), ("b.wav", 550.0), ("drive/c.wav", 660.0), ("drive/d.wav", 770.0)):
        tone(lib / name, hz)
    db = tmp_path / "c.db"
    index(db, model, [lib])
    with Catalog(db) as catalog:
        before = (catalog.generation(), paths(db))
    for name in ("c.wav", "d.wav"):
        (lib / "drive" / name).unlink()
    code, _, err = vlsa(capsys, monkeypatch, "index", lib, "--db", db, "--preset", "tiny", "-q")
    line = one_line_error(code, err)
    assert code == 1 and str(lib / "drive") in line and "--prune" in line, line
    with Catalog(db) as catalog:
        assert (catalog.generation(), paths(db)) == before
    code, _, err = vlsa(capsys, monkeypatch, "index", lib, "--db", db, "--preset", "tiny", "-q", "--prune")
    assert code == 0 and "2 removed" in err and paths(db) == {str(lib / "a.wav"), str(lib / "b.wav")}


def test_indexer_refuses_to_remove_most_of_the_catalog_unless_prune(tmp_path, model):
    """Catches a re-index removing more than MAX_REMOVED_SHARE of the catalog in one go (files
    straight under a root, so no folder is emptied) without --prune, as rsync --max-delete
    refuses."""
    lib = tmp_path / "lib"
    for i in range(5):
        tone(lib / f"{i}.wav", 300.0 + 100 * i)
    db = tmp_path / "c.db"
    index(db, model, [lib])
    for i in range(3):
        (lib / f"{i}.wav").unlink()
    with pytest.raises(CatalogError, match=r"would remove 3 of the catalog's 5 files.*--prune"):
        index(db, model, [lib])
    assert len(paths(db)) == 5
    assert index(db, model, [lib], prune=True).removed == 3 and len(paths(db)) == 2


def test_indexer_removes_a_deleted_file_without_prune(tmp_path, model):
    """The guards above must not stop an ordinary re-index: a file deleted among others, the only
    file of a subfolder, and a subfolder's files renamed leave the catalog without --prune.
    Catches guards that refuse every removal, that take a folder of one file for an unmounted
    drive, or a folder that still holds media for an emptied one."""
    lib = tmp_path / "lib"
    for i in range(6):
        tone(lib / f"{i}.wav", 300.0 + 100 * i)
    for name in ("one/x.wav", "two/p.wav", "two/q.wav"):
        tone(lib / name, 900.0)
    db = tmp_path / "c.db"
    index(db, model, [lib])
    (lib / "0.wav").unlink()
    (lib / "one" / "x.wav").unlink()
    for old, new in (("p", "r"), ("q", "s")):
        (lib / "two" / f"{old}.wav").rename(lib / "two" / f"{new}.wav")
    report = index(db, model, [lib])
    assert (report.removed, report.indexed) == (4, 2)
    assert paths(db) == {*(str(lib / f"{i}.wav") for i in range(1, 6)), str(lib / "two/r.wav"), str(lib / "two/s.wav")}


# A process that holds a catalog's indexing lock until it is killed, with a forked child (as the
# indexer's decode workers are) that outlives it for a while.
HOLD_INDEX_LOCK = """
import os, sys, time
from catalog.lock import indexing
with indexing(sys.argv[1], "vlsa index"):
    child = os.fork()
    if child == 0:
        time.sleep(60)
        os._exit(0)
    print("locked", child, flush=True)
    time.sleep(300)
"""


def test_cli_index_refuses_a_second_indexer_until_the_first_is_killed(tmp_path, capsys, monkeypatch):
    """Catches two indexers running on one catalog (the first then dies "database is locked"
    after all its work): the second is refused at start in one line naming the first's pid, and
    after a kill -9 of the first (no clean-up runs) a new one indexes: the lock is not stale, nor
    held on by the killed indexer's forked children (its decode workers outlive it a while)."""
    tone(tmp_path / "lib" / "a.wav")
    db = tmp_path / "c.db"
    first = subprocess.Popen([sys.executable, "-c", HOLD_INDEX_LOCK, str(db)], stdout=subprocess.PIPE, text=True)
    said, child = first.stdout.readline().split(), None
    try:
        assert said[0] == "locked"
        child = int(said[1])
        code, _, err = vlsa(capsys, monkeypatch, "index", tmp_path / "lib", "--db", db, "--preset", "tiny", "-q")
        line = one_line_error(code, err)
        assert code == 1 and f"pid {first.pid} (vlsa index) is indexing" in line, line
        first.kill()  # SIGKILL; its child lives on
        first.wait()
        code, _, err = vlsa(capsys, monkeypatch, "index", tmp_path / "lib", "--db", db, "--preset", "tiny", "-q")
        assert code == 0 and "indexed 1 files" in err, err
    finally:
        first.kill()
        first.wait()
        first.stdout.close()
        if child:
            os.kill(child, signal.SIGKILL)


def test_indexer_takes_an_empty_new_root_refuses_a_missing_one(tmp_path, model):
    """Catches the refusal above applying to a folder nothing was catalogued from, and a
    mistyped root passing silently."""
    (tmp_path / "new").mkdir()
    report = index(tmp_path / "c.db", model, [tmp_path / "new"])
    assert (report.indexed, report.removed) == (0, 0)
    with pytest.raises(CatalogError, match=r"typo: no such file or folder$"):
        index(tmp_path / "c.db", model, [tmp_path / "typo"])


def test_cli_index_prune(tmp_path, model, capsys, monkeypatch):
    """Catches `vlsa index` refusing a missing folder before --prune can act on it (click's
    exists check), and the refusal not reaching the user as one line."""
    mount = tmp_path / "mnt"
    tone(mount / "a.wav")
    db = tmp_path / "c.db"
    index(db, model, [mount])
    (mount / "a.wav").unlink()
    mount.rmdir()
    code, _, err = vlsa(capsys, monkeypatch, "index", mount, "--db", db, "--preset", "tiny", "-q")
    assert "--prune" in one_line_error(code, err) and len(paths(db)) == 1
    code, _, err = vlsa(capsys, monkeypatch, "index", mount, "--db", db, "--preset", "tiny", "-q", "--prune")
    assert code == 0 and "1 removed" in err and paths(db) == set()


# --- 6: non-finite samples never become vectors ---------------------------------------------------


def bad_sounds(folder: Path) -> dict[str, Path]:
    """A tone with a burst of NaN samples, one with infinities, and a clean tone."""
    t = np.arange(RATE) / RATE
    wave = 0.5 * np.sin(2 * np.pi * 440.0 * t)
    nan, inf = wave.copy(), wave.copy()
    nan[100:200] = np.nan
    inf[100:200] = np.inf
    folder.mkdir(parents=True, exist_ok=True)
    return {"nan": make_float_wav(folder / "nan.wav", nan), "inf": make_float_wav(folder / "inf.wav", inf),
            "clean": make_float_wav(folder / "clean.wav", wave)}


@pytest.mark.parametrize("backend", ["numpy", "sqlite-vec"])
def test_indexer_records_non_finite_sound_as_failed(tmp_path, model, backend):
    """Catches NaN samples reaching the model (a NaN vector ranks first under sqlite-vec and
    hides the real hits from the matrix scan) and infinities being clipped silently."""
    if backend == "sqlite-vec" and not sqlitevec.available():
        pytest.fail("sqlite-vec does not load here; it is a dependency of the catalog")
    sounds = bad_sounds(tmp_path / "lib")
    db = tmp_path / "c.db"
    report = index(db, model, [tmp_path / "lib"])
    errors = {Path(p).stem: e for p, e in report.failed}
    assert report.indexed == 1 and set(errors) == {"nan", "inf"}
    assert all("non-finite" in e and "\n" not in e for e in errors.values())
    service = SearchService(Catalog(db, read_only=True), model=model, backend=backend)
    (hit,) = service.search_audio(str(sounds["clean"]), top=1)
    assert hit.path == str(sounds["clean"]) and np.isfinite(hit.score)
    with pytest.raises(MediaError, match="non-finite"):
        service.search_audio(str(sounds["nan"]))
    with pytest.raises(MediaError, match="non-finite"):
        service.search_audio(torch.full((RATE,), float("nan")))


@pytest.mark.parametrize("backend", ["numpy", "sqlite-vec"])
def test_search_leaves_out_a_non_finite_vector_already_stored(tmp_path, model, backend):
    """Catches a NaN vector in a catalog written before vectors were checked hiding the real hits
    (the matrix scan's top 1 came back empty) or ranking first with score nan (sqlite-vec)."""
    lib = tmp_path / "lib"
    a, b = tone(lib / "a.wav"), tone(lib / "b.wav", 660.0)
    db = tmp_path / "c.db"
    index(db, model, [lib])
    with Catalog(db) as catalog:
        (b_window,) = catalog.windows(next(m.id for m in catalog.media() if m.path == str(b)))
        nan = np.full(model.config.embed_dim, np.nan, "<f4").tobytes()
        catalog.db.execute("UPDATE embeddings SET vector = ? WHERE window_id = ?", [nan, b_window.id])
        catalog.db.conn.commit()
    service = SearchService(Catalog(db, read_only=True), model=model, backend=backend)
    (hit,) = service.search_audio(str(a), top=1)
    assert hit.path == str(a) and np.isfinite(hit.score)
    assert [h.path for h in service.search_audio(str(a), top=5)] == [str(a)]


def test_store_refuses_a_non_finite_vector(tmp_path):
    """Catches a NaN vector from any writer reaching the catalog (the last line of defence)."""
    vectors = np.ones((2, 4), np.float32)
    vectors[1, 2] = np.nan
    record = FileRecord("/lib/a.wav", 1, 1, duration=4.0, has_audio=True, windows=[(0, 2), (2, 4)],
                        vectors={"audio": vectors})
    with Catalog(tmp_path / "c.db") as catalog:
        catalog.bind(Settings("f" * 16, None, "tiny", 4, 2.0, 2.0))
        with pytest.raises(CatalogError, match="non-finite"):
            catalog.write_files([record])
        assert catalog.media() == []


# --- 8: one line, never a traceback --------------------------------------------------------------


@pytest.fixture(scope="module")
def small_catalog(tmp_path_factory, model) -> Path:
    root = tmp_path_factory.mktemp("small")
    tone(root / "lib" / "a.wav")
    tone(root / "lib" / "b.wav", 660.0)
    db = root / "c.db"
    index(db, model, [root / "lib"])
    return db


@pytest.mark.parametrize("query", ["empty", "junk", "video-only", "nan"])
def test_cli_search_audio_bad_file_is_one_line(tmp_path, small_catalog, capsys, monkeypatch, query):
    """Catches a MediaError (not a ValueError) escaping `vlsa search --audio` as a traceback."""
    path = tmp_path / f"{query}.wav"
    if query == "empty":
        path.touch()
    elif query == "junk":
        path.write_text("not a sound\n" * 50)
    elif query == "video-only":
        path = make_video(tmp_path / "silent.mp4", 1.0, audio=False)
    else:
        path = bad_sounds(tmp_path)["nan"]
    code, out, err = vlsa(capsys, monkeypatch, "search", "--audio", path, "--db", small_catalog)
    line = one_line_error(code, err)
    assert code == 1 and line.startswith(f"error: {path}: ") and out == ""


@pytest.mark.parametrize("like", ["99999999999999999999999", "-3", "0", "1.5"])
def test_cli_search_like_bad_id_is_one_line(small_catalog, capsys, monkeypatch, like):
    """Catches an id past SQLite's integer range raising OverflowError (a traceback)."""
    code, _, err = vlsa(capsys, monkeypatch, "search", "--like", like, "--db", small_catalog)
    assert code == 2 and "--like" in one_line_error(code, err)


@pytest.mark.parametrize("option, value", [("--window", "nan"), ("--window", "inf"), ("--window", "-1"),
                                           ("--stride", "nan"), ("--stride", "1e-7"), ("--stride", "inf")])
def test_cli_index_refuses_impossible_windows(tmp_path, capsys, monkeypatch, option, value):
    """Catches --window nan being recorded as the catalog's window, and --stride 1e-7 planning
    billions of windows (out of memory) instead of a usage error."""
    lib = tone(tmp_path / "lib" / "a.wav").parent
    db = tmp_path / "c.db"
    code, _, err = vlsa(capsys, monkeypatch, "index", lib, "--db", db, "--preset", "tiny", option, value)
    assert code == 2 and option in one_line_error(code, err)
    assert not db.exists()


def test_indexer_refuses_more_windows_than_fit_in_memory(tmp_path, model, monkeypatch):
    """Catches a file whose headers claim an absurd duration (or a tiny stride through the API)
    planning windows until memory runs out: the file is recorded as failed instead."""
    from catalog import decode

    lib = tone(tmp_path / "lib" / "a.wav").parent
    monkeypatch.setattr(decode, "MAX_VECTOR_BYTES", 4 * 1024)  # a few windows' vectors
    with Catalog(tmp_path / "c.db") as catalog:
        report = Indexer(catalog, model, stride=0.01).run([str(lib)])
    ((path, error),) = report.failed
    assert "windows" in error and "--stride" in error and report.indexed == 0


# --- 10: searching never writes -----------------------------------------------------------------


def test_search_opens_the_catalog_read_only(small_catalog):
    """Catches search opening the catalog for writing (it then fails on a read-only mount or a
    full disk, and could migrate or damage a file it does not own)."""
    service = SearchService.open(small_catalog)
    assert service.search_like(1, top=1)
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        service.catalog.db.execute("CREATE TABLE scribble (x)")
    service.catalog.close()


@pytest.mark.parametrize("content", [b"", b"not a database at all " * 100, "other"])
def test_cli_search_not_a_catalog_writes_nothing(tmp_path, capsys, monkeypatch, content):
    """Catches search writing a schema into a 0-byte file (or any file it was pointed at)."""
    db = tmp_path / "x.db"
    if content == "other":
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE photos (id INTEGER)")
        conn.close()
    else:
        db.write_bytes(content)
    before = db.read_bytes()
    code, _, err = vlsa(capsys, monkeypatch, "search", "a dog", "--db", db)
    assert code == 1 and "not a VLSA catalog" in one_line_error(code, err)
    assert db.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["x.db"]
    with pytest.raises(SchemaError, match="not a VLSA catalog"):
        SearchService.open(db)


def without_root_powers() -> None:
    """In a child process about to exec: drop root's permission to ignore file modes
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so a read-only folder is read-only to it too."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_cli_search_on_a_read_only_folder(small_catalog, tmp_path):
    """Catches search failing as "not a catalog" where it cannot write: a read-only mount (a
    WAL catalog's reader needs a -shm file beside it, which cannot be made there)."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    db = folder / "c.db"
    db.write_bytes(small_catalog.read_bytes())  # closed cleanly: no -wal or -shm beside it
    db.chmod(0o444)
    folder.chmod(0o555)
    try:
        proc = subprocess.run([str(VLSA_BIN), "search", "--like", "1", "--db", str(db), "--top", "1"],
                              capture_output=True, text=True, cwd=folder,
                              preexec_fn=without_root_powers if os.geteuid() == 0 else None)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count("\n") == 1 and sorted(p.name for p in folder.iterdir()) == ["c.db"]
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("what", ["file", "folder"])
def test_cli_index_into_a_read_only_catalog_says_so(small_catalog, tmp_path, what):
    """Catches indexing into a catalog it may not write answering "not a VLSA catalog (attempt
    to write a readonly database)" or a bare SQLite error: one line saying it is read-only, and
    the catalog untouched. Run without root's powers (as in the test above), so the modes hold."""
    folder = tmp_path / "ro"
    folder.mkdir()
    db = folder / "c.db"
    db.write_bytes(small_catalog.read_bytes())
    tone(tmp_path / "lib" / "new.wav")
    before = db.read_bytes()
    db.chmod(0o444)
    if what == "folder":
        folder.chmod(0o555)
    try:
        proc = subprocess.run([str(VLSA_BIN), "index", str(tmp_path / "lib"), "--db", str(db), "--preset", "tiny",
                               "-q"], capture_output=True, text=True,
                              preexec_fn=without_root_powers if os.geteuid() == 0 else None)
    finally:
        folder.chmod(0o755)
    line = one_line_error(proc.returncode, proc.stderr)
    assert proc.returncode == 1 and f"{db}: read-only" in line and "not a VLSA catalog" not in line, line
    assert db.read_bytes() == before


def test_search_of_a_read_only_catalog_leaves_no_files_beside_it(small_catalog, tmp_path, capsys, monkeypatch):
    """Catches a search of a catalog no one may write (mode 0444) leaving its WAL's -shm and -wal
    files beside it, as read-only as the catalog (they then stand in a later indexer's way). Such
    a file cannot be changing (only root could write it), so it is read as immutable."""
    db = tmp_path / "c.db"
    db.write_bytes(small_catalog.read_bytes())
    db.chmod(0o444)
    code, out, err = vlsa(capsys, monkeypatch, "search", "--like", "1", "--db", db, "--top", "1")
    assert code == 0 and out.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.db"]


def test_store_ids_past_sqlite_range_are_not_found(small_catalog):
    """Catches a huge id reaching SQLite through the Python API (the app's "find similar"):
    OverflowError instead of NotFound."""
    from catalog.store import NotFound

    with Catalog(small_catalog, read_only=True) as catalog:
        for lookup in (catalog.window, catalog.media_by_id, lambda i: catalog.embedding(i, "audio")):
            with pytest.raises(NotFound):
                lookup(10**23)


def test_serving_without_a_lock_only_where_none_can_be_made(tmp_path, monkeypatch):
    """A server goes on without its shared lock only when the lock file cannot be made in a
    read-only folder (CatalogReadOnly); any other failure to make it (a full disk, a path that is
    a folder) stops it in one line instead of serving unguarded. Catches the rule widened back to
    every CatalogError (the second case then serves)."""
    from catalog import lock
    from catalog.records import CatalogError, CatalogReadOnly

    db = tmp_path / "c.db"

    def fails_with(error):
        def _open(file, db):
            raise error
        return _open

    monkeypatch.setattr(lock, "_open", fails_with(CatalogReadOnly(db)))
    with lock.serving(db, "vlsa app"):
        pass
    monkeypatch.setattr(lock, "_open", fails_with(CatalogError(f"{db}.serve.lock: cannot make the lock file (No space left on device)")))
    with pytest.raises(CatalogError, match="No space left"):
        with lock.serving(db, "vlsa app"):
            pass
