"""vlsa.media: decoding frames and audio, on generated media and on the shared real files."""

from pathlib import Path

import numpy as np
import pytest
import torch
from mediagen import SHARED_MEDIA, frame_index, make_audio, make_float_wav, make_truncated, make_video
from requires import require_shared_media

from vlsa import media
from vlsa.api import VLSA
from vlsa.config import preset_config
from vlsa.media import MediaError, iter_frames_at, load_clip, normalize_frames, probe, read_audio, read_frames

SHARED = SHARED_MEDIA
FPS = 12
TINY = preset_config("tiny")


def shared_files() -> list[Path]:
    return sorted(p for p in SHARED.rglob("*") if p.is_file() and p.suffix not in (".md", ".jsonl"))


def expected_index(t: float, fps: int = FPS) -> int:
    """The frame shown at time t: the last one whose timestamp i / fps is <= t."""
    return int(np.floor(t * fps + 1e-9))


def indices(frames: torch.Tensor) -> list[int]:
    return [frame_index(f) for f in frames]


@pytest.fixture(scope="module")
def video4(tmp_path_factory) -> Path:
    """4 s, 12 fps, with a 440 Hz tone."""
    return make_video(tmp_path_factory.mktemp("media") / "v4.mp4", 4.0)


@pytest.fixture(scope="module")
def video60(tmp_path_factory) -> Path:
    """60 s, 12 fps, a keyframe every 2 s, no audio."""
    return make_video(tmp_path_factory.mktemp("media") / "v60.mp4", 60.0, audio=False)


def test_load_clip_every_shared_file(tmp_path):
    require_shared_media()
    files = shared_files()
    assert len(files) == 358  # 114 scratch + 240 lmms sounds, 4 videos
    failures = []
    for path in files:
        try:
            clip = load_clip(path, 0.0, None, TINY.video, TINY.audio)
        except MediaError as e:
            failures.append(str(e))
            continue
        assert clip.wave.shape == (TINY.audio.num_samples,) and clip.wave.dtype == torch.float32
        assert torch.isfinite(clip.wave).all() and clip.wave.abs().max() <= 1.0
        if path.parent.name == "video":
            assert clip.has_video and clip.frames.shape == (4, 3, 64, 64), path
            assert clip.has_audio == (path.name == "bigbuckbunny.mp4"), path
        else:
            assert clip.frames is None and not clip.has_video and clip.has_audio, path
            assert clip.wave.abs().max() > 0, f"{path}: silent"
    assert not failures, failures


def test_load_clip_vorbis_inside_wav_decodes():
    # lmms ships a few .ogg files that are really WAV files wrapping an Ogg Vorbis stream (format
    # tag 0x674f), which FFmpeg has no decoder for; media unwraps them.
    path = require_shared_media("sounds/lmms/drums/kick04.ogg")
    assert path.read_bytes()[:4] == b"RIFF"
    info = probe(path)
    assert info.has_audio and info.sample_rate == 44100 and 0.5 < info.duration < 0.8
    assert read_audio(path, 0.0, 0.5, 16000).abs().max() > 0.1


def test_load_clip_video_without_audio_gives_silent_wave(tmp_path):
    path = make_video(tmp_path / "mute.mp4", 2.0, audio=False)
    clip = load_clip(path, 0.0, None, TINY.video, TINY.audio)
    assert clip.has_video and not clip.has_audio
    assert clip.frames.shape == (4, 3, 64, 64) and clip.frames.dtype == torch.uint8
    assert clip.wave.shape == (TINY.audio.num_samples,) and not clip.wave.any()
    with pytest.raises(MediaError, match="mute.mp4: no audio stream"):
        read_audio(path)


def test_load_clip_audio_is_in_sync(video4):
    # The tone's phase at `start` says whether the wave starts at the right sample.
    clip = load_clip(video4, 1.5, 2.5, TINY.video, TINY.audio)
    assert clip.has_audio and clip.has_video
    t = 1.5 + np.arange(16000) / 16000
    expected = 0.5 * np.sin(2 * np.pi * 440 * t)
    assert np.abs(clip.wave[:16000].numpy() - expected).max() < 0.02  # AAC is lossy
    assert not clip.wave[16000:].any()  # [start, end) is 1 s of a 2 s map: the rest is padding
    assert indices(clip.frames) == [expected_index(1.5 + (i + 0.5) / 4) for i in range(4)]


def test_read_frames_uniform_picks_segment_centres(video4):
    frames = read_frames(video4, 1.0, 3.0, num_frames=8, size=64)
    assert frames.shape == (8, 3, 64, 64) and frames.dtype == torch.uint8
    assert indices(frames) == [expected_index(1.0 + (i + 0.5) * 0.25) for i in range(8)]
    whole = read_frames(video4, num_frames=4, size=48)  # end=None: the whole file
    assert indices(whole) == [expected_index((i + 0.5) * 1.0) for i in range(4)]


def test_read_frames_random_is_deterministic_given_seed(video4):
    def draw(seed):
        g = torch.Generator().manual_seed(seed)
        return indices(read_frames(video4, 0.0, 4.0, num_frames=8, size=32, sampling="random", generator=g))

    a, b, c = draw(0), draw(0), draw(1)
    assert a == b and a != c
    for i, (x, y) in enumerate(zip(a, c, strict=True)):  # one frame from each half-second segment
        assert 6 * i <= x < 6 * (i + 1) and 6 * i <= y < 6 * (i + 1)


def test_read_frames_past_end_clamps_and_repeats(tmp_path, video4):
    short = make_video(tmp_path / "three.mp4", 0.25, audio=False)  # 3 frames
    frames = read_frames(short, 0.0, 10.0, num_frames=8, size=32)
    assert frames.shape == (8, 3, 32, 32)
    got = indices(frames)
    assert got == sorted(got) and set(got) == {0, 1, 2}
    tail = read_frames(video4, 3.5, 9.0, num_frames=2, size=32)  # clamped to [3.5, 4.0)
    assert indices(tail) == [expected_index(3.625), expected_index(3.875)]


def test_read_frames_crops_centre_of_wide_video(tmp_path):
    path = make_video(tmp_path / "wide.mp4", 0.5, size=(192, 96), audio=False)
    frames = read_frames(path, num_frames=2, size=48)
    assert frames.shape == (2, 3, 48, 48)
    # Squashing instead of cropping would bring in the dark corner blocks (level 8) beside the
    # background (64) along the top edge.
    assert abs(float(frames[:, :, :10, :].float().mean()) - 64) < 4


def test_read_frames_seeks_instead_of_decoding_the_file(video60, monkeypatch):
    decoded = []
    real = media._decode

    def counting(container, stream):
        for frame in real(container, stream):
            decoded.append(frame)
            yield frame

    monkeypatch.setattr(media, "_decode", counting)
    frames = read_frames(video60, 50.0, 51.0, num_frames=4, size=32)
    assert indices(frames) == [expected_index(50.0 + (i + 0.5) / 4) for i in range(4)]
    assert len(decoded) < 3 * 2 * FPS  # a keyframe interval or so, not the 600 frames before 50 s


def test_read_frames_decodes_from_start_when_seeking_fails(video60, monkeypatch):
    # Some files cannot seek (tiny FLACs answer EPERM and leave the demuxer at the end): the
    # readers start over and decode from the beginning instead.
    def broken(container, stream, t):
        raise media._SeekFailed

    monkeypatch.setattr(media, "_seek", broken)
    frames = read_frames(video60, 20.0, 22.0, num_frames=2, size=32)
    assert indices(frames) == [expected_index(20.5), expected_index(21.5)]
    sparse = [frame_index(f) for f in iter_frames_at(video60, [1.0, 30.0, 50.0], size=32)]
    assert sparse == [12, 360, 600]


def test_iter_frames_at_yields_one_frame_per_time(video60):
    times = [i * 0.5 for i in range(120)][::-1]  # any order; yielded sorted
    got = [frame_index(f) for f in iter_frames_at(video60, times, size=32)]
    assert got == [expected_index(t) for t in sorted(times)]
    sparse = [5.0, 25.0, 45.5, 59.95, 75.0]  # gaps > 10 s seek; past the end: the last frame
    frames = list(iter_frames_at(video60, sparse, size=32))
    assert [f.shape for f in frames] == [(3, 32, 32)] * 5
    assert [frame_index(f) for f in frames] == [60, 300, 546, 719, 719]
    assert list(iter_frames_at(video60, [], size=32)) == []


def test_iter_timed_frames_gives_the_frames_shown_with_their_times(video4, tmp_path, monkeypatch):
    """The frame on screen at `start` stamped 0, then each later one before `end` at its own time;
    from the start of the file when seeking fails; a file without video is one MediaError line.

    Catches the app's former copy: a frame before `start` served late or stamped late, the
    stream pick or time origin differing from the model's reader, and a StopIteration (not a
    MediaError) for a file without a video stream."""
    timed = list(media.iter_timed_frames(video4, 1.5, 2.5, (96, 96)))
    first = round(1.5 * FPS)  # frame 18 is stamped exactly 1.5 s
    assert [frame_index(rgb.transpose(2, 0, 1)) for _, rgb in timed] == list(range(first, first + FPS))
    assert [t for t, _ in timed] == pytest.approx([i / FPS for i in range(FPS)], abs=1e-3)
    assert timed[0][1].shape == (96, 96, 3)
    monkeypatch.setattr(media, "_seek", lambda *args: (_ for _ in ()).throw(media._SeekFailed()))
    assert [frame_index(rgb.transpose(2, 0, 1)) for _, rgb in media.iter_timed_frames(video4, 1.55, 1.7, (96, 96))
            ] == [18, 19, 20]  # 18 is on screen at 1.55 s; 20 starts at 1.667 s
    with pytest.raises(MediaError, match=r"speech.wav: no video stream$"):
        next(media.iter_timed_frames(make_audio(tmp_path / "speech.wav", 0.5), 0.0, 1.0, (32, 32)))


def test_read_audio_length_and_rate_exact(tmp_path):
    path = make_audio(tmp_path / "tone.wav", 3.0, sample_rate=44100, tone_hz=1000.0)
    wave = read_audio(path, 0.5, 1.25, sample_rate=16000)
    assert wave.shape == (12000,) and wave.dtype == torch.float32
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    assert np.argmax(spectrum) * 16000 / len(wave) == pytest.approx(1000.0, abs=16000 / 12000)
    t = 0.5 + np.arange(12000) / 16000
    assert np.abs(wave.numpy() - 0.5 * np.sin(2 * np.pi * 1000 * t)).max() < 0.02
    padded = read_audio(path, 2.5, 3.5, sample_rate=8000)  # half past the end of the file
    assert padded.shape == (8000,) and padded[:3900].abs().max() > 0.4 and not padded[4100:].any()
    assert read_audio(path, sample_rate=11025).shape == (3 * 11025,)  # end=None: to the end


def test_probe_reports_streams(video4, tmp_path):
    info = probe(video4)
    assert info.has_video and info.has_audio
    assert (info.width, info.height, info.fps) == (96, 96, 12.0)
    assert (info.sample_rate, info.channels) == (16000, 1)
    assert info.duration == pytest.approx(4.0, abs=0.1)
    wav = probe(make_audio(tmp_path / "a.wav", 1.5, sample_rate=22050, channels=2))
    assert not wav.has_video and wav.has_audio and wav.channels == 2 and wav.duration == pytest.approx(1.5)


@pytest.mark.parametrize("kind", ["truncated", "empty", "text", "missing"])
def test_load_clip_broken_file_raises_one_line_error(tmp_path, video4, kind):
    path = tmp_path / f"{kind}.mp4"
    if kind == "truncated":
        make_truncated(video4, path, 0.6)
    elif kind == "empty":
        path.touch()
    elif kind == "text":
        path.write_text("this is not a video\n" * 20)
    with pytest.raises(MediaError) as info:
        load_clip(path, 0.0, None, TINY.video, TINY.audio)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    expected = {"truncated": "not a media file", "empty": "empty file (0 bytes)",
                "text": "not a media file (invalid data", "missing": "cannot read"}[kind]
    assert expected in message


def test_load_clip_pads_a_tenth_of_a_second(tmp_path):
    path = make_video(tmp_path / "blip.mp4", 0.1)
    clip = load_clip(path, 0.0, None, TINY.video, TINY.audio)
    assert clip.has_video and clip.has_audio
    assert indices(clip.frames) == [0, 0, 0, 0]  # the one frame, repeated
    assert clip.wave[:1000].abs().max() > 0.1 and not clip.wave[2400:].any()


def test_normalize_frames_uses_clip_statistics():
    cfg = TINY.video
    frames = torch.randint(0, 256, (2, 4, 3, 8, 8), dtype=torch.uint8)
    out = normalize_frames(frames, cfg)
    assert out.dtype == torch.float32 and out.shape == frames.shape
    g = frames[1, 2, 1].float() / 255
    assert torch.allclose(out[1, 2, 1], (g - cfg.mean[1]) / cfg.std[1])


def test_read_frames_audio_only_file_raises(tmp_path):
    path = make_audio(tmp_path / "speech.wav", 0.5)
    with pytest.raises(MediaError, match=r"speech.wav: no video stream$"):
        read_frames(path, num_frames=2, size=32)
    assert list(load_clip(path, 0.0, None, TINY.video, TINY.audio).wave.shape) == [TINY.audio.num_samples]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(tmp_path, bad):
    """Catches a float WAV's NaN or infinite samples reaching the model (NaN went through to
    every vector; infinities were silently clipped to full scale), by file or by tensor."""
    wave = np.zeros(16000, np.float32)
    wave[500:600] = bad
    path = make_float_wav(tmp_path / "bad.wav", wave)
    with pytest.raises(MediaError, match=r"bad.wav: non-finite samples") as info:
        read_audio(path)
    assert "\n" not in str(info.value)
    with pytest.raises(MediaError, match="non-finite"):
        load_clip(path, 0.0, None, TINY.video, TINY.audio)
    with pytest.raises(MediaError, match="non-finite"):
        VLSA.from_preset("tiny").embed_audio([torch.from_numpy(wave)])
