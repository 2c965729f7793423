"""Opening media files with PyAV, the layer under vlsa.media's readers: the one-line `MediaError`,
the streams a file has, its time origin and duration from headers, and `probe`.

Callers import these from vlsa.media, which re-exports them: one module to import media names from.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import av

log = logging.getLogger(__name__)

PathLike = str | os.PathLike
Container = av.container.InputContainer

_WAV_OGG_TAGS = (0x674F, 0x6750, 0x6751, 0x676F, 0x6770, 0x6771)  # Vorbis-in-WAV (vorbis.acm)

# Files the catalog indexes and the trainer's manifests list, by extension (lower case).
VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts",
    ".flv", ".wmv", ".3gp", ".ogv", ".vob",
})
AUDIO_EXTENSIONS = frozenset({
    ".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aif", ".aiff",
    ".aifc", ".mka", ".au", ".ac3",
})
MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | AUDIO_EXTENSIONS


class MediaError(ValueError):
    """An input that cannot be decoded; the message is one line: "<file>: <reason>". A
    ValueError, like the catalog's errors, so the command line reports it as that one line."""


@dataclass
class MediaInfo:
    path: str
    duration: float  # seconds, from headers; 0.0 when nothing says
    has_video: bool  # a decodable video stream (cover art in audio files does not count)
    has_audio: bool  # a decodable audio stream
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    sample_rate: int | None = None
    channels: int | None = None


def media_error(name: str, reason: str) -> MediaError:
    return MediaError(re.sub(r"\s*[\r\n]+\s*", " ", f"{name}: {reason}"))  # one line, whatever FFmpeg says


def ffmpeg_reason(err: BaseException) -> str:
    """FFmpeg's or the OS's own words ("invalid data found when processing input"), no path."""
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return text[:1].lower() + text[1:]


def _riff_ogg_payload(name: str) -> bytes | None:
    """The Ogg stream inside a Vorbis-in-WAV file, which FFmpeg cannot decode as WAV. Some sample
    packs (lmms' .ogg drums) are such files; their data chunk is a complete Ogg Vorbis stream."""
    with open(name, "rb") as f:
        if f.read(12)[8:12] != b"WAVE":
            return None
        tag = None
        while len(chunk := f.read(8)) == 8:  # RIFF chunks: id, little-endian size, padded body
            cid, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            body = f.read(size + (size & 1))
            if cid == b"fmt ":
                tag = int.from_bytes(body[:2], "little")
            elif cid == b"data":
                return body[:size] if tag in _WAV_OGG_TAGS and body[:4] == b"OggS" else None
    return None


def video_stream(container: Container) -> av.video.stream.VideoStream | None:
    """The first decodable video stream; attached pictures (cover art) are not video."""
    for s in container.streams.video:
        if not s.disposition & av.stream.Disposition.attached_pic and s.codec_context is not None:
            return s
    return None


def audio_stream(container: Container) -> av.audio.stream.AudioStream | None:
    return next((s for s in container.streams.audio if s.codec_context is not None), None)


def _open_container(name: str) -> Container:
    """av.open, swapping in the embedded Ogg stream of a Vorbis-in-WAV file."""
    container = av.open(name, metadata_errors="ignore")
    if container.streams.audio and audio_stream(container) is None and video_stream(container) is None:
        payload = _riff_ogg_payload(name)
        if payload is not None:
            container.close()
            log.debug("%s: decoding the Ogg stream inside its WAV wrapper", name)
            return av.open(io.BytesIO(payload), format="ogg")
    return container


@contextlib.contextmanager
def open_media(path: PathLike) -> Iterator[Container]:
    """Open `path`; FFmpeg and OS errors, here or in the body, become MediaError."""
    name = os.fspath(path)
    try:
        size = os.stat(name).st_size
    except OSError as e:
        raise media_error(name, f"cannot read ({ffmpeg_reason(e)})") from e
    if size == 0:
        raise media_error(name, "empty file (0 bytes)")
    try:
        container = _open_container(name)
    except (av.FFmpegError, OSError, ValueError) as e:
        raise media_error(name, f"not a media file ({ffmpeg_reason(e)})") from e
    try:
        yield container
    except (av.FFmpegError, OSError) as e:
        raise media_error(name, f"decoding failed ({ffmpeg_reason(e)})") from e
    finally:
        container.close()


def time_origin(container: Container) -> float:
    """Seconds of the container's first timestamp: time 0 for every stream."""
    return container.start_time / av.time_base if container.start_time is not None else 0.0


def header_duration(container: Container) -> float:
    """Seconds, from headers only: the container, else the longest stream, else size / bit rate."""
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    best = 0.0
    for s in container.streams:
        if s.duration and s.time_base:
            best = max(best, float(s.duration * s.time_base))
        elif s.type == "video" and s.frames and s.average_rate:
            best = max(best, s.frames / float(s.average_rate))
    if best == 0.0 and container.bit_rate and container.size:
        best = container.size * 8 / container.bit_rate
    return best


def media_info(container: Container, name: str) -> MediaInfo:
    vs, aus = video_stream(container), audio_stream(container)
    info = MediaInfo(name, header_duration(container), has_video=vs is not None, has_audio=aus is not None)
    if vs is not None:
        info.width, info.height = vs.codec_context.width, vs.codec_context.height
        rate = vs.average_rate or vs.guessed_rate or vs.base_rate
        info.fps = float(rate) if rate else None
    if aus is not None:
        info.sample_rate, info.channels = aus.codec_context.sample_rate, aus.codec_context.channels
    return info


def probe(path: PathLike) -> MediaInfo:
    """Streams, sizes and duration of `path`, read from headers (nothing is decoded)."""
    with open_media(path) as container:
        return media_info(container, os.fspath(path))
