"""Reading manifests: every row is validated when the manifest is read; bad rows are skipped and
counted by reason with their line numbers, so none can crash a run later."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from mediagen import make_audio, make_video

from synth import generate
from train.data import MAX_CAPTION_CHARS, MAX_CAPTIONS, Row, load_row, parse_manifest, read_manifest
from train.shards import write_shards
from vlsa.config import preset_config
from vlsa.media import MediaError

VLSA_BIN = str(Path(sys.executable).parent / "vlsa")
TINY = preset_config("tiny")

# (line, expected reason or None for a good row); blank lines are not rows.
LINES = [
    ('{"video": "a.mp4", "text": "a fine row", "start": 1, "end": 3.5, "split": "test"}', None),
    ('{"video": "b.mp4", "text": 12345}', "text is not a string"),
    ('{"video": "c.mp4", "start": NaN}', "NaN or Infinity is not JSON"),
    ('{"video": "d.mp4", "end": Infinity}', "NaN or Infinity is not JSON"),
    ('["e.mp4", "a caption"]', "not a JSON object"),
    ('{"video": 42}', "video is not a path"),
    ('{"video": "f.mp4", "start": 5, "end": 2}', "end is not after start"),
    ('{"video": "g.mp4", "start": -1}', "start is negative"),
    ("not json at all", "not JSON"),
    ("", None),
    ('{"audio": "h.wav"}', None),
    ('{"text": "no media named"}', "no video and no audio"),
    ('{"video": "i.mp4", "start": "3"}', "start is not a number"),
    ('{"video": "j.mp4", "end": true}', "end is not a number"),
    ('{"video": "k.mp4", "audio": ["x.wav"]}', "audio is not a path"),
    ('{"video": "l.mp4", "split": 7}', "split is not a string"),
    ('{"video": "m.mp4", "text": null, "start": null}', None),
    # Numbers JSON allows that are no finite time once parsed (1e400 and a 401-digit integer are
    # infinite as floats).
    ('{"video": "n.mp4", "start": 1e400}', "start is not a finite number"),
    ('{"video": "o.mp4", "start": 0, "end": -1e999}', "end is not a finite number"),
    ('{"video": "p.mp4", "end": 1' + "0" * 400 + "}", "end is not a finite number"),
    # Text a tokenizer would spend a training step on (a 10 MB caption took 55 s).
    ('{"video": "q.mp4", "text": "' + "a" * (MAX_CAPTION_CHARS + 1) + '"}',
     f"text is longer than {MAX_CAPTION_CHARS} characters"),
    ('{"video": "r.mp4", "captions": ["fine", "' + "b" * (MAX_CAPTION_CHARS + 1) + '"]}',
     f"captions is longer than {MAX_CAPTION_CHARS} characters"),
    ('{"video": "s.mp4", "captions": ' + json.dumps(["c"] * (MAX_CAPTIONS + 1)) + "}",
     f"captions holds more than {MAX_CAPTIONS}"),
    ('{"video": "t.mp4", "text": "' + "d" * MAX_CAPTION_CHARS + '"}', None),
]


def write(path: Path, lines) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def test_parse_manifest_skips_bad_rows_with_their_line_numbers(tmp_path):
    """Catches any of these rows getting through to a sample (where `"text": 12345` crashed the
    tokenizer mid-run, NaN or Infinity times reached the decoder, start > end and negative times
    were used silently, a 10 MB caption cost a step 55 s), and a bad line ending the read. Seen
    to fail with the finite check of a time removed (1e400 passed) and with no caption cap."""
    rows, rejected = parse_manifest(write(tmp_path / "m.jsonl", [line for line, _ in LINES]))
    expected = [(n, reason) for n, (_, reason) in enumerate(LINES, 1) if reason]
    assert rejected == expected
    assert [r.video.name if r.video else r.audio.name for r in rows] == ["a.mp4", "h.wav", "m.mp4", "t.mp4"]
    first = rows[0]
    assert (first.text, first.start, first.end, first.split) == ("a fine row", 1.0, 3.5, "test")
    assert rows[2].start == 0.0 and rows[2].text is None


def test_read_manifest_says_what_it_skipped_in_one_line(tmp_path, caplog):
    """Catches skipped rows going unmentioned: a summary line names the manifest, the count and
    each line's reason."""
    path = write(tmp_path / "m.jsonl", [line for line, _ in LINES])
    with caplog.at_level(logging.WARNING, logger="train.data"):
        rows = read_manifest(path, split="train")
    assert len(rows) == 3
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith(f"manifest {path}: 19 rows skipped (line 2: text is not a string; ")
    assert "line 9: not JSON" in message and "\n" not in message


def test_read_manifest_with_no_usable_row_is_one_error(tmp_path):
    """Catches a manifest of nothing but bad rows starting a run with no data."""
    path = write(tmp_path / "m.jsonl", ['{"video": 1}', "[]"])
    with pytest.raises(ValueError, match=r"m.jsonl: no usable rows \(line 1: video is not a path; line 2: not a"):
        read_manifest(path)


def test_load_row_past_the_end_of_the_file_is_a_skipped_sample(tmp_path):
    """Catches a row whose start lies past the end of its file training on the file's last frame
    repeated and silence (the duration is known only once the file is opened)."""
    video = make_video(tmp_path / "v.mp4", 2.0)
    sound = make_audio(tmp_path / "s.wav", 2.0)
    for row in (Row(video, None, "x", start=5.0, end=7.0), Row(None, sound, "x", start=2.5),
                Row(video, sound, "x", start=3.0)):
        with pytest.raises(MediaError, match="starts past the end of the file"):
            load_row(row, TINY.video, TINY.audio)
    assert load_row(Row(video, None, "x", start=1.5, end=3.5), TINY.video, TINY.audio).frames is not None


def test_shards_count_the_rows_the_manifest_skipped(tmp_path):
    """Catches `vlsa data shard` reading a manifest past its bad rows without counting them."""
    make_audio(tmp_path / "h.wav", 1.0)
    path = write(tmp_path / "m.jsonl", ['{"audio": "h.wav"}', '{"audio": "h.wav", "text": 1}', "[1]"])
    index = write_shards(path, tmp_path / "shards", TINY)
    assert len(index["samples"]) == 1
    assert index["skipped"] == {"text is not a string": 1, "not a JSON object": 1}


@pytest.mark.slow
def test_train_runs_past_bad_manifest_rows(tmp_path):
    """Catches bad rows crashing `vlsa train` mid-run (a traceback after some steps, progress
    lost): the run reports them at the start and trains to the end."""
    manifest = generate(tmp_path / "synth", n=4, seed=1, split="train", seconds=1.0, size=64)
    good = manifest.read_text().splitlines()
    bad = ['{"video": "clip_0000.mp4", "text": 12345}', '{"video": "x.mp4", "start": NaN}',
           '{"video": "x.mp4", "end": Infinity}', '["x.mp4"]', '{"video": 3}']
    mixed = write(tmp_path / "synth" / "mixed.jsonl", [good[0], *bad, *good[1:]])
    proc = subprocess.run([VLSA_BIN, "train", "--manifest", str(mixed), "--out", str(tmp_path / "run"),
                           "--preset", "tiny", "--batch-size", "2", "--workers", "0", "--steps", "3",
                           "--no-progress", "--set", "encoder.depth=1", "--set", "decoder.depth=1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"manifest {mixed}: 5 rows skipped (line 2: text is not a string; line 3: NaN" in proc.stderr
    assert "stopped (done) at step 3" in proc.stdout



def test_merge_makes_paths_absolute_keeps_fields_and_counts_bad_rows(tmp_path, monkeypatch):
    """`vlsa data merge`: catches a path left relative to a manifest's folder (it would resolve
    against the merged file's), a dropped field (group, licence: what evaluation and credits read)
    and a bad row that crashes the merge instead of being counted."""
    from train.manifest import merge_manifests

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    (tmp_path / "a" / "m.jsonl").write_text(
        json.dumps({"audio": "s/x.wav", "text": "a dog barks", "split": "test", "group": "g", "licence": "CC0"}) + "\n"
        + "{not json\n")
    (tmp_path / "b" / "m.jsonl").write_text(json.dumps({"video": "/abs/v.mp4", "start": 1.5, "end": 3.0}) + "\n")
    monkeypatch.chdir(tmp_path)  # manifests named relative to the working folder, as on a command line
    rows, skipped = merge_manifests([Path("a/m.jsonl"), Path("b/m.jsonl")])
    assert skipped == 1
    assert rows == [{"audio": str(tmp_path / "a" / "s" / "x.wav"), "text": "a dog barks", "split": "test",
                     "group": "g", "licence": "CC0"},
                    {"video": "/abs/v.mp4", "start": 1.5, "end": 3.0, "split": "train"}]
