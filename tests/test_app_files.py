"""app.files (the allow-list and the upload checks) and app.clips (the player's cuts)."""

import os
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from mediagen import SHARED_MEDIA, frame_index, make_audio, make_video

from app import clips
from app.files import FileGuard, FileRefused, UploadLimits, UploadRejected, check_upload, fold, library_roots
from catalog.store import Catalog, FileRecord, Settings
from vlsa.media import probe


@pytest.fixture
def tree(tmp_path) -> dict[str, Path]:
    """lib/ with a clip, a file and a folder linked from outside, beside a secret and a work dir."""
    lib, outside, work = tmp_path / "lib", tmp_path / "outside", tmp_path / "work"
    for folder in (lib / "sub", outside, work):
        folder.mkdir(parents=True)
    (lib / "a.mp4").write_bytes(b"x")
    (lib / "sub" / "b.wav").write_bytes(b"x")
    (outside / "secret.txt").write_text("secret")
    (tmp_path / "beside.txt").write_text("secret")
    (lib / "escape.mp4").symlink_to(outside / "secret.txt")
    (lib / "linked").symlink_to(outside)
    (work / "clip.mp4").write_bytes(b"x")
    return {"lib": lib, "outside": outside, "work": work, "base": tmp_path}


def test_files_guard_allows_the_library_and_its_own_folder(tree):
    guard = FileGuard(roots=fold([tree["lib"]]), workdir=os.path.realpath(tree["work"]))
    assert guard.allows(tree["lib"] / "a.mp4")
    assert guard.allows(tree["lib"] / "sub" / "b.wav")
    assert guard.allows(tree["work"] / "clip.mp4")
    assert guard.check(tree["lib"] / "a.mp4") == str(tree["lib"] / "a.mp4")


@pytest.mark.parametrize("path", [
    "lib/../beside.txt",  # traversal
    "lib/sub/../../outside/secret.txt",
    "lib/escape.mp4",  # a link inside the library to a file outside it
    "lib/linked/secret.txt",  # a link to a folder outside it
    "/etc/passwd",  # absolute
    "lib-other/a.mp4",  # a sibling whose name starts like the root
])
def test_files_guard_refuses_paths_outside_the_library(tree, path):
    guard = FileGuard(roots=fold([tree["lib"]]), workdir=os.path.realpath(tree["work"]))
    target = path if path.startswith("/") else str(tree["base"] / path)
    assert not guard.allows(target)
    with pytest.raises(FileRefused, match="outside the library"):
        guard.check(target)


def test_files_guard_blocks_the_catalog_inside_a_root(tree):
    db = tree["lib"] / "library.db"
    with Catalog(db) as catalog:
        catalog.bind(Settings("f" * 16, None, "tiny", 4, 2.0, 2.0))
        catalog.write_files([FileRecord(str(tree["lib"] / "a.mp4"), 1, 1, error="a.mp4: broken")])
        guard = FileGuard.for_catalog(catalog, tree["work"])
    assert guard.roots == [os.path.realpath(tree["lib"])]
    assert not guard.allows(db) and not guard.allows(str(db) + "-wal")
    paths = guard.launch_paths()
    assert paths["allowed_paths"] == [os.path.realpath(tree["lib"]), os.path.realpath(tree["work"])]
    assert os.path.realpath(db) in paths["blocked_paths"]


def test_files_library_roots_are_the_folders_of_indexed_files_folded(tmp_path):
    with Catalog(tmp_path / "c.db") as catalog:
        catalog.bind(Settings("f" * 16, None, "tiny", 4, 2.0, 2.0))
        records = [FileRecord(p, 1, 1, error="x") for p in ("/m/v/a.mp4", "/m/v/deep/b.mp4", "/m/s/c.wav")]
        catalog.write_files(records)
        assert library_roots(catalog) == ["/m/s", "/m/v"]  # /m itself holds nothing: not served


def test_files_upload_accepts_a_sound(tmp_path):
    info = check_upload(make_audio(tmp_path / "ok.wav", 1.0))
    assert info.has_audio and info.duration == pytest.approx(1.0, abs=0.01)


def test_files_upload_rejects_what_is_not_a_sound(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("not a sound at all\n" * 50)
    with pytest.raises(UploadRejected, match="notes.wav is not an audio file"):
        check_upload(text)
    with pytest.raises(UploadRejected, match="not an audio file"):
        check_upload(make_video(tmp_path / "silent.mp4", 1.0, audio=False))
    with pytest.raises(UploadRejected, match="Upload a sound"):
        check_upload(None)


def test_files_upload_rejects_too_long_and_too_large(tmp_path):
    sound = make_audio(tmp_path / "three.wav", 3.0)
    with pytest.raises(UploadRejected, match=r"too long \(3 s; at most 2 s\)"):
        check_upload(sound, UploadLimits(max_seconds=2.0))
    with pytest.raises(UploadRejected, match="too large"):
        check_upload(sound, UploadLimits(max_bytes=1000))


def test_clips_cut_video_starts_at_the_window(tmp_path):
    source = make_video(tmp_path / "v.mp4", 5.0, fps=12)
    cut = clips.cut(str(source), probe(source), 2.0, 3.0, tmp_path)
    info = probe(cut)
    assert cut.suffix == ".mp4" and info.has_video and info.has_audio
    assert info.duration == pytest.approx(3.0 + clips.CONTEXT_AFTER - 2.0, abs=0.15)  # 2 s to 5 s
    with av.open(str(cut)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert frame_index(first.transpose(2, 0, 1)) == 24  # 2.0 s at 12 fps
    assert clips.cut(str(source), probe(source), 2.0, 3.0, tmp_path) == cut  # cached


def test_clips_cut_sound_is_a_wav_of_the_window_plus_context(tmp_path):
    source = make_audio(tmp_path / "s.wav", 10.0)
    cut = clips.cut(str(source), probe(source), 1.0, 3.0, tmp_path)
    with wave.open(str(cut)) as f:
        seconds = f.getnframes() / f.getframerate()
        samples = np.frombuffer(f.readframes(f.getnframes()), "<i2")
    assert seconds == pytest.approx(2.0 + clips.CONTEXT_AFTER, abs=0.01)
    assert np.abs(samples).max() > 1000  # the tone, not silence


def test_clips_span_stays_inside_the_file():
    assert clips.clip_span(0.0, 2.0, 2.0) == (0.0, 2.0)
    assert clips.clip_span(10.0, 70.0, None) == (10.0, 10.0 + clips.MAX_CLIP_SECONDS)


@pytest.mark.skipif(not (SHARED_MEDIA / "video").is_dir(), reason="no shared media on this machine")
@pytest.mark.parametrize("name", ["bigbuckbunny.mp4", "tree.avi"])
def test_clips_cut_real_video_keeps_its_timing(tmp_path, name):
    """HD H.264 with 5.1 sound, and an AVI that stores about 2 of its nominal 15 frames a second."""
    source = SHARED_MEDIA / "video" / name
    info = probe(source)
    cut = clips.cut(str(source), info, 1.0, 2.0, tmp_path)
    out = probe(cut)
    assert out.has_video and out.has_audio == info.has_audio and out.height <= clips.PLAYER_HEIGHT
    assert out.duration == pytest.approx(min(2.0 + clips.CONTEXT_AFTER, info.duration) - 1.0, abs=0.3)
