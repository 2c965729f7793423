"""Cut a file into time windows and decode them as a stream, shaped for the model.

A window covers `window` seconds and starts every `stride` seconds; the last, shorter one is kept
if it holds at least MIN_TAIL seconds, and a file shorter than a window gets one window. For each
window the decoder yields what `VLSA.prepare_video` / `prepare_audio` would load for
(path, start, start + window), decoded in one pass over the file instead of one seek per window:

- frames: the model's frame count at vlsa.media.sample_times of [start, end), end clipped to the
  file's duration (as vlsa.media.load_clip samples them), all windows' times in a single
  `iter_frames_at` pass that holds one decoded frame at a time;
- audio: the model's clip length at its input rate (vlsa.audio_tower.input_rate), from the window's start (a window up to one clip long) or
  centred in it (a longer window), zero-padded past the end of the file; read in chunks of at
  most CHUNK_SECONDS, so a three-hour file never becomes one waveform in memory.

`VLSA.embed_decoded` turns the decoded windows into vectors. The indexer (stored windows), the
search service (a query sound) and the app's heatmaps all go through these functions, so a
catalogued sound used as a query gives back its own stored vectors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from vlsa.audio import fit_length
from vlsa.audio_tower import input_rate, input_samples
from vlsa.config import VLSAConfig
from vlsa.media import MediaError, MediaInfo, iter_frames_at, read_audio, sample_times

Source = str | torch.Tensor  # a file, or a mono waveform at the model's input rate (audio only)

MIN_TAIL = 0.5  # seconds: a shorter last window is mostly padding and is dropped
CHUNK_SECONDS = 180.0  # audio is read in pieces of at most this span: bounded memory, few seeks
_EPS = 1e-9  # seconds: float slack when comparing window edges


@dataclass
class WindowData:
    """One window of a file, decoded: the model's raw inputs (normalisation happens per batch)."""

    index: int
    start: float
    end: float  # clipped to the file's duration
    frames: torch.Tensor | None  # uint8 (T, 3, H, W); None for a file without video
    # float32 (input_samples,) at vlsa.audio_tower.input_rate: the front end's rate, or an audio
    # tower's 44.1 kHz; None for a file without audio
    wave: torch.Tensor | None


def plan_windows(duration: float, window: float, stride: float) -> list[tuple[float, float]]:
    """(start, end) of each window of a file `duration` seconds long."""
    if window <= 0 or stride <= 0:
        raise ValueError(f"window and stride must be positive (got {window:g} s and {stride:g} s)")
    if duration <= 0:
        return []
    spans, k = [], 0
    while True:
        start = k * stride
        if start >= duration - _EPS:
            break
        end = min(start + window, duration)
        if k > 0 and end - start < MIN_TAIL:
            break
        spans.append((start, end))
        if start + window >= duration - _EPS:  # this window reaches the end: the rest would be inside it
            break
        k += 1
    return spans


def file_windows(info: MediaInfo, window: float, stride: float) -> list[tuple[float, float]]:
    """plan_windows for a probed file; MediaError when its headers give no duration."""
    spans = plan_windows(info.duration, window, stride)
    if not spans:
        raise MediaError(f"{info.path}: duration unknown (the headers give none)")
    return spans


def audio_span(start: float, end: float, window: float, clip: float) -> tuple[float, float]:
    """The audio a window's embedding hears: one clip from its start, or centred in a longer one."""
    if window <= clip + _EPS:
        return start, start + window
    centre = (start + end) / 2
    first = max(start, centre - clip / 2)
    return first, first + clip


def iter_windows(source: Source, spans: Sequence[tuple[float, float]], config: VLSAConfig, window: float,
                 has_video: bool, has_audio: bool) -> Iterator[WindowData]:
    """Decode each span of `source` as a WindowData, in order, in one pass per track."""
    with contextlib.ExitStack() as stack:
        frames = audio = None
        if has_video:
            frames = stack.enter_context(contextlib.closing(_window_frames(source, spans, config)))
        if has_audio:
            audio = stack.enter_context(contextlib.closing(_window_audio(source, spans, config, window)))
        for i, (start, end) in enumerate(spans):
            yield WindowData(i, start, end, None if frames is None else next(frames),
                             None if audio is None else next(audio))


def _window_frames(path: str, spans: Sequence[tuple[float, float]], config: VLSAConfig) -> Iterator[torch.Tensor]:
    """uint8 (T, 3, H, W) per span, from one forward pass over the frames of all spans."""
    num = config.video.frames
    wanted = sorted((t, w, k) for w, (s, e) in enumerate(spans) for k, t in enumerate(sample_times(s, e, num)))
    slots: dict[int, list[torch.Tensor | None]] = {}
    done = 0  # windows yielded so far: windows complete in order, since their last times rise
    decoded = iter_frames_at(path, [t for t, _, _ in wanted], config.video.size)
    try:
        for (_, w, k), frame in zip(wanted, decoded, strict=True):
            slots.setdefault(w, [None] * num)[k] = frame
            while done in slots and all(f is not None for f in slots[done]):
                yield torch.stack(slots.pop(done))
                done += 1
    finally:
        decoded.close()  # release the file even when the caller stops early


def _window_audio(source: Source, spans: Sequence[tuple[float, float]], config: VLSAConfig,
                  window: float) -> Iterator[torch.Tensor]:
    """float32 (num_samples,) per span, reading overlapping or touching spans in shared chunks."""
    rate, size = input_rate(config), input_samples(config)
    wanted = [audio_span(s, e, window, config.clip_seconds) for s, e in spans]
    for chunk in _chunks(wanted):
        first, last = chunk[0][0], max(b for _, b in chunk)
        wave = _read_audio(source, first, last, rate)
        for a, b in chunk:
            offset = round((a - first) * rate)
            piece = wave[offset: offset + min(size, round((b - a) * rate))]
            yield torch.nn.functional.pad(piece, (0, size - len(piece)))


def _read_audio(source: Source, first: float, last: float, rate: int) -> torch.Tensor:
    """Exactly round((last - first) * rate) samples from `first` seconds, zero-padded past the end."""
    if isinstance(source, torch.Tensor):
        return fit_length(source[round(first * rate):], round((last - first) * rate))
    return read_audio(source, first, last, rate)


def _chunks(spans: Sequence[tuple[float, float]]) -> Iterator[list[tuple[float, float]]]:
    """Group consecutive spans that touch or overlap, up to CHUNK_SECONDS from the first's start."""
    chunk: list[tuple[float, float]] = []
    for a, b in spans:
        if chunk and (a > chunk[-1][1] + _EPS or b - chunk[0][0] > CHUNK_SECONDS):
            yield chunk
            chunk = []
        chunk.append((a, b))
    if chunk:
        yield chunk
