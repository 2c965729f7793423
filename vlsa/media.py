"""Decode video frames and audio waveforms from media files with PyAV.

Times are seconds from the start of the file (the container's start time), one origin for the
video and the audio stream, so the frames and the soundtrack of a clip stay in sync.

Readers seek near the start of the requested range and decode forward, so a short clip of a long
file costs about one keyframe interval of decoding, not the whole file. Any input that cannot be
read raises `MediaError` with a one-line message naming the file and the reason.

Opening a file (its streams, time origin, duration, `probe`, `MediaError`) is vlsa.container's;
this module re-exports those public names, so callers import every media name from here.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import av
import numpy as np
import torch
from torch import nn

from vlsa.config import AudioConfig, VideoConfig
from vlsa.container import (
    AUDIO_EXTENSIONS,
    MEDIA_EXTENSIONS,
    VIDEO_EXTENSIONS,
    Container,
    MediaError,
    MediaInfo,
    PathLike,
    audio_stream,
    ffmpeg_reason,
    header_duration,
    media_error,
    media_info,
    open_media,
    probe,
    time_origin,
    video_stream,
)

# Opening files is vlsa.container's; its public names are used from here, the one media module.
__all__ = ["AUDIO_EXTENSIONS", "MEDIA_EXTENSIONS", "VIDEO_EXTENSIONS", "Clip", "MediaError", "MediaInfo",
           "iter_frames_at", "iter_timed_frames", "load_clip", "normalize_frames", "probe", "read_audio",
           "read_frames", "require_finite", "sample_times"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_EPS = 1e-6  # seconds: a frame stamped at t (float rounding aside) counts as "at or before t"
_AUDIO_PREROLL = 0.25  # seconds decoded before `start`: some demuxers seek only approximately
_SEEK_GAP = 10.0  # seek ahead rather than decode through gaps between wanted frames longer than this


@dataclass
class Clip:
    frames: torch.Tensor | None  # uint8 (T, 3, H, W); None when the file has no video stream
    wave: torch.Tensor  # float32 (audio_cfg.num_samples,), mono in [-1, 1]; zeros without audio
    has_audio: bool
    has_video: bool
    duration: float = 0.0  # of the whole file, seconds, from headers; 0.0 when nothing says
    # The same sound decoded again at a pretrained audio tower's rate (load_clip's tower_rate),
    # float32 (samples,); None when not asked for or without audio (vlsa/audio_tower.py).
    tower_wave: torch.Tensor | None = None


# --- reading: the video stream to decode, and a read again from the start when a seek fails ---


def _video_to_decode(container: Container, name: str) -> av.video.stream.VideoStream:
    """The video stream, set to decode on frame and slice threads (decoding dominates the cost)."""
    stream = video_stream(container)
    if stream is None:
        raise media_error(name, "no video stream")
    stream.thread_type = "AUTO"
    return stream


class _SeekFailed(Exception):
    """FFmpeg could not seek; the demuxer may be left at the end of the file."""


def _retrying(path: PathLike, read: Callable[[Container, bool], T], opened: Container | None = None) -> T:
    """read(container, True) on a fresh container (`opened`, if given: one nothing was read from);
    if a seek fails, read(container, False) on another, which decodes from the start."""
    if opened is not None:
        with contextlib.suppress(_SeekFailed):
            return read(opened, True)
    else:
        with open_media(path) as container, contextlib.suppress(_SeekFailed):
            return read(container, True)
    with open_media(path) as container:
        return read(container, False)


# --- video -------------------------------------------------------------------------------------


def _seek(container: Container, stream: av.stream.Stream, t: float) -> None:
    """Seek to the keyframe at or before `t` seconds (PyAV flushes the decoders)."""
    offset = math.floor((t + time_origin(container)) / stream.time_base) if stream.time_base else 0
    try:
        container.seek(max(0, int(offset)), stream=stream, backward=True)
    except (av.FFmpegError, OSError) as e:
        # Seen on tiny FLAC files (EPERM): the failed search leaves the demuxer at the end.
        log.debug("%s: seek to %.3f s failed (%s)", container.name, t, ffmpeg_reason(e))
        raise _SeekFailed from e


def _decode(container: Container, stream: av.stream.Stream) -> Iterator[av.frame.Frame]:
    """Frames of `stream` from the current position; damaged packets are skipped, not fatal."""
    skipped = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.InvalidDataError:
            skipped += 1  # the decoder resynchronises at a later packet
            continue
        yield from frames
    if skipped:
        log.warning("%s: skipped %d undecodable packets", container.name, skipped)


def _timed_frames(container: Container, stream: av.stream.Stream) -> Iterator[tuple[float, av.VideoFrame]]:
    """(seconds, frame) in presentation order; a frame without a pts follows the previous by one
    frame period."""
    origin = time_origin(container)
    period = 1.0 / float(stream.average_rate) if stream.average_rate else 0.04
    t = None
    for frame in _decode(container, stream):
        t = frame.time - origin if frame.time is not None else (0.0 if t is None else t + period)
        yield t, frame


class _NoFrames(Exception):
    """Nothing decoded at all (every packet damaged, or a seek past the end)."""


def _select(decoded: Iterator[tuple[float, av.VideoFrame]], times: Sequence[float]) -> Iterator[av.VideoFrame]:
    """For each of the sorted `times`, the last decoded frame stamped at or before it (the first
    frame when none is; the last frame past the end). Stops decoding once all are found."""
    k, prev = 0, None
    for t, frame in decoded:
        while k < len(times) and times[k] + _EPS < t:
            yield prev if prev is not None else frame
            k += 1
        if k == len(times):
            return
        prev = frame
    if prev is None:
        raise _NoFrames
    for _ in range(k, len(times)):
        yield prev


def _to_tensor(frame: av.VideoFrame, size: int) -> torch.Tensor:
    """uint8 (3, size, size): short side resized to `size` by swscale (area filter), centre crop."""
    scale = size / min(frame.width, frame.height)
    w, h = max(size, round(frame.width * scale)), max(size, round(frame.height * scale))
    rgb = frame.to_ndarray(width=w, height=h, format="rgb24", interpolation="AREA")  # (h, w, 3)
    top, left = (h - size) // 2, (w - size) // 2
    crop = np.ascontiguousarray(rgb[top:top + size, left:left + size])
    return torch.from_numpy(crop).permute(2, 0, 1).contiguous()


def _runs(times: Sequence[float], gap: float) -> list[list[float]]:
    """Split sorted times where consecutive ones are more than `gap` seconds apart."""
    cuts = [i for i in range(1, len(times)) if times[i] - times[i - 1] > gap]
    return [list(times[a:b]) for a, b in zip([0, *cuts], [*cuts, len(times)], strict=True) if b > a]


def _frames_at(container: Container, name: str, times: Sequence[float], size: int,
               seek: bool = True) -> Iterator[torch.Tensor]:
    """uint8 (3, size, size) per sorted time, from a fresh container, in one forward pass that
    seeks across gaps over _SEEK_GAP (never with seek=False). Holds one decoded frame at a time."""
    stream = _video_to_decode(container, name)
    last, tensor = None, None  # the frame chosen last and its conversion (repeats reuse it)
    for run in _runs(times, _SEEK_GAP) if seek else [list(times)]:
        if seek and (last is not None or run[0] > 0):  # a fresh container is at time 0 already
            _seek(container, stream, run[0])
        decoded = _timed_frames(container, stream)
        if last is not None:
            # Stands in if the seek lands past the last frame and nothing decodes; otherwise the
            # keyframe the seek lands on replaces it before any time is served.
            decoded = itertools.chain([(-math.inf, last)], decoded)
        try:
            for frame in _select(decoded, run):
                if frame is not last:
                    last, tensor = frame, _to_tensor(frame, size)
                yield tensor
        except _NoFrames:
            raise media_error(name, "no decodable video frames") from None


def sample_times(start: float, end: float, num: int, sampling: str = "uniform",
                 generator: torch.Generator | None = None) -> list[float]:
    """`num` sorted times in [start, end): one per equal segment, at its centre ("uniform") or at a
    random point of it ("random", drawn from `generator`)."""
    if num < 1:
        raise ValueError(f"num_frames must be at least 1, not {num}")
    if sampling == "uniform":
        offsets = [0.5] * num
    elif sampling == "random":
        offsets = torch.rand(num, generator=generator, dtype=torch.float64).tolist()
    else:
        raise ValueError(f"sampling must be 'uniform' or 'random', not {sampling!r}")
    seg = (end - start) / num
    return [start + (i + o) * seg for i, o in enumerate(offsets)]


def _frames_reader(path: PathLike, start: float, end: float | None, num_frames: int, size: int,
                   sampling: str, generator: torch.Generator | None) -> Callable[[Container, bool], torch.Tensor]:
    """read_frames as a function of (fresh container, seek), for _retrying."""
    state = generator.get_state() if generator is not None else None

    def read(container: Container, seek: bool) -> torch.Tensor:
        if state is not None:
            generator.set_state(state)  # a retry draws the same times
        duration = header_duration(container)
        stop = (duration if end is None else min(end, duration)) if duration > 0 else (end or start)
        first = min(max(0.0, start), stop)  # a range past the end collapses onto the end
        times = sample_times(first, max(first, stop), num_frames, sampling, generator)
        return torch.stack(list(_frames_at(container, os.fspath(path), times, size, seek)))

    return read


def read_frames(path: PathLike, start: float = 0.0, end: float | None = None, num_frames: int = 8,
                size: int = 224, sampling: str = "uniform",
                generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (num_frames, 3, size, size): frames at `num_frames` times in [start, end).

    `end=None` or past the end of the file means the end of the file. "uniform" takes the centres
    of equal segments, "random" one random time per segment (from `generator`). Each time gets the
    last frame shown at or before it, so a range with fewer frames repeats them.
    """
    return _retrying(path, _frames_reader(path, start, end, num_frames, size, sampling, generator))


def iter_frames_at(path: PathLike, times: Sequence[float], size: int = 224) -> Iterator[torch.Tensor]:
    """Yield uint8 (3, size, size) frames, one per time of sorted(times), in a forward pass.

    Memory stays bounded (one decoded frame is held), so it suits indexing hours-long files.
    Dense times are decoded straight through; across gaps longer than 10 s it seeks to the
    keyframe before the next time instead of decoding the gap.
    """
    ordered, done = sorted(float(t) for t in times), 0
    with open_media(path) as container:
        try:
            for frame in _frames_at(container, os.fspath(path), ordered, size):
                done += 1
                yield frame
            return
        except _SeekFailed:
            pass
    with open_media(path) as container:  # unseekable: decode the rest from the start
        yield from _frames_at(container, os.fspath(path), ordered[done:], size, seek=False)


def iter_timed_frames(path: PathLike, start: float, end: float,
                      size: tuple[int, int]) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds from `start`, RGB uint8 (height, width, 3) at `size` = (width, height)) for each
    frame shown during [start, end): the one on screen at `start` (stamped 0) and every later one
    before `end`, at its own time, so a file that stores only changed frames keeps its timing."""
    name = os.fspath(path)
    with open_media(path) as container:
        stream = _video_to_decode(container, name)
        try:
            if start > 0:  # a fresh container is at time 0 already
                _seek(container, stream, start)
            seeked = True
        except _SeekFailed:
            seeked = False
        if seeked:
            yield from _shown(_timed_frames(container, stream), start, end, size)
            return
    with open_media(path) as container:  # unseekable: decode from the start
        yield from _shown(_timed_frames(container, video_stream(container)), start, end, size)


def _shown(decoded: Iterator[tuple[float, av.VideoFrame]], start: float, end: float,
           size: tuple[int, int]) -> Iterator[tuple[float, np.ndarray]]:
    def rgb(frame: av.VideoFrame) -> np.ndarray:
        return frame.to_ndarray(width=size[0], height=size[1], format="rgb24")

    held = None  # the last frame at or before `start`: it is what shows at `start`
    for t, frame in decoded:
        if t >= end:
            break
        if t <= start:
            held = frame
            continue
        if held is not None:
            yield 0.0, rgb(held)
            held = None
        yield t - start, rgb(frame)
    if held is not None:  # nothing after `start`: the held frame is the whole span
        yield 0.0, rgb(held)


# --- audio -------------------------------------------------------------------------------------


def _resampled(container: Container, stream: av.stream.Stream,
               rate: int) -> Iterator[tuple[float | None, np.ndarray]]:
    """(seconds of the first decoded frame, where the output starts, or None if it has no pts;
    the next float32 mono samples at `rate`), ending with the resampler's buffered tail."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    origin, first, started = time_origin(container), None, False
    for frame in _decode(container, stream):
        if not started:  # the output is one gapless run from this frame on
            first, started = (frame.time - origin if frame.time is not None else None), True
        for out in resampler.resample(frame):
            yield first, out.to_ndarray().reshape(-1)
    for out in resampler.resample(None):
        yield first, out.to_ndarray().reshape(-1)


def _read_audio(container: Container, seek: bool, *, name: str, start: float, end: float | None,
                rate: int) -> torch.Tensor:
    """read_audio on a fresh container (as a function of (container, seek), for _retrying)."""
    stream = audio_stream(container)
    if stream is None:
        raise media_error(name, "no audio stream")
    start = max(0.0, start)
    need = None if end is None else max(0, round((end - start) * rate))
    if need == 0:
        return torch.zeros(0)
    if seek and start > _AUDIO_PREROLL:  # a fresh container is at time 0 already
        _seek(container, stream, start - _AUDIO_PREROLL)
    pieces: list[np.ndarray] = []
    got, skip = 0, None  # skip: samples before `start` still to drop
    for t, samples in _resampled(container, stream, rate):
        if skip is None:
            # The first decoded frame's time places `start` in the gapless output; a seek that
            # landed late is made up with silence.
            skip = round((start - (start if t is None else t)) * rate)
            pieces.append(np.zeros(max(0, -skip), dtype=np.float32))
            got, skip = max(0, -skip), max(0, skip)
        drop = min(skip, len(samples))
        samples, skip = samples[drop:], skip - drop
        pieces.append(samples)
        got += len(samples)
        if need is not None and got >= need:
            break
    wave = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    require_finite(wave, name)  # before the clip below, which would turn infinities into 1.0
    if need is not None:
        wave = np.pad(wave[:need], (0, max(0, need - len(wave))))  # zeros past the end of the file
    return torch.from_numpy(np.clip(wave, -1.0, 1.0).astype(np.float32, copy=False))


def read_audio(path: PathLike, start: float = 0.0, end: float | None = None,
               sample_rate: int = 16000) -> torch.Tensor:
    """float32 (samples,): mono audio in [-1, 1] from `start` to `end` seconds at `sample_rate`.

    With `end` given the length is exactly round((end - start) * sample_rate), zero-padded past
    the end of the file; `end=None` reads to the end of the file.
    """
    read = functools.partial(_read_audio, name=os.fspath(path), start=start, end=end, rate=sample_rate)
    return _retrying(path, read)


def load_clip(path: PathLike, start: float, end: float | None, video_cfg: VideoConfig,
              audio_cfg: AudioConfig, *, train: bool = False,
              generator: torch.Generator | None = None, tower_rate: int | None = None) -> Clip:
    """The frames and soundtrack of [start, end) of `path`, shaped for the model.

    frames: uint8 (video_cfg.frames, 3, video_cfg.size, video_cfg.size), a random time per segment
    when `train`, segment centres otherwise; None for audio-only files.
    wave: float32 (audio_cfg.num_samples,) at audio_cfg.sample_rate, zero-padded; silent for
    files without an audio track. `end=None` means start + audio_cfg.clip_seconds.
    tower_wave: with `tower_rate`, [start, end) decoded a second time at that rate (a pretrained
    audio tower hears the band above the model's own Nyquist frequency).
    """
    end = start + audio_cfg.clip_seconds if end is None else end
    name = os.fspath(path)
    frames, wave, tower_wave = None, torch.zeros(audio_cfg.num_samples), None
    with open_media(path) as container:  # probed, then read from while still fresh
        info = media_info(container, name)
        if not (info.has_video or info.has_audio):
            kinds = sorted({s.type for s in container.streams} & {"video", "audio"})
            raise media_error(name, f"no decoder for its {' or '.join(kinds)} stream" if kinds
                         else "no video or audio stream")
        if info.has_video:
            read = _frames_reader(path, start, end, video_cfg.frames, video_cfg.size,
                                  "random" if train else "uniform", generator)
            frames = _retrying(path, read, opened=container)
        if info.has_audio:  # a fresh container for the audio pass, unless the video pass had none
            read = functools.partial(_read_audio, name=name, start=start, end=end, rate=audio_cfg.sample_rate)
            audio = _retrying(path, read, opened=None if info.has_video else container)
            wave = nn.functional.pad(audio, (0, audio_cfg.num_samples - len(audio)))[: audio_cfg.num_samples]
            if tower_rate is not None:
                tower_wave = _retrying(path, functools.partial(_read_audio, name=name, start=start, end=end,
                                                               rate=tower_rate))
    return Clip(frames=frames, wave=wave, has_audio=info.has_audio, has_video=info.has_video,
                duration=info.duration, tower_wave=tower_wave)


def require_finite(x: np.ndarray | torch.Tensor, name: str) -> None:
    """Refuse samples that hold NaN or infinity (a float WAV can): one such sample makes every
    vector computed from it NaN, which sorts above real matches or hides them."""
    finite = torch.isfinite(x).all() if isinstance(x, torch.Tensor) else np.isfinite(x).all()
    if not finite:
        raise media_error(name, "non-finite samples (NaN or infinity)")


def normalize_frames(frames: torch.Tensor, video_cfg: VideoConfig) -> torch.Tensor:
    """float32 (..., 3, H, W) = (frames / 255 - mean) / std per channel, from uint8 (..., 3, H, W)."""
    mean = torch.tensor(video_cfg.mean, dtype=torch.float32, device=frames.device).view(3, 1, 1)
    std = torch.tensor(video_cfg.std, dtype=torch.float32, device=frames.device).view(3, 1, 1)
    return (frames.float() / 255.0 - mean) / std
