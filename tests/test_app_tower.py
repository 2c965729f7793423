"""The app with a checkpoint whose sound embedding comes from a pretrained audio tower
(`audio.tower=aisfx`): every search and every heatmap, through the callbacks (no browser).

The model is tiny with a random adapter and a 5-s clip (three 2.3-s blocks for the tower); the
tower reads the real frozen aisfx weights that `make setup` installs. Nothing is trained: the
tests check plumbing and time structure, which a random adapter keeps.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mediagen import make_audio, make_video

from app import callbacks, heatmaps, render
from app.clips import write_wav
from app.context import make_context
from catalog.indexer import Indexer
from catalog.service import SearchService
from catalog.store import Catalog
from vlsa.api import VLSA

RATE = 44100  # the tower's
SEGMENT = 1.161  # seconds: aisfx's block hop, so each block holds two distinct segments


def segments_sound(seconds: float, seed: int) -> torch.Tensor:
    """Segments of SEGMENT seconds that sound unlike each other: low tone, noise, high tone,
    clicks, a sweep, and again (their order shuffled by `seed`)."""
    n = round(SEGMENT * RATE)
    t = torch.arange(n) / RATE
    g = torch.Generator().manual_seed(seed)
    kinds = [torch.sin(2 * math.pi * 300 * t), torch.rand(n, generator=g) * 2 - 1, torch.sin(2 * math.pi * 5000 * t),
             ((torch.arange(n) % 2205) < 60).float(), torch.sin(2 * math.pi * (200 + 3000 * t) * t)]
    order = torch.randperm(len(kinds), generator=g).tolist()
    parts = [kinds[order[i % len(kinds)]] for i in range(math.ceil(seconds / SEGMENT))]
    return 0.5 * torch.cat(parts)[: round(seconds * RATE)]


@pytest.fixture(scope="module")
def tower(tmp_path_factory):
    """(context, library folder): a video with sound, a 10-s sound of two windows, a 12 kHz tone."""
    base = tmp_path_factory.mktemp("tower")
    lib = base / "lib"
    lib.mkdir()
    make_video(lib / "clip.mp4", 5.0, sample_rate=RATE, tone_hz=880.0)
    write_wav(segments_sound(10.0, seed=0).numpy(), RATE, lib / "segments.wav")
    make_audio(lib / "high.wav", 3.0, sample_rate=RATE, tone_hz=12000.0)
    torch.manual_seed(0)
    model = VLSA.from_preset("tiny", **{"audio.tower": "aisfx", "audio.frames": 160}).eval()
    assert model.config.audio.clip_seconds == 5.0
    with Catalog(base / "c.db") as catalog:
        report = Indexer(catalog, model).run([str(lib)])
    assert report.indexed == 3 and not report.failed
    ctx = make_context(SearchService(Catalog(base / "c.db", read_only=True), model), workdir=base / "work")
    yield ctx, lib
    ctx.close()


def select_all(ctx, hits, query) -> dict[str, tuple]:
    """select_result of every hit, by file name."""
    return {hits[i].display_path.rsplit("/", 1)[-1]: callbacks.select_result(ctx, hits, query, i)
            for i in range(len(hits))}


def test_tower_app_searches_by_words_and_draws_every_heatmap(tower):
    """Search by words, then each result: the video's patch heatmap, the sound's time map, the
    strip along a file of two windows, and the sounds' thumbnails. Catches audio_patch_map (a
    ValueError for a tower model) reached from the page, and a sound drawn with the front end
    of the wrong rate (a shape or frequency mistake in the figure)."""
    ctx, _ = tower
    gallery, rows, hits, query, _ = callbacks.search_text(ctx, "a dog barks")
    assert {r["name"] for r in rows} == {"clip.mp4", "segments.wav", "high.wav"} and len(gallery) == 3
    drawn = select_all(ctx, hits, query)
    _, _, spatial, temporal, spectrogram, *_ = drawn["clip.mp4"]
    assert spatial["visible"] and spatial["value"].shape[1] >= ctx.model.config.video.frames * heatmaps.TILE
    assert spectrogram["visible"] and spectrogram["value"].ndim == 3
    _, _, spatial, temporal, spectrogram, *_ = drawn["segments.wav"]
    assert not spatial["visible"] and spectrogram["visible"] and temporal["visible"]  # two windows


def test_tower_app_search_by_sound_and_find_similar_use_the_towers_vectors(tower, tmp_path):
    """A query sound (the first window of a catalogued file, uploaded at 44.1 kHz) finds that
    window at cosine 1: the upload is decoded at the tower's input rate and embedded as the
    indexer embedded it. "Find similar" from it searches with the stored tower vector and draws
    the video's patch heatmap against a sound embedding. Catches a query sound decoded at the
    spectrogram's 16 kHz (its noise above 8 kHz lost: another vector)."""
    ctx, lib = tower
    write_wav(segments_sound(10.0, seed=0).numpy()[: 5 * RATE], RATE, tmp_path / "query.wav")
    _, rows, hits, query, _ = callbacks.search_audio(ctx, str(tmp_path / "query.wav"), "audio")
    assert rows[0]["name"] == "segments.wav" and rows[0]["start"] == 0.0 and rows[0]["score"] > 0.9999
    assert rows[0]["match"] == "exact match"  # its own window, at cosine 1 (vlsa/calibration.py: EXACT_COSINE)
    _, rows, similar, query, _ = callbacks.find_similar(ctx, hits[0].window_id)
    assert hits[0].window_id not in {h.window_id for h in similar}
    np.testing.assert_allclose(query["audio"], ctx.service.catalog.embedding(hits[0].window_id, "audio"))
    _, _, spatial, _, spectrogram, *_ = select_all(ctx, similar, query)["clip.mp4"]
    assert spatial["visible"] and spectrogram["visible"]


@pytest.fixture
def figure_args(monkeypatch):
    """What render.spectrogram hands heatmaps.spectrogram_figure (positional and keyword)."""
    seen: dict = {}
    real = heatmaps.spectrogram_figure

    def spy(*args, **kwargs):
        seen.update(args=args, kwargs=kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(heatmaps, "spectrogram_figure", spy)
    return seen


@pytest.mark.parametrize("block", [1, 2])
def test_tower_sound_heatmap_peaks_at_the_block_the_query_is(tower, figure_args, block):
    """The sound heatmap of a tower model is a time map: a query made of one block's stretch of
    a clip peaks within that block's middle second, the same at every frequency, and the figure
    says it shows when, not which frequencies. (The first block is not asked: a query cut there
    also holds the start of the next, and a random adapter may rank that one first.) Catches
    block times off by a block, and a map drawn as if it had frequency rows."""
    ctx, lib = tower
    model = ctx.model
    data = render.window_data(model, ctx.window, str(lib / "segments.wav"), 0.0, 5.0, False, True)
    spans = model.audio_block_map(model.embed_audio([data.wave])[0], data.wave).spans.numpy()
    a, b = (spans[block] * RATE).round().astype(int)
    query = model.embed_audio([data.wave[a:b]])[0].numpy()
    render.spectrogram(model, data, query, ctx.window, 10.0)
    spec, heat, seconds, hz = figure_args["args"]
    assert heat.shape == (1, spec.shape[1])  # one row: frequency-uniform
    peak = int(np.argmax(heat[0])) * 5.0 / spec.shape[1]  # column j is centred j * hop from the start
    middle = spans[block].mean()
    assert abs(peak - middle) < SEGMENT / 2, (peak, spans[block])
    assert "not which frequencies" in " ".join(figure_args["kwargs"]["title"])


def test_tower_sound_heatmap_draws_the_spectrogram_at_the_waves_rate(tower, figure_args):
    """The spectrogram under a tower model's sound heatmap is the front end's map at 44.1 kHz
    (the rate the window was decoded at): a 12 kHz tone is brightest in the row labelled 12 kHz,
    and the axis reaches past 16 kHz. Catches the model's 16 kHz front end run on 44.1 kHz
    samples (the tone drawn near 4.4 kHz, the clip cut to its first 1.8 s)."""
    ctx, lib = tower
    model = ctx.model
    data = render.window_data(model, ctx.window, str(lib / "high.wav"), 0.0, 3.0, False, True)
    render.spectrogram(model, data, model.embed_text(["a beep"])[0].numpy(), ctx.window, 3.0)
    spec, heat, seconds, hz = figure_args["args"]
    assert seconds == pytest.approx((0.0, 3.0)) and hz[-1] > 16000
    assert spec.shape[1] == heat.shape[1] == math.ceil(model.config.audio.frames * 3 / 5)  # the sound's 3 s
    brightest = hz[int(np.argmax(spec.mean(axis=1)))]
    assert abs(brightest - 12000) < 1000, brightest


def test_heatmaps_time_map_peaks_at_the_best_blocks_middle():
    """Scores of overlapping blocks become one heat row: each at its block's middle, linear
    between, flat at the ends. Catches blocks placed at their start or end."""
    spans = np.array([[0.0, 2.0], [1.0, 3.0], [2.0, 4.0]])
    heat = heatmaps.time_map(spans, np.array([0.0, 1.0, 0.0]), columns=8, seconds=4.0)
    assert heat.shape == (1, 8) and int(np.argmax(heat)) == 4  # column 4 is at 2.0 s, block 1's middle
    np.testing.assert_allclose(heat[0], [0, 0, 0, 0.5, 1, 0.5, 0, 0])


def test_default_checkpoints_sound_heatmap_is_a_patch_map_over_its_own_paths_spectrogram(tmp_path, figure_args):
    """The default checkpoint hears through aisfx beside its own audio path (audio.tower_residual),
    so a sound's embedding is its map's patches plus one tower term: the page draws a patch map
    (frequency rows and time, not one flat block: its 2-s clip is shorter than one aisfx block),
    whose shares average to the sound's cosine with the query, over the map those patches are
    of (the model's own rate, 8 kHz at the top, not the tower's 22 kHz). Catches the block map
    drawn for such a model (one uniform tint), the tower term left out of the patches (shares no
    longer averaging to the cosine), and the patch grid drawn over the 44.1 kHz spectrogram."""
    from vlsa.checkpoint import shipped_checkpoint

    model = VLSA.from_pretrained(shipped_checkpoint()).eval()
    assert model.config.audio.tower_residual
    make_audio(tmp_path / "chirp.wav", 2.0, sample_rate=RATE, tone_hz=1500.0)
    data = render.window_data(model, model.config.clip_seconds, str(tmp_path / "chirp.wav"), 0.0, 2.0, False, True)
    query = model.embed_text(["a beep"])[0]
    heat = model.audio_patch_map(query, data.wave)
    cosine = float(model.embed_audio([data.wave])[0] @ query)
    assert abs(float(heat.mean()) - cosine) < 1e-4 and float(heat.std()) > 1e-3, (heat.mean(), cosine)
    render.spectrogram(model, data, query.numpy(), model.config.clip_seconds, 2.0)
    spec, drawn, seconds, hz = figure_args["args"]
    assert drawn.shape[0] == model.config.audio.grid[0] > 1
    assert hz[-1] <= model.config.audio.sample_rate / 2 + 1 and "title" not in figure_args["kwargs"]
