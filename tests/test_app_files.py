"""app.files (the allow-list and the upload checks) and app.clips (the player's cuts)."""

import os
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from mediagen import frame_index, make_audio, make_video
from requires import require_shared_media

from app import clips
from app.files import FileGuard, FileRefused, UploadLimits, UploadRejected, check_upload
from catalog.store import Catalog, FileRecord, Settings
from vlsa.media import probe


def indexed(path: Path, error: str | None = None) -> FileRecord:
    """The record the indexer writes for a file it read (no windows: the guard does not look)."""
    stat = path.stat()
    return FileRecord(str(path), stat.st_size, stat.st_mtime_ns, error=error, dev=stat.st_dev, ino=stat.st_ino)


@pytest.fixture
def library(tmp_path) -> dict[str, Path]:
    """A catalogued library beside everything that must not be served: hidden files, a note next to
    the media, a folder linked from outside (one of its files catalogued, one not), links named
    like media that point at a secret (one failed to index, one swapped in after indexing), and a
    failed file in a folder of its own."""
    lib, outside, elsewhere, work = (tmp_path / n for n in ("lib", "outside", "elsewhere", "work"))
    for folder in (lib / "sub", lib / ".ssh", outside, elsewhere, work / "clips"):
        folder.mkdir(parents=True)
    for media in (lib / "a.mp4", lib / "sub" / "b.wav", outside / "v.mp4", work / "clips" / "c.mp4", lib / "swapped.mp4"):
        media.write_bytes(b"media")
    for secret in (lib / ".env", lib / "notes.txt", lib / ".ssh" / "id_rsa", outside / "secret.txt",
                   elsewhere / "secret.txt", tmp_path / "beside.txt", work / ".hidden"):
        secret.write_text("secret")
    (lib / "linked").symlink_to(outside)
    (lib / "escape.mp4").symlink_to(tmp_path / "beside.txt")
    (elsewhere / "broken.mp4").write_text("not media")
    (lib / ".hidden.mp4").write_bytes(b"media")
    with Catalog(tmp_path / "c.db") as catalog:
        catalog.bind(Settings("f" * 16, None, "tiny", 4, 2.0, 2.0))
        ok = [lib / "a.mp4", lib / "sub" / "b.wav", lib / "linked" / "v.mp4", lib / ".hidden.mp4", lib / "swapped.mp4"]
        failed = [lib / "escape.mp4", elsewhere / "broken.mp4"]
        catalog.write_files([indexed(p) for p in ok] + [indexed(p, error="not media") for p in failed])
    (lib / "swapped.mp4").unlink()
    (lib / "swapped.mp4").symlink_to(tmp_path / "beside.txt")  # a catalogued file replaced by a link
    return {"lib": lib, "outside": outside, "elsewhere": elsewhere, "work": work, "base": tmp_path,
            "db": tmp_path / "c.db"}


@pytest.fixture
def guard(library):
    with Catalog(library["db"]) as catalog:
        yield FileGuard.for_catalog(catalog, library["work"])


@pytest.mark.parametrize("path", [
    "lib/a.mp4", "lib/sub/b.wav",
    "lib/linked/v.mp4",  # catalogued through a link: its real path is outside/v.mp4
    "lib/sub/../a.mp4",  # another spelling of a catalogued file
    "work/clips/c.mp4",  # the app's own temporary files
])
def test_files_guard_serves_the_catalogued_media_and_its_own_files(library, guard, path):
    assert guard.allows(library["base"] / path)
    assert guard.check(library["base"] / path) == str(library["base"] / path)


@pytest.mark.parametrize("path", [
    "lib/.env", "lib/.ssh/id_rsa",  # hidden files beside the media (issue 15, item 1)
    "lib/notes.txt",  # a file beside the media that is not media
    "lib/.hidden.mp4",  # hidden, even when catalogued (named on the command line)
    "work/.hidden",  # hidden in the app's own folder
    "lib/sub/../notes.txt", "lib/../beside.txt",  # traversal
    "lib/linked/secret.txt", "outside/secret.txt",  # the target of a linked subfolder (item 2)
    "lib/escape.mp4",  # a link named like media to a secret (recorded as failed)
    "lib/swapped.mp4",  # a catalogued file replaced by a link to a secret
    "elsewhere/broken.mp4", "elsewhere/secret.txt",  # a failed file and its folder (item 2)
    "c.db",  # the catalog itself
    "/etc/passwd", "/etc/hostname",  # absolute paths outside
    "lib", "lib/sub",  # folders
])
def test_files_guard_refuses_everything_but_catalogued_media(library, guard, path):
    """Catches a guard that serves by folder (the library's folders, the folder of a failed file or
    a link's target), that follows links or `..` before looking up, or that serves hidden files."""
    target = path if path.startswith("/") else str(library["base"] / path)
    assert not guard.allows(target)
    with pytest.raises(FileRefused, match="not a catalogued media file"):
        guard.check(target)


def test_files_guard_follows_the_catalog_while_the_app_runs(library, guard):
    """Catches a served set read once at start: `vlsa index` may add, change or remove files
    meanwhile; a changed file is served again once it is indexed again."""
    new = library["lib"] / "sub" / "new.wav"
    new.write_bytes(b"media")
    assert not guard.allows(new)
    with Catalog(library["db"]) as writer:
        writer.write_files([indexed(new)])
    assert guard.allows(new)
    new.write_bytes(b"changed since it was indexed")
    assert not guard.allows(new)
    with Catalog(library["db"]) as writer:
        writer.remove_media([str(library["lib"] / "a.mp4")])
    assert not guard.allows(library["lib"] / "a.mp4")


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


@pytest.mark.parametrize("name", ["bigbuckbunny.mp4", "tree.avi"])
def test_clips_cut_real_video_keeps_its_timing(tmp_path, name):
    """HD H.264 with 5.1 sound, and an AVI that stores about 2 of its nominal 15 frames a second."""
    source = require_shared_media("video", name)
    info = probe(source)
    cut = clips.cut(str(source), info, 1.0, 2.0, tmp_path)
    out = probe(cut)
    assert out.has_video and out.has_audio == info.has_audio and out.height <= clips.PLAYER_HEIGHT
    assert out.duration == pytest.approx(min(2.0 + clips.CONTEXT_AFTER, info.duration) - 1.0, abs=0.3)


def twin(of: Path, at: Path) -> Path:
    """A file that is not media with the size and modification time of `of`."""
    at.write_bytes(b"x" * of.stat().st_size)
    os.utime(at, ns=(of.stat().st_atime_ns, of.stat().st_mtime_ns))
    return at


def test_files_guard_refuses_a_same_size_same_time_replacement(library, guard):
    """Catches (issue 30, item 2) a guard that compares name, size and time only: a catalogued
    file replaced by a link to another file of the same size and time is another inode."""
    a = library["lib"] / "a.mp4"
    secret = twin(a, library["base"] / "twin.txt")
    a.unlink()
    a.symlink_to(secret)
    assert not guard.allows(a)


def test_files_open_reads_the_file_checked_whatever_the_name_leads_to_later(library, guard):
    """Catches a reader that reopens the path after the check (issue 30, item 1): the pinned name
    still reads the media after the catalogued name is pointed at a secret."""
    link = library["lib"] / "sub" / "link.wav"
    link.symlink_to(library["lib"] / "a.mp4")
    with Catalog(library["db"]) as writer:
        writer.write_files([indexed(link)])
    with guard.open(link) as opened:
        link.unlink()
        link.symlink_to(twin(library["lib"] / "a.mp4", library["base"] / "twin.txt"))
        assert Path(opened.pinned).read_bytes() == b"media"
    with pytest.raises(FileRefused):
        guard.open(link)


def test_files_guard_on_a_row_without_identity_needs_the_path_itself(library, guard):
    """A row from before schema 2 (no dev, ino): served only where the recorded path is the
    opened file's own (no link on the way). Catches a fallback that trusts size and time through
    a link: the same-size replacement above would be served."""
    lib = library["lib"]
    with Catalog(library["db"]) as writer:
        writer.db.execute("UPDATE media SET dev = NULL, ino = NULL")
    assert guard.allows(lib / "a.mp4") and guard.allows(lib / "sub" / "b.wav")
    assert not guard.allows(lib / "linked" / "v.mp4")  # through a link: refused until re-indexed
    secret = twin(lib / "a.mp4", library["base"] / "twin.txt")
    (lib / "a.mp4").unlink()
    (lib / "a.mp4").symlink_to(secret)
    assert not guard.allows(lib / "a.mp4")
