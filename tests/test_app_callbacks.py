"""app.callbacks called directly (no server, no browser) on the trained library of generated clips."""

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from mediagen import make_audio
from PIL import Image

from app import callbacks, heatmaps, render
from app.context import make_context
from app.files import FileRefused, UploadLimits
from catalog.service import SearchService
from catalog.store import Catalog, FileRecord
from vlsa.media import probe

pytestmark = pytest.mark.slow  # the app_library fixture trains a model


@pytest.fixture(scope="module")
def ctx(app_library, tmp_path_factory):
    context = make_context(SearchService.open(app_library.db), workdir=tmp_path_factory.mktemp("work"))
    yield context
    context.close()


def test_callbacks_search_text_ranks_each_captions_clip_first(ctx, app_library):
    for clip, caption in zip(app_library.clips, app_library.captions, strict=True):
        gallery, rows, hits, query, status = callbacks.search_text(ctx, caption)
        assert rows[0]["file"] == str(clip), caption
        assert len(gallery) == len(rows) == len(hits) == len(app_library.clips)  # one per file
        assert status.startswith(f"**{len(hits)} results**")
        assert set(query) == {"video", "audio", callbacks.SEARCHED_BY}


def test_callbacks_search_results_carry_thumbnails_and_captions(ctx, app_library):
    gallery, rows, *_ = callbacks.search_text(ctx, app_library.captions[0])
    picture, caption = gallery[0]
    assert Path(picture).is_relative_to(ctx.workdir)
    with Image.open(picture) as image:
        assert image.format == "JPEG" and image.size == (heatmaps.TILE, heatmaps.TILE)
    name, rank_line, found = caption.split("\n")
    assert name == os.path.basename(app_library.clips[0]) and rank_line.startswith("#1 · ")
    assert rank_line.endswith(" · 0.0–2.0 s") and found in ("found by its picture", "found by its sound")
    assert rows[0]["rank"] == 1 and rows[0]["name"] == os.path.basename(app_library.clips[0])


def test_callbacks_draw_ahead_makes_each_moments_picture_before_a_search_shows_it(app_library, tmp_path, monkeypatch):
    """A library small enough to keep every picture has them all made in the background, so a
    search showing moments no search showed before decodes nothing while the person waits; a
    larger one is left to the searches. Catches draw_ahead asking for nothing (or for part of the
    library), and asking past what the pictures kept can hold."""
    context = make_context(SearchService.open(app_library.db), workdir=tmp_path)
    try:
        windows = len(app_library.clips)  # one each
        assert callbacks.draw_ahead(context) == windows
        deadline = time.monotonic() + 60
        while len(context.thumbnails) < windows and time.monotonic() < deadline:
            time.sleep(0.02)

        def draw(*args):
            raise AssertionError("a search drew a picture")
        monkeypatch.setattr(render, "thumbnail", draw)
        gallery, *_ = callbacks.search_text(context, app_library.captions[0], "any", callbacks.ALL_FOLDERS,
                                            "any length", False)
        assert len(gallery) == context.top and context.thumbnails.blank not in [p for p, _ in gallery]
        context.thumbnails.keep = windows - 1
        assert callbacks.draw_ahead(context) == 0
    finally:
        context.close()


def test_callbacks_words_come_from_the_checkpoints_calibration(ctx, app_library, tmp_path):
    """With a calibration.json beside the checkpoint, each result's words are its score read against
    the thresholds of its kind of search (words: text->..., find-similar: the moment's own picture
    for pictures and its sound for sounds), in the JSON, the caption and the details; without one
    the page says "uncalibrated" and shows the cosine. Catches words from anything but the score
    and the kind's thresholds (the library's spread of scores, another kind's thresholds), and
    words made up without a calibration."""
    from vlsa.calibration import LEVELS, UNCALIBRATED, Calibration, KindCalibration

    _, rows, *_ = callbacks.search_text(ctx, app_library.captions[0])  # no calibration.json
    assert {r["match"] for r in rows} == {UNCALIBRATED}
    assert "cosine" in callbacks.search_text(ctx, app_library.captions[0])[0][0][1]

    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(app_library.checkpoint, checkpoint)
    scores = sorted({r["score"] for r in rows}, reverse=True)
    shares = ((0.1, 0.2, 0.3), (0.001, 0.01, 0.05))
    everything = KindCalibration((-1.0, -1.0, -1.0), *shares, 10, 1000)  # every score is "strong"
    kinds = {"text->video": KindCalibration((scores[0], scores[1], scores[2]), *shares, 10, 1000),
             "text->audio": KindCalibration((scores[1], scores[2], scores[3]), *shares, 10, 1000),
             "video->video": everything, "audio->audio": KindCalibration((2.0, 2.0, 2.0), *shares, 10, 1000)}
    Calibration(ctx.service.catalog.settings.fingerprint, {}, kinds).save(checkpoint)
    calibrated = make_context(SearchService.open(app_library.db, checkpoint=checkpoint), workdir=tmp_path / "work")
    try:
        gallery, rows, hits, query, _ = callbacks.search_text(calibrated, app_library.captions[0])
        for row, (_, caption) in zip(rows, gallery, strict=True):
            least = kinds[f"text->{row['modality']}"].thresholds
            expected = next((w for (w, _), t in zip(LEVELS, least, strict=True) if row["score"] >= t), "weak match")
            assert row["match"] == expected and f" {expected} " in caption, row
        assert len({r["match"] for r in rows}) >= 3 and {"strong match", "weak match"} <= {r["match"] for r in rows}
        assert f"**{rows[0]['match']}**" in callbacks.select_result(calibrated, hits, query, 0)[5]
        _, rows, similar, query, _ = callbacks.find_similar(calibrated, hits[0].window_id)
        assert {r["modality"]: r["match"] for r in rows} == {"video": "strong match", "audio": "weak match"}
        assert "a search with a picture among pictures" in callbacks.select_result(
            calibrated, similar, query, next(i for i, h in enumerate(similar) if h.modality == "video"))[5]
    finally:
        calibrated.close()


def test_callbacks_filters_reach_the_search(ctx, app_library):
    caption = app_library.captions[1]
    _, rows, *_ = callbacks.search_text(ctx, caption, "audio", "", "any length", False)
    assert rows and {r["modality"] for r in rows} == {"audio"}
    _, rows, *_, status = callbacks.search_text(ctx, caption, "any", "/nowhere", "any length", True)
    assert rows == [] and status.startswith("No results")
    _, rows, *_ = callbacks.search_text(ctx, caption, "any", callbacks.ALL_FOLDERS, "over 10 min", True)
    assert rows == []  # the clips last 2 s
    _, rows, *_ = callbacks.search_text(ctx, caption, "any", str(app_library.clips[0].parent), "under 10 s")
    assert len(rows) == len(app_library.clips)


@pytest.mark.parametrize("args, message", [
    (("   ",), "Type what you are looking for"),
    (("a dog", "pictures"), "kind must be one of"),
    (("a dog", "any", "", "forever"), "duration must be one of"),
])
def test_callbacks_search_text_rejects_bad_input(ctx, args, message):
    with pytest.raises(gr.Error, match=message):
        callbacks.search_text(ctx, *args)


def test_callbacks_search_audio_finds_a_clip_by_its_own_sound(ctx, app_library, tmp_path):
    from app.clips import write_wav
    from vlsa.media import read_audio

    clip = app_library.clips[3]
    sound = tmp_path / "query.wav"
    write_wav(read_audio(clip, 0.0, None, 16000).numpy(), 16000, sound)
    _, rows, *_ = callbacks.search_audio(ctx, str(sound))
    assert rows[0]["file"] == str(clip)


def test_callbacks_sound_of_two_windows_finds_and_draws_both_clips(ctx, app_library, tmp_path):
    """A query sound two windows long (two clips' sounds end to end) finds both clips first, and
    each result's heatmaps are drawn for the query window that found it.

    Catches the query's windows averaged into one vector, and the (2, E) query reaching the
    heatmaps (a shape error) instead of the row that matched."""
    import torch

    from app.clips import write_wav
    from vlsa.media import read_audio

    rate, clips = 16000, [app_library.clips[3], app_library.clips[5]]
    wave = torch.cat([read_audio(c, 0.0, ctx.window, rate) for c in clips])
    write_wav(wave.numpy(), rate, tmp_path / "two.wav")
    _, rows, hits, query, _ = callbacks.search_audio(ctx, str(tmp_path / "two.wav"), "audio")
    assert {r["file"] for r in rows[:2]} == set(map(str, clips)) and rows[0]["score"] > 0.9999
    for index in (0, 1):
        *_, spectrogram, _, window_id = callbacks.select_result(ctx, hits, query, index)
        assert spectrogram["value"].ndim == 3 and window_id == hits[index].window_id


def test_callbacks_search_audio_rejects_bad_uploads(ctx, tmp_path):
    text = tmp_path / "notes.mp3"
    text.write_text("no sound here\n" * 20)
    with pytest.raises(gr.Error, match="not an audio file"):
        callbacks.search_audio(ctx, str(text))
    strict = replace(ctx, limits=UploadLimits(max_bytes=20_000, max_seconds=1.0))
    with pytest.raises(gr.Error, match="too long"):
        callbacks.search_audio(strict, str(make_audio(tmp_path / "long.wav", 1.5, sample_rate=4000)))
    with pytest.raises(gr.Error, match="too large"):
        callbacks.search_audio(strict, str(make_audio(tmp_path / "big.wav", 0.5, sample_rate=48000)))


def test_callbacks_select_plays_the_clip_from_its_start_and_draws_the_heatmaps(ctx, app_library):
    _, _, hits, query, _ = callbacks.search_text(ctx, app_library.captions[2])
    video, audio, spatial, temporal, spectrogram, about, window_id = callbacks.select_result(ctx, hits, query, 0)
    assert video["visible"] and not audio["visible"]
    clip = video["value"]
    assert clip.endswith(".mp4") and ctx.files.allows(clip) and os.path.dirname(clip) == str(ctx.clip_dir)
    assert probe(clip).duration == pytest.approx(2.0, abs=0.1)  # the window (the file ends there)
    frames = ctx.model.config.video.frames
    assert spatial["visible"] and spatial["value"].shape[1] >= frames * heatmaps.TILE  # the strip and its axis
    assert spectrogram["visible"] and spectrogram["value"].ndim == 3
    assert not temporal["visible"]  # a file of one window: no strip along it
    assert window_id == hits[0].window_id and os.path.basename(app_library.clips[2]) in about
    assert "window #" not in about and "result 1" in about


def test_callbacks_find_similar_searches_with_a_window_and_leaves_it_out(ctx, app_library):
    _, _, hits, _, _ = callbacks.search_text(ctx, app_library.captions[0])
    _, rows, similar, query, status = callbacks.find_similar(ctx, hits[0].window_id)
    assert hits[0].window_id not in [h.window_id for h in similar]
    assert len(rows) == len(app_library.clips) - 1 and "window #" not in status
    assert f"like {app_library.clips[0].name} at 0.0–2.0 s" in status  # the file and time it started from
    assert np.allclose(query["audio"], ctx.service.catalog.embedding(hits[0].window_id, "audio"))
    with pytest.raises(gr.Error, match="Select a result first"):
        callbacks.find_similar(ctx, None)


def test_callbacks_refuse_a_result_outside_the_library(ctx, app_library):
    _, _, hits, query, _ = callbacks.search_text(ctx, app_library.captions[0])
    forged = [replace(hits[0], path="/etc/passwd")]
    with pytest.raises(FileRefused, match="not a catalogued media file"):
        callbacks.select_result(ctx, forged, query, 0)
    with pytest.raises(gr.Error, match="search again"):
        callbacks.select_result(ctx, hits, query, len(hits))


def test_callbacks_survive_a_file_gone_since_indexing(ctx, app_library):
    _, _, hits, query, _ = callbacks.search_text(ctx, app_library.captions[0])
    gone = [replace(hits[0], path=str(app_library.clips[0].parent / "gone.mp4"), start=4.0, end=6.0)]
    assert callbacks.hit_thumbnails(ctx, gone) == [ctx.thumbnails.blank]  # the search goes on
    with pytest.raises(gr.Error, match="gone.mp4"):
        callbacks.select_result(ctx, gone, query, 0)


def test_callbacks_draw_a_file_replaced_and_indexed_again_anew(app_library, tmp_path):
    """A file replaced by other content and indexed again while the app runs shows its new picture,
    not the one kept for its old content. Catches a thumbnail kept by path and time alone."""
    from catalog.indexer import Indexer
    from vlsa.api import VLSA

    library, db = tmp_path / "library", tmp_path / "replaced.db"
    library.mkdir()
    clip = library / "clip.mp4"
    model = VLSA.from_pretrained(app_library.checkpoint)

    def index_as(source: Path) -> None:
        shutil.copy(source, clip)
        with Catalog(db) as catalog:
            Indexer(catalog, model, checkpoint=str(app_library.checkpoint)).run([str(library)])

    def shown() -> np.ndarray:
        (picture, _), = callbacks.search_text(context, app_library.captions[0])[0]
        with Image.open(picture) as image:
            return np.asarray(image, dtype=np.float32)

    index_as(app_library.clips[0])
    context = make_context(SearchService(Catalog(db, create=False), model=model), workdir=tmp_path / "work")
    before = shown()
    index_as(app_library.clips[1])
    after = shown()
    assert np.abs(after - before).mean() > 5


def test_callbacks_library_panel_shows_counts_checkpoint_and_failures(app_library, tmp_path):
    db = tmp_path / "copy.db"
    shutil.copy(app_library.db, db)
    broken = str(app_library.root / "clips" / "broken.mp4")
    with Catalog(db) as catalog:
        catalog.write_files([FileRecord(broken, 10, 1, error=f"{broken}: not a media file")])
    context = make_context(SearchService.open(db), workdir=tmp_path / "work")
    text, failures = callbacks.library_panel(context)
    assert f"**{len(app_library.clips)} files** indexed, **1 failed**" in text
    assert str(app_library.checkpoint) in text and "16 s of media" in text
    assert failures == [[broken, f"{broken}: not a media file"]]
    labels = [label for label, _ in callbacks.folder_choices(context)]
    assert labels == [callbacks.ALL_FOLDERS, str(app_library.root / "clips")]


def test_callbacks_select_a_sound_plays_a_wav_and_draws_the_spectrogram_only(app_library, tmp_path):
    from app.clips import write_wav
    from catalog.indexer import Indexer
    from vlsa.api import VLSA
    from vlsa.media import read_audio

    sounds = tmp_path / "sounds"
    sounds.mkdir()
    for clip in app_library.clips[:2]:
        write_wav(read_audio(clip, 0.0, None, 16000).numpy(), 16000, sounds / f"{clip.stem}.wav")
    db = tmp_path / "sounds.db"
    model = VLSA.from_pretrained(app_library.checkpoint)
    with Catalog(db) as catalog:
        Indexer(catalog, model, checkpoint=str(app_library.checkpoint)).run([str(sounds)])
    context = make_context(SearchService(Catalog(db, create=False), model=model), workdir=tmp_path / "work")
    _, rows, hits, query, _ = callbacks.search_text(context, app_library.captions[1])
    assert rows[0]["name"] == f"{app_library.clips[1].stem}.wav"
    video, audio, spatial, temporal, spectrogram, *_ = callbacks.select_result(context, hits, query, 0)
    assert audio["visible"] and not video["visible"] and audio["value"].endswith(".wav")
    assert audio["label"] == "Clip · 2.0 s" and audio["elem_classes"] == []  # long enough for gradio's times
    assert not spatial["visible"] and spectrogram["value"].ndim == 3 and not temporal["visible"]


def test_ui_build_app_names_the_endpoints_and_shares_one_model_queue(ctx):
    from app.ui import MODEL, build_app

    demo = build_app(ctx, examples=["a dog barks"])
    named = {fn.api_name: fn for fn in demo.fns.values() if fn.api_name}
    assert {"search_text", "search_audio", "find_similar", "library"} <= set(named)
    for name in ("search_text", "search_audio", "find_similar", "library"):
        assert named[name].concurrency_id == MODEL
    assert demo._queue.default_concurrency_limit == 1
