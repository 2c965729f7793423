"""Cut the moment a result points at into a small file the browser plays from its start.

A player given the whole file would start at 0 s; a cut starts at the result's window, whatever
the source's container or codec (mkv, avi, flac...), and is cheap to send. Video becomes H.264 +
AAC in an mp4 (what every browser plays), at most PLAYER_HEIGHT pixels high; a sound becomes a
16-bit wav. Cuts are cached in the app's folder, named by the source's identity and the times, so
selecting a result again costs nothing.
"""

from __future__ import annotations

import hashlib
import os
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vlsa.encode import add_aac_stream, write_aac, write_frame
from vlsa.media import MediaError, MediaInfo, iter_timed_frames, read_audio

PLAYER_HEIGHT = 360  # pixels: a preview, not a copy; keeps a cut of HD video fast to encode
CONTEXT_AFTER = 2.0  # seconds played past the window's end, so the moment is heard to its end
MAX_CLIP_SECONDS = 30.0  # long windows are cut short: the player is for recognising the moment
AUDIO_RATE = 44100  # Hz of the cut's sound: full bandwidth for listening (the model uses less)
KEEP_CUTS = 200  # cuts kept in the app's folder; older ones are deleted (a long session adds up)
MAX_FPS = 30  # faster sources are thinned to this (a preview does not need 60 fps)


def clip_span(start: float, end: float, duration: float | None) -> tuple[float, float]:
    """(start, end) of the cut for a window: the window plus CONTEXT_AFTER, within the file and
    at most MAX_CLIP_SECONDS long."""
    stop = min(end + CONTEXT_AFTER, start + MAX_CLIP_SECONDS)
    if duration:
        stop = min(stop, duration)
    return start, max(stop, start + 0.1)


def cached_name(path: str, start: float, end: float, suffix: str, name: str | None = None) -> str:
    """A file name that changes when the source file or the times change. `name`: the file's
    catalogued path when `path` is an open file's pinned name (app/files.py: OpenFile)."""
    st = os.stat(path)
    key = f"{os.fsencode(name or path)!r}|{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{start:.3f}|{end:.3f}"
    return f"clip-{hashlib.sha1(key.encode()).hexdigest()[:16]}{suffix}"


def cut(path: str, info: MediaInfo, start: float, end: float, folder: str | os.PathLike,
        name: str | None = None) -> Path:
    """The cut of [start, end) of `path` (an mp4 for video, a wav for sound) inside `folder`;
    `name`: the file's own path, for the cache, when `path` is an open file's pinned name."""
    start, end = clip_span(start, end, info.duration)
    out = Path(folder) / cached_name(path, start, end, ".mp4" if info.has_video else ".wav", name)
    if not out.exists():
        tmp = out.with_name(out.stem + ".part" + out.suffix)  # never serve a half-written cut
        try:
            if info.has_video:
                write_video(path, info, start, end, tmp)
            else:
                write_wav(read_audio(path, start, end, AUDIO_RATE).numpy(), AUDIO_RATE, tmp)
            os.replace(tmp, out)
        except av.FFmpegError as e:
            raise MediaError(f"{os.path.basename(name or path)}: cannot cut the clip ({e})") from e
        finally:
            tmp.unlink(missing_ok=True)  # a failed cut leaves nothing behind
        prune(Path(folder), KEEP_CUTS)
    return out


def prune(folder: Path, keep: int) -> None:
    """Delete all but the `keep` most recently written cuts in `folder`."""
    cuts = sorted(folder.glob("clip-*"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for old in cuts[keep:]:
        old.unlink(missing_ok=True)


def player_size(width: int | None, height: int | None) -> tuple[int, int]:
    """Even (width, height) of at most PLAYER_HEIGHT rows with the source's aspect ratio."""
    width, height = width or 640, height or 360
    scale = min(1.0, PLAYER_HEIGHT / height)
    return max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)


def write_wav(samples: np.ndarray, rate: int, out: Path) -> None:
    """Mono float samples in [-1, 1] as a 16-bit PCM wav."""
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(out), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())


def write_video(path: str, info: MediaInfo, start: float, end: float, out: Path) -> None:
    """H.264 frames of [start, end) plus the sound (AAC, when the file has one) in an mp4 whose
    index comes first (faststart), so the browser starts playing before the download ends.

    Frames keep their times (pts from the source's clock, not a frame counter): files that skip
    repeated frames (some AVIs hold 2 frames a second at a nominal 15) stay in time with the sound.
    """
    size = player_size(info.width, info.height)
    rate = Fraction(min(info.fps or 25.0, MAX_FPS)).limit_denominator(1000)
    with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        video = container.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.options = {"preset": "veryfast", "crf": "23"}
        # Both streams exist before the first packet: the muxer writes its header then.
        sound = add_aac_stream(container, AUDIO_RATE) if info.has_audio else None
        last, rgb = -1, None
        for t, rgb in iter_timed_frames(path, start, end, size):
            pts = round(t * rate)
            if pts > last:  # a faster source than `rate` loses the frames that share a tick
                write_frame(container, video, rgb, pts, rate)
                last = pts
        final = round((end - start) * rate) - 1
        if rgb is not None and final > last:  # hold the last picture until the sound ends
            write_frame(container, video, rgb, final, rate)
        container.mux(video.encode())
        if sound is not None:
            write_aac(container, sound, read_audio(path, start, end, AUDIO_RATE).numpy())
