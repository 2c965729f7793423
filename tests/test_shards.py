"""Shards and manifests: `vlsa data shard` gives the samples decoding would, `vlsa data manifest`
reads sidecar captions."""

import json
from pathlib import Path

import pytest
import torch
from mediagen import make_video

from catalog.scan import scan
from synth import generate
from train.data import ClipDataset, read_manifest
from train.manifest import build_manifest, parse_subtitles
from train.shards import ShardDataset, write_shards
from vlsa.config import preset_config


def test_shards_match_decoded_samples(tmp_path):
    manifest = generate(tmp_path / "synth", n=6, seed=2, split="test")
    with open(manifest, "a") as f:
        f.write(json.dumps({"video": "clips/missing.mp4", "text": "gone", "split": "test"}) + "\n")
    cfg = preset_config("tiny")
    index = write_shards(manifest, tmp_path / "shards", cfg, per_shard=4)
    assert len(index["samples"]) == 6 and index["skipped"] == {"missing file": 1}
    assert len(list((tmp_path / "shards").glob("shard-*.tar"))) == 2
    from_shards = ShardDataset(tmp_path / "shards", cfg, split="test", train=False)
    decoded = ClipDataset(read_manifest(manifest, split="test")[:6], cfg, train=False)
    assert from_shards.captions() == decoded.captions()
    assert not from_shards._files  # nothing left open for forked workers to share
    for i in range(6):
        a, b = from_shards[i], decoded[i]
        assert torch.equal(a["text"], b["text"]) and bool(a["has_audio"]) == bool(b["has_audio"])
        # 16-bit PCM: the noise floor moves only the near-silent bins of the log map
        assert (a["audio"] - b["audio"]).abs().mean() < 0.05
        # JPEG at quality 90 of pool frames near (not at) the uniform times
        assert (a["video"] - b["video"]).abs().mean() < 0.35
    train = ShardDataset(tmp_path / "shards", cfg, split="test", train=True, seed=1)
    assert torch.equal(train[0]["video"], train[0]["video"])  # deterministic per (seed, epoch, index)


def test_shards_are_read_by_webdataset(tmp_path):
    """Other webdataset tools read our shards: `webdataset.WebDataset` yields each indexed sample
    under its key with the members the index points at, byte for byte. Catches a writer whose
    tars only our offset index can read (a key holding a dot, members of a sample apart)."""
    import webdataset

    manifest = generate(tmp_path / "synth", n=3, seed=2, split="test")
    index = write_shards(manifest, tmp_path / "shards", preset_config("tiny"), per_shard=2)
    ours = ShardDataset(tmp_path / "shards", preset_config("tiny"), split=None)
    read = [s for shard in sorted((tmp_path / "shards").glob("shard-*.tar"))
            for s in webdataset.WebDataset(str(shard), shardshuffle=False, empty_check=False)]
    assert [s["__key__"] for s in read] == [e["key"] for e in index["samples"]]
    for sample, entry in zip(read, ours.samples, strict=True):
        members = {k: v for k, v in sample.items() if not k.startswith("__")}
        assert set(members) == set(entry["members"])
        assert all(members[k] == ours._read(entry["shard"], entry["members"][k]) for k in members)


def test_shards_for_another_preset_are_refused(tmp_path):
    manifest = generate(tmp_path / "synth", n=2, seed=2, split="test")
    write_shards(manifest, tmp_path / "shards", preset_config("tiny"))
    with pytest.raises(ValueError, match="shards were made for"):
        ShardDataset(tmp_path / "shards", preset_config("small"))


def test_manifest_from_folder_with_sidecars(tmp_path):
    make_video(tmp_path / "a.mp4", 1.0)
    (tmp_path / "a.txt").write_text("a dog barks\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    make_video(tmp_path / "sub" / "b.mp4", 1.0)
    (tmp_path / "sub" / "b.srt").write_text("1\n00:00:00,000 --> 00:00:01,500\nfirst <i>line</i>\n\n"
                                            "2\n00:00:01,500 --> 00:00:03,000\nsecond\nline\n")
    make_video(tmp_path / "c.mp4", 1.0)
    make_video(tmp_path / ".hidden" / "d.mp4", 1.0)
    rows = build_manifest(tmp_path)
    assert [r["video"] for r in rows] == ["a.mp4", "c.mp4", "sub/b.mp4", "sub/b.mp4"]
    assert rows[0]["text"] == "a dog barks" and "text" not in rows[1]
    assert rows[2] == {"video": "sub/b.mp4", "text": "first line", "start": 0.0, "end": 1.5, "split": "train"}
    assert rows[3]["text"] == "second line"


def test_manifest_lists_what_the_catalog_indexes(tmp_path):
    """A folder's manifest holds the media files a catalog scan of it finds, and nothing else.

    Catches the trainer and the catalog keeping their own lists of media extensions (the
    manifest once knew 12, the scan 31: an .aiff or .mts was indexed but never trained on)."""
    for name in ["a.aiff", "b.mts", "c.MP4", "d.opus", "notes.txt", "e.srt"]:
        (tmp_path / name).write_bytes(b"x")
    scanned = [Path(f.path).relative_to(tmp_path).as_posix() for f in scan([tmp_path]).files]
    assert [r["video"] for r in build_manifest(tmp_path)] == scanned == ["a.aiff", "b.mts", "c.MP4", "d.opus"]


def test_parse_webvtt():
    cues = parse_subtitles("WEBVTT\n\n00:01.000 --> 00:02.500 align:start\nhello\n\n1:00:00.000 --> 1:00:01.000\nlate\n")
    assert cues == [(1.0, 2.5, "hello"), (3600.0, 3601.0, "late")]


def test_manifest_keeps_media_whose_subtitles_do_not_parse(tmp_path, caplog):
    """A sidecar that is not subtitles is named in a warning and its media still gets a row;
    cue times keep their milliseconds. Catches a bad sidecar dropping its media from the manifest
    (the hand-written parser found no cue and listed nothing) or stopping the whole build, and
    times cut to whole seconds (webvtt-py's start_in_seconds)."""
    make_video(tmp_path / "a.mp4", 1.0)
    (tmp_path / "a.srt").write_text("this is not a subtitle file\n")
    make_video(tmp_path / "b.mp4", 1.0)
    (tmp_path / "b.vtt").write_text("WEBVTT\n\n00:00.250 --> 00:01.750\n<v Bob>hi <b>there</b>\n")
    with caplog.at_level("WARNING", logger="train.manifest"):
        rows = build_manifest(tmp_path)
    assert rows == [{"video": "a.mp4", "split": "train"},
                    {"video": "b.mp4", "text": "hi there", "start": 0.25, "end": 1.75, "split": "train"}]
    assert "a.srt: not SRT subtitles" in caplog.text


def test_load_row_takes_sound_from_a_separate_audio_file(tmp_path):
    from mediagen import make_audio

    from train.data import Row, load_row

    make_video(tmp_path / "silent.mp4", 2.0, audio=False)
    make_audio(tmp_path / "tone.wav", 2.0, 16000, tone_hz=440.0)
    cfg = preset_config("tiny")
    clip = load_row(Row(video=tmp_path / "silent.mp4", audio=tmp_path / "tone.wav", text="x"), cfg.video, cfg.audio)
    assert clip.has_video and clip.has_audio and clip.frames.shape == (4, 3, 64, 64)
    assert clip.wave.abs().max() > 0.1
