"""The synthetic tri-modal set: deterministic, captions that name what is seen and heard, boxes
on the sounding object, sound where the events are, and the `vlsa data synth` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

import synth
from synth.attributes import (
    CLIP_TAG,
    COLOURS,
    NOTES_HZ,
    SHAPES,
    SIZES,
    TEMPLATES,
    Attributes,
    ClipSpec,
    plan_clips,
)
from synth.render import RenderSettings, render_clip
from synth.sound import synthesize

VLSA = Path(sys.executable).parent / "vlsa"
SR = 16000


def read_manifest(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def decode(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(T, H, W, 3) uint8 frames and the mono float waveform of an mp4."""
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)[0]
    return frames, audio


def render_one(tmp_path: Path, attrs: Attributes, index: int = 0) -> tuple[dict, np.ndarray, np.ndarray]:
    """Render a clip with chosen attributes; return its row, frames and audio."""
    (tmp_path / "clips").mkdir(exist_ok=True)
    spec = ClipSpec(index, "test", attrs, (0, 2, CLIP_TAG, index))
    row = render_clip(spec, RenderSettings(str(tmp_path), 2.0, 12, 96, SR))
    return (row, *decode(tmp_path / row["video"]))


@pytest.fixture(scope="module")
def small_set(tmp_path_factory) -> Path:
    """Twelve training clips, seed 0."""
    return synth.generate(tmp_path_factory.mktemp("synth") / "a", n=12, seed=0)


def test_generate_same_seed_is_identical(small_set, tmp_path):
    again = synth.generate(tmp_path, n=12, seed=0, workers=2)
    assert again.read_bytes() == small_set.read_bytes()
    for row in read_manifest(again):
        frames_a, audio_a = decode(small_set.parent / row["video"])
        frames_b, audio_b = decode(tmp_path / row["video"])
        assert np.array_equal(frames_a, frames_b) and np.array_equal(audio_a, audio_b)


def test_generate_different_seeds_differ(small_set, tmp_path):
    other = synth.generate(tmp_path, n=12, seed=1)
    assert [r["text"] for r in read_manifest(other)] != [r["text"] for r in read_manifest(small_set)]
    assert not np.array_equal(decode(other.parent / "clips/00000.mp4")[0],
                              decode(small_set.parent / "clips/00000.mp4")[0])


def test_manifest_rows_have_the_documented_fields(small_set):
    for row in read_manifest(small_set):
        assert set(row) == {"video", "text", "split", "start", "end", "attributes", "boxes", "fps", "events"}
        assert (small_set.parent / row["video"]).is_file() and row["video"].startswith("clips/")
        assert row["split"] == "train" and row["start"] == 0.0 and row["end"] == 2.0 and row["fps"] == 12
        assert len(row["boxes"]) == 24 and all(0 <= v <= 1 for box in row["boxes"] for v in box)


def test_plan_test_split_has_unique_captions_and_refuses_too_many(tmp_path):
    specs = plan_clips(len(synth.all_attributes()), seed=5, split="test", unique=True)
    assert len({s.attrs for s in specs}) == len(specs) >= 240
    manifest = synth.generate(tmp_path, n=10, seed=5, split="test")
    texts = [r["text"] for r in read_manifest(manifest)]
    assert len(set(texts)) == 10
    with pytest.raises(ValueError, match=f"{synth.DISTINCT_CAPTIONS} distinct captions"):
        synth.generate(tmp_path, n=synth.DISTINCT_CAPTIONS + 1, seed=0, split="val")


def test_generate_splits_keeps_test_captions_unique_and_seeds_disjoint(tmp_path):
    train = plan_clips(50, 0, "train", unique=False)
    test = plan_clips(20, 0, "test", unique=True, first_index=50)
    assert not {s.entropy for s in train} & {s.entropy for s in test}
    rows = read_manifest(synth.generate_splits(tmp_path, n_train=4, n_test=3, seed=0))
    assert [r["split"] for r in rows] == ["train"] * 4 + ["test"] * 3
    assert [r["video"] for r in rows] == [f"clips/{i:05d}.mp4" for i in range(7)]


def test_caption_contains_every_attribute_word():
    for attrs in synth.all_attributes():
        words = attrs.to_dict()
        for template in range(len(TEMPLATES)):
            for phrase in range(2):
                text = synth.caption(attrs, template, phrase)
                for key in ("colour", "shape", "size", "motion", "instrument", "register", "loudness"):
                    assert f" {words[key]} " in f" {text} ", (key, text)


def test_distinct_captions_is_the_number_of_captions_the_generator_makes():
    """DISTINCT_CAPTIONS bounds the clips of a unique-caption split (`vlsa demo --clips`). Catches
    it going stale (written as 288 while a table gains a ninth colour) and a template that drops
    the colour word, so that two combinations share one caption."""
    for template in range(len(TEMPLATES)):
        captions = {synth.caption(a, template) for a in synth.all_attributes()}
        assert len(captions) == synth.DISTINCT_CAPTIONS, template


def test_box_contains_the_sounding_objects_colour(small_set):
    for row in read_manifest(small_set):
        frames, _ = decode(small_set.parent / row["video"])
        rgb = np.array(COLOURS[row["attributes"]["colour"]], dtype=float)
        for frame, box in zip(frames, row["boxes"], strict=True):
            x0, y0, x1, y1 = (round(v * 96) for v in box)
            inside = np.zeros(frame.shape[:2], bool)
            inside[y0:y1, x0:x1] = True
            near = np.linalg.norm(frame.astype(float) - rgb, axis=-1) < 60
            assert near[inside].mean() > 0.2  # a star fills about a third of its box, less when blurred
            assert near[~inside].mean() < 0.01
            assert (np.linalg.norm(frame[inside].mean(0) - rgb)
                    < np.linalg.norm(frame[~inside].mean(0) - rgb))


def test_bounce_events_fall_on_frames_touching_a_wall(tmp_path):
    row, _, audio = render_one(tmp_path, Attributes("green", "square", "large", "bounces"))
    assert row["events"], "a bounce clip must bounce at least once in 2 s"
    for t in row["events"]:
        x0, y0, x1, y1 = row["boxes"][round(t * 12)]
        assert min(x0, y0) == 0 or max(x1, y1) == 1


@pytest.mark.parametrize("motion", ["bounces", "pulses"])
def test_audio_has_energy_at_the_events(tmp_path, motion):
    row, _, audio = render_one(tmp_path, Attributes("orange", "triangle", "large", motion))
    window = int(0.04 * SR)
    energy = np.array([np.mean(audio[i:i + window] ** 2) for i in range(0, 2 * SR, window)])
    assert row["events"] and np.median(energy) < 0.1 * energy.max()
    for t in row["events"]:
        start = int(t * SR)
        assert np.mean(audio[start:start + window] ** 2) > 0.3 * energy.max(), t


def test_slide_sound_peaks_at_the_colours_note(tmp_path):
    shapes = list(SHAPES)
    for k, colour in enumerate(COLOURS):
        attrs = Attributes(colour, shapes[k % len(shapes)], "large", "slides")
        row, _, audio = render_one(tmp_path, attrs, index=k)
        spectrum = np.abs(np.fft.rfft(audio[: 2 * SR] * np.hanning(2 * SR)))
        peak = np.fft.rfftfreq(2 * SR, 1 / SR)[spectrum.argmax()]
        assert abs(peak - NOTES_HZ[colour]) < 0.02 * NOTES_HZ[colour], (attrs, peak)


def test_synthesize_large_is_louder_than_small():
    rms = {}
    for size in SIZES:
        wave = synthesize(Attributes("red", "circle", size, "slides"), [0.0], 2.0, SR,
                                np.random.default_rng(0))
        rms[size] = np.sqrt(np.mean(wave**2))
    assert rms["large"] > 3 * rms["small"]


def test_cli_data_synth_writes_a_loadable_manifest(tmp_path):
    out = tmp_path / "set"
    result = subprocess.run([str(VLSA), "data", "synth", str(out), "--n", "4", "--seed", "2", "--test", "3",
                             "--workers", "1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1 and "manifest.jsonl" in result.stdout
    rows = read_manifest(out / "manifest.jsonl")
    assert [r["split"] for r in rows] == ["train"] * 4 + ["test"] * 3
    assert len({r["text"] for r in rows[4:]}) == 3
    frames, audio = decode(out / rows[-1]["video"])
    assert frames.shape == (24, 96, 96, 3) and len(audio) >= 2 * SR


def test_cli_data_synth_rejects_too_many_unique_captions(tmp_path):
    result = subprocess.run([str(VLSA), "data", "synth", str(tmp_path), "--n", str(synth.DISTINCT_CAPTIONS + 1),
                             "--split", "test"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and f"{synth.DISTINCT_CAPTIONS} distinct captions" in result.stderr
