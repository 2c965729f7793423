"""`vlsa index` and `vlsa search` end to end, as subprocesses: the shared media, kill -9, long files."""

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest
import torch
from mediagen import SHARED_MEDIA as SHARED
from requires import require_shared_media

from catalog.store import Catalog
from vlsa.api import VLSA

VLSA_BIN = Path(sys.executable).with_name("vlsa")
NON_UTF8 = b"caf\xe9 bark.wav"  # a Latin-1 name: not valid UTF-8


def vlsa(*args, check=True, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(VLSA_BIN), *map(str, args)], capture_output=True, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"vlsa {' '.join(map(str, args))} failed:\n{proc.stderr.decode(errors='replace')}")
    return proc


def copy_library(src: Path, dst: Path) -> Path:
    """Copy keeping modification times (copy2), then make it writable (the source is read-only)."""
    shutil.copytree(src, dst)
    for folder, _dirs, files in os.walk(dst):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return dst


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return VLSA.from_preset("tiny").save_pretrained(tmp_path_factory.mktemp("ckpt") / "tiny")


@pytest.fixture(scope="module")
def shared(tmp_path_factory, checkpoint):
    """A copy of the shared media plus a file with a non-UTF-8 name, indexed by `vlsa index`."""
    require_shared_media()
    root = tmp_path_factory.mktemp("shared")
    lib = copy_library(SHARED, root / "lib")
    shutil.copy2(SHARED / "sounds/scratch/Animal/Dog1.wav", lib / os.fsdecode(NON_UTF8))
    db = root / "catalog.db"
    proc = vlsa("index", lib, "--db", db, "--checkpoint", checkpoint, "--json")
    return lib, db, json.loads(proc.stdout), proc.stderr.decode()


def test_cli_index_shared_media(shared):
    lib, db, report, stderr = shared
    files = [p for p in SHARED.rglob("*") if p.is_file() and p.suffix not in (".md", ".jsonl")]
    assert report["indexed"] + report["failed"] == len(files) + 1
    assert all("\n" not in e["error"] and e["error"].startswith(str(lib)) for e in report["errors"])
    assert "100%" in stderr and "media-s/s" in stderr  # the progress bar
    assert stderr.strip().splitlines()[-1].startswith(f"indexed {report['indexed']} files")
    with Catalog(db) as catalog:
        media = {os.path.relpath(m.path, lib): m for m in catalog.media()}
        assert {m.status for m in media.values()} <= {"ok", "failed"}
        assert all(m.error for m in media.values() if m.status == "failed")
        for rel, m in media.items():
            kinds = {k for w in catalog.windows(m.id) for k in w.modalities}
            if rel.startswith("video/"):
                assert m.has_video and kinds >= {"video"}, rel
                assert ("audio" in kinds) == (rel == "video/bigbuckbunny.mp4"), rel  # the others are silent
            elif m.status == "ok":
                assert (m.has_video, kinds) == (False, {"audio"}), rel
        assert media[os.fsdecode(NON_UTF8)].status == "ok"


def test_cli_second_run_embeds_nothing(shared, checkpoint):
    lib, db, report, _ = shared
    again = json.loads(vlsa("index", lib, "--db", db, "--checkpoint", checkpoint, "--json", "-q").stdout)
    assert (again["indexed"], again["windows"], again["removed"]) == (0, 0, 0)
    assert again["unchanged"] == report["indexed"] + report["failed"]


def test_cli_search(shared):
    lib, db, _, _ = shared
    hits = json.loads(vlsa("search", "a dog barks", "--db", db, "--top", "5", "--json").stdout)
    assert len(hits) == 5 and set(hits[0]) == {"window_id", "media_id", "path", "start", "end", "modality", "score",
                                               "match"}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    # A sound finds its own file first; a name that is not UTF-8 is shown with U+FFFD.
    out = vlsa("search", "--audio", lib / os.fsdecode(NON_UTF8), "--db", db, "--kind", "audio",
               "--top", "1").stdout.decode()
    score, match, modality, span, path, window = out.strip().split("\t")
    assert path == str(lib) + "/caf\ufffd bark.wav" and modality == "audio" and float(score) > 0.999
    assert match == "exact match"
    like = vlsa("search", "--like", window[1:], "--db", db, "--per-file", "--top", "3").stdout.decode()
    windows = [line.split("\t")[-1] for line in like.strip().splitlines()]
    assert len(windows) == 3 and window not in windows


def test_cli_index_ann_builds_the_index_that_search_approximate_uses(shared, checkpoint):
    """`vlsa index --ann` builds the approximate index at any size (nothing to embed: it is built
    from the catalog), and `vlsa search --approximate` through it answers as `--exact` does.

    Catches: the flag not reaching the index build (no index, no line on stderr)."""
    lib, db, _, _ = shared
    stderr = vlsa("index", lib, "--db", db, "--checkpoint", checkpoint, "--ann", "-q").stderr.decode()
    assert "approximate index (video): built" in stderr and "approximate index (audio): built" in stderr
    with Catalog(db) as catalog:
        window = str(catalog.windows(catalog.media(status="ok")[0].id)[0].id)
    answers = [vlsa("search", "--like", window, "--db", db, "--json", flag).stdout for flag in ("--approximate", "--exact")]
    assert json.loads(answers[0]) == json.loads(answers[1]) and len(json.loads(answers[0])) == 10


# What a search never needs: the app, the trainer, open_clip's models (torchvision, transformers;
# only its tokenizer file is read) and pandas (which sqlite_utils would import).
NOT_FOR_SEARCH = ("gradio", "train", "app", "open_clip", "torchvision", "transformers", "pandas")
LOADED_AFTER_SEARCHES = """
import sys
from vlsa.cli import main
for query in sys.argv[2:]:
    sys.argv = ["vlsa", "search", *query.split("|"), "--db", DB]
    main()
print("loaded:", *sorted({m.split(".")[0] for m in sys.modules} & set(NOT_FOR_SEARCH)), file=sys.stderr)
"""


def test_cli_search_without_db_searches_vlsa_db_else_the_demo_catalog(shared, tmp_path):
    """`vlsa search "..."` with no --db: catches it refusing ("Missing option '--db'") where
    $VLSA_DB names a catalog or `vlsa demo` made one, searching without saying which catalog, and
    a missing catalog reported otherwise than as one usage line."""
    _, db, _, _ = shared
    demo = tmp_path / "demo"
    demo.mkdir()
    shutil.copy(db, demo / "demo.db")
    env = {k: v for k, v in os.environ.items() if k not in ("VLSA_DB", "VLSA_DEMO_DIR")}
    for extra, expected in (({"VLSA_DEMO_DIR": str(demo)}, f"searching {demo / 'demo.db'} (the demo's catalog"),
                            ({"VLSA_DB": str(db), "VLSA_DEMO_DIR": str(tmp_path / "none")}, f"searching {db} ($VLSA_DB")):
        proc = vlsa("search", "a dog barks", "--top", "2", "--json", env={**env, **extra})
        assert len(json.loads(proc.stdout)) == 2 and proc.stderr.decode().startswith(expected), proc.stderr
    proc = vlsa("search", "a dog barks", check=False, env={**env, "VLSA_DEMO_DIR": str(tmp_path / "none")})
    assert proc.returncode == 2 and "no catalog to search: pass --db FILE or set $VLSA_DB" in proc.stderr.decode()


def test_cli_search_imports_nothing_a_search_does_not_need(shared):
    """A text and a sound search in one process import none of NOT_FOR_SEARCH.

    Catches the start-up cost of `vlsa search` creeping back (docs/CATALOG.md, measured): the
    tokenizer importing the open_clip package (torchvision and transformers with it, seconds),
    sqlite_utils importing pandas, or a search module importing the app or train/."""
    lib, db, _, _ = shared
    code = f"DB = {str(db)!r}\nNOT_FOR_SEARCH = {NOT_FOR_SEARCH!r}\n{LOADED_AFTER_SEARCHES}"
    proc = subprocess.run([sys.executable, "-c", code, "-", "a dog barks",
                           f"--audio|{lib / 'sounds/scratch/Animal/Dog1.wav'}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 20  # ten results of each search
    assert [line for line in proc.stderr.splitlines() if line.startswith("loaded:")] == ["loaded:"], proc.stderr


def test_cli_errors_are_one_line(shared, checkpoint, tmp_path):
    lib, db, _, _ = shared
    # Without --checkpoint `vlsa index` now uses the checkpoint shipped in the package; the error
    # for an installation without one is tested in tests/test_demo.py.
    proc = vlsa("index", lib, "--db", db, "--checkpoint", checkpoint, "--window", "3", check=False)
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and "--rebuild" in lines[0]
    proc = vlsa("search", "--db", db, check=False)
    assert proc.returncode == 2 and "exactly one of QUERY" in proc.stderr.decode()


def dump(db: Path, root: Path) -> dict:
    """Every row that matters, with paths relative to the library (timestamps left out)."""
    conn = sqlite3.connect(db)
    prefix = os.fsencode(root)
    media = [(r[0], r[1].replace(prefix, b"<lib>"), *r[2:8], (r[8] or "").replace(str(root), "<lib>"))
             for r in conn.execute("SELECT id, path, size, mtime_ns, duration, has_video, has_audio, status, error "
                                   "FROM media ORDER BY id")]
    out = {"media": media,
           "windows": conn.execute('SELECT id, media_id, start, "end" FROM windows ORDER BY id').fetchall(),
           "embeddings": conn.execute("SELECT * FROM embeddings ORDER BY window_id, modality").fetchall(),
           "meta": conn.execute("SELECT * FROM meta WHERE key != 'generation' ORDER BY key").fetchall()}
    conn.close()
    return out


def committed(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT COUNT(*) FROM media").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet, or its schema not yet committed
        return 0


def test_cli_kill_9_then_rerun_equals_an_uninterrupted_run(shared, checkpoint, tmp_path):
    """SIGKILL once a random number of files is committed (so mid-way through some later batch),
    rerun: the catalog equals the uninterrupted one, rows, ids and vectors."""
    ref_lib, ref_db, _, _ = shared
    total = len(dump(ref_db, ref_lib)["media"])
    lib = tmp_path / "lib"
    shutil.copytree(ref_lib, lib)  # same names, sizes and modification times
    db = tmp_path / "killed.db"
    seed = random.randrange(10**6)
    target = random.Random(seed).randint(1, total * 4 // 5)  # short of the last commits
    args = [str(VLSA_BIN), "index", str(lib), "--db", str(db), "--checkpoint", str(checkpoint), "-q",
            "--batch-size", "8"]  # small batches: many commits to land between
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while committed(db) < target and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, f"seed {seed}: the indexer ended before the kill"
    killed_at = committed(db)
    vlsa(*args[1:])
    print(f"seed {seed}: killed with {killed_at} of {total} files written (target {target})")
    assert 0 < killed_at < total
    assert dump(db, lib) == dump(ref_db, ref_lib)


def write_silence(path: Path, seconds: int, rate: int = 8000) -> Path:
    """8-bit mono silence: 3 hours is 86 MB on disk, written in a fraction of a second."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        for _ in range(seconds // 60):
            w.writeframes(b"\x80" * (rate * 60))
    return path


def peak_rss_mb(*args) -> float:
    """Run vlsa and return its peak resident memory."""
    proc = subprocess.Popen([str(VLSA_BIN), *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read().decode()
    return usage.ru_maxrss / 1024


@pytest.mark.slow
def test_cli_three_hour_sound_in_bounded_memory(checkpoint, tmp_path):
    """5400 windows from one file, streamed: memory stays near that of indexing a 1-second file
    (the whole file as one float32 waveform at 16 kHz would be 690 MB)."""
    long = write_silence(tmp_path / "long.wav", 3 * 3600)
    short = write_silence(tmp_path / "short.wav", 60)
    base = peak_rss_mb("index", short, "--db", tmp_path / "short.db", "--checkpoint", checkpoint, "-q")
    peak = peak_rss_mb("index", long, "--db", tmp_path / "long.db", "--checkpoint", checkpoint, "-q")
    with Catalog(tmp_path / "long.db") as catalog:
        (media,) = catalog.media()
        windows = catalog.windows(media.id)
    assert len(windows) == 5400 and windows[-1].end == 10800.0
    print(f"peak RSS: {base:.0f} MB for 1 minute, {peak:.0f} MB for 3 hours")
    assert peak - base < 150
