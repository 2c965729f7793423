"""`vlsa demo` and the checkpoint shipped in the package: the demo library is built once, reused,
recovered after a killed first run; the command serves the app, and starts again from its catalog;
the shipped checkpoint retrieves the demo clips and its spatial heatmap falls on their sounding
object."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import VLSA_BIN, _wait_until_up, free_port, stop_process
from mediagen import make_audio

import catalog.model
from app.demo import (
    DEMO_SEED,
    LIBRARY,
    STAMP,
    TEMP_PREFIX,
    DemoError,
    generate_library,
    prepare_demo,
    shipped_media,
)
from catalog import text_export
from catalog.lock import not_served, serving
from catalog.records import CatalogBusy
from catalog.store import Catalog
from vlsa.checkpoint import CONFIG_NAME, WEIGHTS_NAME, shipped_checkpoint
from vlsa.cli import main
from vlsa.media import probe

SMALL = 8  # clips in the library the build / reuse tests make
MEDIA = shipped_media()  # the real media shipped in the package, indexed beside the clips
REAL = len((MEDIA / "manifest.jsonl").read_text().splitlines()) if MEDIA else 0
HEATMAP_CLIPS = 64  # the whole default demo library
# The caption's spatial heatmap is useful when its peak lies on the sounding object more often
# than not: at least half of the demo clips, and at least CHANCE_FACTOR times the rate of a peak
# put on a random patch (computed from the boxes: 0.07 on the demo clips, so half is the binding
# bar). The shipped checkpoint puts it there on 45 of 64 (0.70): 13 clips of margin for a
# retrained checkpoint.
HEATMAP_BAR = 0.5
CHANCE_FACTOR = 4


def clip_mtimes(library: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted((library / "clips").glob("*.mp4"))}


def manifest_rows(library: Path) -> list[dict]:
    return [json.loads(line) for line in (library / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A demo folder prepared once with SMALL clips, and what the first prepare did."""
    folder = tmp_path_factory.mktemp("demo")
    return folder, prepare_demo(folder, clips=SMALL)


# --- the shipped checkpoint ---------------------------------------------------------------------


def test_a_checkpoint_ships_in_the_package_and_is_the_default():
    path = shipped_checkpoint()
    assert path is not None and (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()
    assert sum(p.stat().st_size for p in path.iterdir()) <= 25 * 2**20  # the size limit
    assert catalog.model.default_checkpoint() == str(path)
    model, used = catalog.model.load_model()  # what `vlsa index` without --checkpoint loads
    assert used == str(path) and model.config.preset == "tiny"


def test_the_shipped_real_media_are_whole_held_out_and_credited():
    """Catches a file missing from the package, a row whose licence does not allow
    redistribution, a row not from the held-out split, and a file the credits do not name."""
    assert MEDIA is not None
    rows = manifest_rows(MEDIA)
    credits = (MEDIA / "CREDITS.md").read_text()
    free = ("CC-BY-SA-3.0", "GPL-2", "GPL-2+", "GPL-3", "GPL-3+", "LGPL-2.1+", "Apache-2.0", "public domain",
            "Public Domain")
    assert len(rows) >= 40 and {r["kind"] for r in rows} == {"clip", "speech"}
    for r in rows:
        path = r.get("video") or r["audio"]
        assert (MEDIA / path).is_file() and r["split"] == "test" and f"| {path} |" in credits
        assert r["licence"] in free and r.get("picture_licence", "Public Domain") in free, r
    assert sum(f.stat().st_size for f in MEDIA.rglob("*")) < 8 * 2**20  # "a few MB"


def test_the_default_is_the_real_media_model_and_the_synthetic_one_ships_beside_it():
    """The default is the real-media checkpoint that docs/REAL_MEDIA.md measures, with the
    MiniLM text tower; the synthetic-only one it started from (and learnt its heatmaps from)
    ships beside it. Catches either missing from the package, over the issue's 50 MB, or the
    default falling back to the synthetic-only model."""
    from vlsa.api import VLSA
    from vlsa.checkpoint import SYNTHETIC

    for folder in (shipped_checkpoint(), SYNTHETIC):
        assert sum(p.stat().st_size for p in folder.iterdir()) <= 50 * 2**20
    model = VLSA.from_pretrained(shipped_checkpoint())
    assert model.config.text.tower == "all-minilm-l6-v2" and model.config.preset == "tiny"
    text = model.embed_text(["someone plays the piano", "a crowd cheers"])
    assert text.shape == (2, model.config.embed_dim) and torch.isfinite(text).all()
    assert VLSA.from_pretrained(SYNTHETIC).config.text.tower == "shared"


def test_index_without_any_checkpoint_is_one_line(monkeypatch, capsys, tmp_path):
    # An installation without the shipped checkpoint: `vlsa index` says to pass one.
    monkeypatch.setattr(catalog.model, "default_checkpoint", lambda: None)
    monkeypatch.setattr(sys, "argv", ["vlsa", "index", str(tmp_path), "--db", str(tmp_path / "c.db")])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: no checkpoint: pass --checkpoint")


# --- building and reusing the demo library ------------------------------------------------------


def test_prepare_demo_builds_the_library_and_its_catalog(built):
    folder, demo = built
    assert demo.generated and demo.library == folder / LIBRARY and demo.db == folder / "demo.db"
    rows = manifest_rows(demo.library)
    assert len(rows) == SMALL and len(clip_mtimes(demo.library)) == SMALL
    assert len({r["text"] for r in rows}) == SMALL  # the test split: a caption names one clip
    assert all(r["split"] == "test" and r["boxes"] for r in rows)
    assert json.loads((demo.library / STAMP).read_text())["seed"] == DEMO_SEED
    assert demo.report.indexed == SMALL + REAL and not demo.report.failed
    with Catalog(demo.db) as cat:
        assert cat.stats()["media_ok"] == SMALL + REAL and cat.stats()["media_failed"] == 0
        assert cat.settings.checkpoint == str(shipped_checkpoint())
        real = {str(MEDIA / (r.get("video") or r["audio"])) for r in manifest_rows(MEDIA)}
        assert {m.path for m in cat.media()} == {str(demo.library / r["video"]) for r in rows} | real
        # its text query encoder, so `vlsa search "words"` needs no torch (catalog/text_export.py)
        assert text_export.open_for(demo.db, cat.settings.fingerprint) is not None
    assert not list(folder.glob(TEMP_PREFIX + "*"))


# the page's example queries about the shipped recordings -> a word their captions hold
EXAMPLE_WORDS = {"someone plays the piano": "piano", "a glass breaks": "glass", "a voice says a letter": "letter"}
PLACEHOLDER_WORD = {"someone says a number": "number"}  # the query box's placeholder, likewise


def test_the_pages_example_queries_find_what_they_name(built):
    """Each example button about real media, and the query box's placeholder, finds a shipped
    recording that its words name among the top 3 files of the demo library, with the default
    checkpoint. Catches an example the default model cannot answer (the synthetic-only checkpoint
    finds none of these three), a placeholder it cannot ("a dog barks in the rain" found a sheep,
    an organ and an accordion), and either changed without this test (the words are listed here)."""
    from app.ui import EXAMPLES, PLACEHOLDER
    from catalog.service import SearchService

    assert set(EXAMPLE_WORDS) == set(EXAMPLES[:-1])  # the last is a synthetic clip's own caption
    assert set(PLACEHOLDER_WORD) == {PLACEHOLDER}
    captions = {str(MEDIA / (r.get("video") or r["audio"])): r["text"] for r in manifest_rows(MEDIA)}
    folder, demo = built
    model, _ = catalog.model.load_model()
    with Catalog(demo.db) as cat:
        service = SearchService(cat, model)
        for query, word in {**EXAMPLE_WORDS, **PLACEHOLDER_WORD}.items():
            found = [captions.get(hit.path, "a synthetic clip") for hit in service.search_text(query, top=3, per_file=True)]
            assert any(word in caption for caption in found), (query, found)


def test_prepare_demo_again_regenerates_and_reindexes_nothing(built):
    folder, first = built
    before = clip_mtimes(first.library)
    with Catalog(first.db) as cat:
        generation = cat.generation()
    again = prepare_demo(folder, clips=SMALL)
    assert not again.generated
    assert (again.report.indexed, again.report.unchanged, again.report.removed) == (0, SMALL + REAL, 0)
    assert clip_mtimes(again.library) == before
    with Catalog(again.db) as cat:
        assert cat.generation() == generation  # not one write to the catalog


def catalogued(db: Path) -> set[str]:
    with Catalog(db) as cat:
        return {m.path for m in cat.media(status="ok")}


def test_prepare_demo_indexes_added_folders_in_place_until_removed(built, tmp_path):
    """`make demo` after `vlsa demo --add DIR`: catches the next run without --add dropping the
    added folder's files ("1 removed"), and --remove not dropping them or not forgetting the
    folder."""
    folder, _ = built
    extra = tmp_path / "sounds"
    extra.mkdir()
    make_audio(extra / "tone.wav", 3.0)
    tone = str(extra / "tone.wav")
    demo = prepare_demo(folder, clips=SMALL, add=[extra])
    assert demo.report.indexed == 1 and demo.report.unchanged == SMALL + REAL and not demo.generated
    assert tone in catalogued(demo.db)
    # A later run without --add (as `make demo` runs it): the folder is remembered, nothing changes.
    demo = prepare_demo(folder, clips=SMALL)
    assert (demo.report.removed, demo.report.indexed, demo.report.unchanged) == (0, 0, SMALL + REAL + 1)
    assert tone in catalogued(demo.db) and str(extra) in demo.roots
    with pytest.raises(DemoError, match="--remove .*elsewhere: not an added folder"):
        prepare_demo(folder, clips=SMALL, remove=[tmp_path / "elsewhere"])
    demo = prepare_demo(folder, clips=SMALL, remove=[extra])
    assert demo.report.removed == 1 and tone not in catalogued(demo.db)
    demo = prepare_demo(folder, clips=SMALL)  # forgotten: not indexed again
    assert (demo.report.indexed, demo.report.unchanged) == (0, SMALL + REAL)
    with pytest.raises(DemoError, match="--add .*nowhere: no such folder"):
        prepare_demo(folder, clips=SMALL, add=[tmp_path / "nowhere"])


def test_prepare_demo_keeps_the_files_of_a_missing_added_folder(tmp_path, capsys):
    """A remembered folder missing at start (an unmounted drive): catches its files leaving the
    catalog, or a run refused over it, or no word of it; --prune does drop them."""
    folder, extra = tmp_path / "demo", tmp_path / "drive"
    extra.mkdir()
    make_audio(extra / "tone.wav", 3.0)
    make_audio(extra / "hum.wav", 2.0)
    prepare_demo(folder, clips=1, real_media=False, add=[extra])
    extra.rename(tmp_path / "unmounted")
    capsys.readouterr()
    demo = prepare_demo(folder, clips=1, real_media=False)
    said = [line for line in capsys.readouterr().err.splitlines() if "missing" in line]
    assert said == [f"{extra}: missing (an unmounted drive?); its 2 catalogued files are kept (--remove it to drop them)"]
    assert demo.missing == [str(extra)] and demo.report.removed == 0
    assert {str(extra / "tone.wav"), str(extra / "hum.wav")} <= catalogued(demo.db)
    demo = prepare_demo(folder, clips=1, real_media=False, prune=True)
    assert demo.report.removed == 2 and not any(p.startswith(str(extra)) for p in catalogued(demo.db))


def test_a_killed_first_run_and_a_damaged_catalog_are_recovered(tmp_path):
    # What a first run killed while generating leaves: a temporary folder with part of the clips
    # and no library. The next run removes it and generates the library whole.
    folder = tmp_path / "demo"
    partial = folder / (TEMP_PREFIX + "killed")
    (partial / "clips").mkdir(parents=True)
    (partial / "clips" / "00000.mp4").write_bytes(b"half a clip")
    demo = prepare_demo(folder, clips=2, real_media=False)
    assert demo.generated and not partial.exists() and not list(folder.glob(TEMP_PREFIX + "*"))
    assert len(manifest_rows(demo.library)) == 2 and demo.report.indexed == 2
    # A library of another size is replaced, not mixed: its catalog follows.
    demo = prepare_demo(folder, clips=3, real_media=False)
    assert demo.generated and len(clip_mtimes(demo.library)) == 3
    with Catalog(demo.db) as cat:
        assert cat.stats()["media_ok"] == 3
    # A damaged catalog: a one-line error that names the way out, which works.
    for suffix in ("-wal", "-shm"):
        Path(f"{demo.db}{suffix}").unlink(missing_ok=True)
    demo.db.write_bytes(b"not a database" * 100)
    with pytest.raises(DemoError, match="pass --rebuild"):
        prepare_demo(folder, clips=3, real_media=False)
    demo = prepare_demo(folder, clips=3, rebuild=True, real_media=False)
    assert demo.generated and demo.report.indexed == 3


def test_prepare_demo_refuses_a_catalog_another_process_serves(tmp_path):
    """Two servers on one demo folder: catches the second one's start (which may regenerate the
    library and re-indexes the catalog) changing what the first one serves; it is refused before
    anything is made, naming the server. And a server does not start on a catalog a demo is
    re-indexing. (A lock held by another file descriptor conflicts as another process's does.)"""
    folder = tmp_path / "demo"
    folder.mkdir()
    db = folder / "demo.db"
    with serving(db, "vlsa demo"):
        with pytest.raises(CatalogBusy, match=rf"pid {os.getpid()} \(vlsa demo\) is serving this catalog"):
            prepare_demo(folder, clips=1, real_media=False)
    assert not (folder / "library").exists() and not db.exists()
    with not_served(db, "vlsa demo"), pytest.raises(CatalogBusy, match=r"\(vlsa demo\) is re-indexing"):
        with serving(db, "vlsa app"):
            pass


def test_a_failed_generation_is_one_line_and_leaves_no_library(monkeypatch, tmp_path):
    """The generator runs in the app's process: catches its error escaping as a traceback (not a
    DemoError) and a half-written temporary folder, or a library, left behind."""
    import synth

    def disk_full(out, *args, **kwargs):
        (Path(out) / "clips").mkdir(parents=True)
        (Path(out) / "clips" / "00000.mp4").write_bytes(b"half a clip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(synth, "generate", disk_full)
    with pytest.raises(DemoError, match="^generating the demo clips failed: .*No space left on device$"):
        generate_library(tmp_path, 2, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_prepare_demo_without_a_shipped_checkpoint_says_so(monkeypatch, tmp_path):
    import vlsa.checkpoint

    monkeypatch.setattr(vlsa.checkpoint, "shipped_checkpoint", lambda: None)
    with pytest.raises(DemoError, match="no checkpoint ships with this installation"):
        prepare_demo(tmp_path / "demo", clips=2)
    assert not (tmp_path / "demo").exists()


def test_demo_errors_are_one_line(monkeypatch, capsys, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for args, expected in ((["--port", str(port)], f"port {port} on 127.0.0.1 is in use"),
                               (["--add", str(tmp_path / "nowhere")], "no such folder"),
                               (["--remove", str(tmp_path / "never")], "never: not an added folder")):
            argv = ["vlsa", "demo", "--no-browser", "--dir", str(tmp_path / "demo"), *args]
            if "--port" not in args:
                argv += ["--port", str(free_port())]
            monkeypatch.setattr(sys, "argv", argv)
            with pytest.raises(SystemExit) as exit_:
                main()
            err = capsys.readouterr().err
            assert exit_.value.code == 1 and len(err.strip().splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "demo").exists()  # refused before anything was generated


# --- the heatmap points at the sounding object --------------------------------------------------


def frame_indices(duration: float, clip_seconds: float, frames: int, fps: float, count: int) -> list[int]:
    """The video frame each sampled model frame of a clip shows: read_frames("uniform") takes the
    centres of `frames` equal segments of [0, min(clip, duration)) and the last frame at or before
    each time."""
    stop = min(clip_seconds, duration) if duration > 0 else clip_seconds
    seg = stop / frames
    return [min(count - 1, math.floor((i + 0.5) * seg * fps + 1e-6)) for i in range(frames)]


def heatmap_hits(library: Path) -> list[dict]:
    """Per clip: where the caption's spatial map peaks and whether that is inside the box of the
    sounding object on that frame."""
    from vlsa.api import VLSA

    model = VLSA.from_pretrained(shipped_checkpoint())
    cfg = model.config
    rows = manifest_rows(library)
    queries = model.embed_text([r["text"] for r in rows])
    out = []
    for row, query in zip(rows, queries, strict=True):
        path = library / row["video"]
        heat = model.video_patch_map(query, path).numpy()  # (frames, g, g): what the app draws
        t, r, c = np.unravel_index(int(heat.argmax()), heat.shape)
        g = heat.shape[-1]
        frames = frame_indices(probe(path).duration, cfg.clip_seconds, cfg.video.frames, row["fps"],
                               len(row["boxes"]))
        x0, y0, x1, y1 = row["boxes"][frames[t]]
        x, y = (c + 0.5) / g, (r + 0.5) / g  # the peak patch's centre, as a fraction of the frame
        out.append({"clip": row["video"], "inside": bool(x0 <= x < x1 and y0 <= y < y1),
                    "overlaps": bool(x0 < (c + 1) / g and c / g < x1 and y0 < (r + 1) / g and r / g < y1),
                    "chance": float(np.mean([patch_centres_inside(row["boxes"][f], g) for f in frames]))})
    return out


def patch_centres_inside(box: list[float], g: int) -> float:
    """Share of a g x g grid's patch centres inside a box (fractions of the frame): how often a
    peak put on a random patch of that frame lands inside it."""
    x0, y0, x1, y1 = box
    centres = (np.arange(g) + 0.5) / g
    return float(np.mean((x0 <= centres) & (centres < x1))) * float(np.mean((y0 <= centres) & (centres < y1)))


@pytest.fixture(scope="module")
def demo_library(tmp_path_factory) -> Path:
    """The default demo library, 64 clips, as `vlsa demo` generates it."""
    return generate_library(tmp_path_factory.mktemp("demo64"), HEATMAP_CLIPS, seed=DEMO_SEED, progress=False)


@pytest.fixture(scope="module")
def demo_heatmap_hits(demo_library) -> list[dict]:
    hits = heatmap_hits(demo_library)
    inside = sum(h["inside"] for h in hits) / len(hits)
    overlaps = sum(h["overlaps"] for h in hits) / len(hits)
    chance = sum(h["chance"] for h in hits) / len(hits)
    print(f"heatmap peak inside the sounding object's box: {inside:.2f} of {len(hits)} demo clips "
          f"(peak patch overlapping it: {overlaps:.2f}; a random peak: {chance:.3f})")
    return hits


def test_heatmap_peaks_on_the_sounding_object(demo_heatmap_hits):
    """The bar is a requirement (see HEATMAP_BAR), not the measured 0.70. Catches a map no better
    than a random patch, also if the sounding objects were to grow until a random peak lands
    on them half the time (the bar then rises with the chance rate)."""
    inside = sum(h["inside"] for h in demo_heatmap_hits) / len(demo_heatmap_hits)
    chance = sum(h["chance"] for h in demo_heatmap_hits) / len(demo_heatmap_hits)
    assert inside >= max(HEATMAP_BAR, CHANCE_FACTOR * chance), (
        chance, [h["clip"] for h in demo_heatmap_hits if not h["inside"]])


def test_shipped_checkpoint_retrieves_the_demo_clips(demo_library):
    # The bar: text->video and audio->video R@1 at least 50% on the demo library, as
    # `vlsa eval --checkpoint vlsa/assets/real --manifest <library>/manifest.jsonl` reports them
    # (chance is 1.6%; docs/REAL_MEDIA.md has the measured numbers).
    from train.evaluate import evaluate
    from vlsa.api import VLSA

    results = evaluate(VLSA.from_pretrained(shipped_checkpoint()), demo_library / "manifest.jsonl", "test")
    print({d: results[d]["R@1"] for d in ("text->video", "audio->video", "text->audio")})
    assert results["text->video"]["R@1"] >= 50.0 and results["audio->video"]["R@1"] >= 50.0, results


# --- the command, end to end --------------------------------------------------------------------


def start_demo(folder: Path, port: int, log: Path) -> tuple[subprocess.Popen, float]:
    """`vlsa demo` on `port`; returns the process and the seconds until its page answered."""
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    began = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(VLSA_BIN), "demo", "--no-browser", "--dir", str(folder), "--clips", str(SMALL),
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/", proc, log)
    except BaseException:
        stop_process(proc)
        raise
    return proc, time.monotonic() - began


def search_through_api(port: int, caption: str) -> list[dict]:
    from gradio_client import Client

    client = Client(f"http://127.0.0.1:{port}", verbose=False, download_files=False)
    _, results, _ = client.predict(caption, api_name="/search_text")
    return results


@pytest.mark.slow
def test_vlsa_demo_serves_and_starts_again_from_its_catalog(tmp_path, record_property):
    folder = tmp_path / "demo"
    times = {}
    for run in ("first", "second"):
        port, log = free_port(), tmp_path / f"{run}.log"
        proc, times[run] = start_demo(folder, port, log)
        try:
            caption = manifest_rows(folder / LIBRARY)[0]["text"]
            results = search_through_api(port, caption)
            # every result is a file of the library: the generated clips or the shipped real media
            roots = (str(folder / LIBRARY), str(MEDIA))
            assert results and all(r["file"].startswith(roots) for r in results)
        finally:
            stop_process(proc)
        text = log.read_text()
        assert ("generating" in text) == (run == "first"), text
        assert f"on http://127.0.0.1:{port}" in text
    record_property("demo_start_seconds", times)
    print(f"vlsa demo start to HTTP 200: first {times['first']:.1f} s, second {times['second']:.1f} s")
