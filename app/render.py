"""Media and a query in, images out: thumbnails and the three heatmaps of a result.

Decoding goes through the catalog's own window reader (catalog.windows.iter_windows), so the
heatmaps are computed on exactly the frames and sound the window's stored vectors were made
from. The frames drawn under the spatial heatmap are decoded again at display size (TILE): the
tiny preset's 64-pixel frames are too small to look at.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from app import heatmaps
from catalog.service import SearchService
from catalog.windows import WindowData, audio_span, iter_windows
from vlsa.api import VLSA
from vlsa.audio import row_frequencies
from vlsa.media import iter_frames_at, sample_times


def window_data(model: VLSA, window: float, path: str, start: float, end: float,
                has_video: bool, has_audio: bool) -> WindowData:
    """The model's inputs for one window, decoded as the indexer decoded them."""
    return next(iter_windows(path, [(start, end)], model.config, window, has_video, has_audio))


def frames_hwc(frames: torch.Tensor) -> np.ndarray:
    """uint8 (T, 3, H, W) tensor -> uint8 (T, H, W, 3) array."""
    return frames.permute(0, 2, 3, 1).contiguous().numpy()


def heard_span(model: VLSA, window: float, start: float, end: float, duration: float | None) -> tuple[float, float]:
    """The file's seconds a window's spectrogram shows: where its audio starts (see
    catalog.windows.audio_span) to where the sound ends. A file shorter than the window is padded
    with silence, which is not drawn."""
    clip = model.config.audio.clip_seconds
    first, last = audio_span(start, end, window, clip)
    stop = min(last, first + clip, duration) if duration else min(last, first + clip)
    return first, max(stop, first + clip / 100)  # a sliver at least


def crop_columns(x: np.ndarray, seconds: tuple[float, float], clip: float) -> np.ndarray:
    """The columns (last axis) of a map spanning `clip` seconds that cover `seconds` from its start."""
    fraction = (seconds[1] - seconds[0]) / clip
    return x[..., :max(1, math.ceil(x.shape[-1] * fraction - 1e-6))]


def thumbnail(model: VLSA, window: float, path: str, start: float, end: float, has_video: bool,
              duration: float | None = None) -> np.ndarray:
    """A frame from the middle of the window for a video; for a sound, its spectrogram over the
    sound's own length (not the silence a short file is padded with)."""
    if has_video:
        frame = next(iter_frames_at(path, [(start + end) / 2], size=heatmaps.TILE))
        return heatmaps.video_thumbnail(frames_hwc(frame[None])[0])
    data = window_data(model, window, path, start, end, False, True)
    spec = model.wave_frontend(data.wave).numpy()
    heard = heard_span(model, window, start, end, duration)
    return heatmaps.audio_thumbnail(crop_columns(spec, heard, model.config.audio.clip_seconds))


def spatial(model: VLSA, data: WindowData, path: str, query: np.ndarray) -> np.ndarray:
    """The sampled frames of the window under the query's similarity to each video patch, each
    with its time in the file."""
    heat = model.video_patch_map(torch.as_tensor(query), data.frames).numpy()  # (T, h, w)
    times = sample_times(data.start, data.end, model.config.video.frames)
    shown = torch.stack(list(iter_frames_at(path, times, size=heatmaps.TILE)))
    return heatmaps.spatial_figure(frames_hwc(shown), heat, times)


def spectrogram(model: VLSA, data: WindowData, query: np.ndarray, window: float, duration: float | None) -> np.ndarray:
    """The window's spectrogram (over the sound's own length) under the query's similarity, with
    axes in seconds and Hz: to each spectrogram patch, or with an audio tower that hears the clip
    whole (no patch map: VLSA.audio_patch_map) to each block it hears (sound_time_map). The
    spectrogram is the one the patches are of, else the front end's at the rate the wave was
    decoded at (VLSA.audio_map: the tower's 44.1 kHz draws up to 22 kHz)."""
    heard, clip = heard_span(model, window, data.start, data.end, duration), model.config.audio.clip_seconds
    spec, settings = model.audio_map(data.wave)
    spec = spec.numpy()
    if model.has_audio_tower and not model.config.audio.tower_residual:
        heat, blocks = sound_time_map(model, data.wave, query, spec.shape[-1])
        words = {"title": (f"When the sound is like the query, per {blocks:.1f}-s block:",
                           "this model hears each block whole, not which frequencies."),
                 "legend": ("blocks less like the query", "more like the query")}
    else:
        heat, words = model.audio_patch_map(torch.as_tensor(query), data.wave).numpy(), {}  # (f, t)
    return heatmaps.spectrogram_figure(crop_columns(spec, heard, clip), crop_columns(heat, heard, clip), heard,
                                       row_frequencies(settings).tolist(), **words)


def sound_time_map(model: VLSA, wave: torch.Tensor, query: np.ndarray, columns: int) -> tuple[np.ndarray, float]:
    """(float32 (1, columns) heat over the spectrogram's time columns, seconds per block) for a
    model with an audio tower: its embedding is the mean of what the tower makes of each 2-s
    block, so the one thing a map can show is which blocks match, in time only. Blocks of
    silence (a short sound's padding) are left out, as the embedding leaves them out."""
    blocks = model.audio_block_map(torch.as_tensor(query), wave)
    keep = blocks.sounding if bool(blocks.sounding.any()) else torch.ones_like(blocks.sounding)
    heat = heatmaps.time_map(blocks.spans[keep].numpy(), blocks.similarity[keep].numpy(), columns,
                             model.config.audio.clip_seconds)
    return heat, float(blocks.spans[0, 1] - blocks.spans[0, 0])


def temporal(service: SearchService, media_id: int, modality: str, query: np.ndarray,
             window_id: int, duration: float | None) -> np.ndarray | None:
    """The query's similarity to every window of the file (the stored vectors of `modality`),
    as a strip along the file with the selected window outlined; None for a file of one window
    (the strip would be one block)."""
    windows = service.file_windows(media_id, modality)  # this file's rows only, at any library size
    if len(windows) < 2:
        return None
    scores = windows.scores(np.asarray(query, np.float32))
    spans_by_id = {w.id: (w.start, w.end) for w in service.catalog.windows(media_id)}
    ids = [int(i) for i in windows.window_ids]
    order = sorted(range(len(ids)), key=lambda k: spans_by_id[ids[k]][0])  # along the file
    spans = [spans_by_id[ids[k]] for k in order]
    selected = next((n for n, k in enumerate(order) if ids[k] == window_id), None)
    return heatmaps.temporal_strip(spans, [float(scores[k]) for k in order], duration or 0.0, selected)
