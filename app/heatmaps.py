"""Heatmaps and thumbnails as RGB images: pure functions of numpy arrays (PIL for resizing and text).

    strip = spatial_strip(frames, model.video_patch_map(query, frames_tensor).numpy())
    bar = temporal_strip(spans, scores, duration, selected=3)
    spec = spectrogram_heatmap(spectrogram, model.audio_patch_map(query, wave).numpy())

Every function returns uint8 (H, W, 3). Conventions: frames are uint8 (T, H, W, 3); a spectrogram
is (F, M) with frequency rows from low to high and time columns, as the model's front end makes it
(images show it flipped, low frequencies at the bottom, as people read spectrograms). Similarity
maps are normalised per image (min to max): cosine similarities of a small model sit in a narrow
band, and what matters is where they peak, not their absolute level.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Colour stops of an inferno-like scale (dark, purple, red, orange, pale yellow): readable on
# screens and in greyscale, dark where the similarity is low.
HEAT_STOPS = np.array([(0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164)], np.float32)
# Spectrograms under a heatmap are drawn in grey, so the colour belongs to the heat alone.
GREY_STOPS = np.array([(0, 0, 0), (255, 255, 255)], np.float32)
HEAT_ALPHA = 0.7  # opacity of the hottest colour: the peak stands out, the frame still shows through
TILE = 160  # pixels per frame in the spatial strip (tiny's 64 px frames are too small to read)
GAP = 4  # pixels between frames of a strip
SELECTED = (80, 200, 255)  # outline of the selected window on the temporal strip
BACKGROUND = (24, 24, 32)


# --- building blocks ---------------------------------------------------------------------------


def unit_range(x: np.ndarray) -> np.ndarray:
    """float32 copy of `x` scaled to [0, 1] (min to max); a constant array becomes all 0.5."""
    x = np.asarray(x, dtype=np.float32)
    if x.size == 0:
        return x.copy()
    low, high = float(np.nanmin(x)), float(np.nanmax(x))
    if not high > low:
        return np.full_like(x, 0.5)
    return (x - low) / (high - low)


def colorize(x01: np.ndarray, stops: np.ndarray = HEAT_STOPS) -> np.ndarray:
    """uint8 (..., 3): values in [0, 1] mapped through the colour stops by linear interpolation."""
    x = np.clip(np.nan_to_num(np.asarray(x01, np.float32)), 0.0, 1.0) * (len(stops) - 1)
    low = np.minimum(x.astype(np.int64), len(stops) - 2)
    frac = (x - low)[..., None]
    return np.round(stops[low] * (1 - frac) + stops[low + 1] * frac).astype(np.uint8)


def resize(image: np.ndarray, width: int, height: int, smooth: bool = True) -> np.ndarray:
    """uint8 (height, width, 3); bilinear when `smooth`, else nearest (keeps patch edges sharp)."""
    resample = Image.Resampling.BILINEAR if smooth else Image.Resampling.NEAREST
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize((width, height), resample))


def upsample(heat: np.ndarray, width: int, height: int) -> np.ndarray:
    """float32 (height, width): a patch grid (h, w) stretched smoothly over an image."""
    img = Image.fromarray(np.ascontiguousarray(heat, dtype=np.float32))  # float32: mode "F"
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def overlay(image: np.ndarray, heat01: np.ndarray, alpha: float = HEAT_ALPHA) -> np.ndarray:
    """uint8 (H, W, 3): `image` under the colourised heat (H, W) in [0, 1], the colour's opacity
    rising with the heat (up to `alpha`), so cold regions show the picture as it is."""
    heat01 = np.clip(np.asarray(heat01, np.float32), 0.0, 1.0)
    a = (alpha * heat01)[..., None]
    blended = (1 - a) * image.astype(np.float32) + a * colorize(heat01).astype(np.float32)
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def hstack(images: Sequence[np.ndarray], gap: int = GAP) -> np.ndarray:
    """Images of one height side by side with `gap` background pixels between them."""
    height = images[0].shape[0]
    spacer = np.full((height, gap, 3), BACKGROUND, np.uint8)
    parts: list[np.ndarray] = []
    for i, image in enumerate(images):
        parts += [spacer, image] if i else [image]
    return np.concatenate(parts, axis=1)


# --- the three heatmaps ------------------------------------------------------------------------


def spatial_strip(frames: np.ndarray, heat: np.ndarray, tile: int = TILE) -> np.ndarray:
    """The sampled frames side by side, each under its patch similarities.

    frames: uint8 (T, H, W, 3); heat: (T, h, w) similarities, normalised over all frames together
    so that a frame where the object is absent stays dark. Returns uint8 (tile, T*tile + gaps, 3).
    """
    if len(frames) != len(heat):
        raise ValueError(f"{len(frames)} frames but {len(heat)} heat maps")
    heat01 = unit_range(heat)
    tiles = [overlay(resize(f, tile, tile), upsample(h, tile, tile)) for f, h in zip(frames, heat01, strict=True)]
    return hstack(tiles)


def temporal_strip(spans: Sequence[tuple[float, float]], scores: Sequence[float], duration: float,
                   selected: int | None = None, width: int = 640, height: int = 56) -> np.ndarray:
    """Similarity of each window along the file: a bar from 0 to `duration` seconds, each window's
    stretch coloured by its score, the selected window outlined, the time at both ends.

    Overlapping windows (stride < window) are painted in order, so each point shows the latest
    window that covers it. Returns uint8 (height, width, 3).
    """
    bar_height = height - 16  # the rest holds the time labels
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    total = max(duration, max((e for _, e in spans), default=0.0), 1e-6)
    x = lambda t: int(round(t / total * (width - 1)))  # noqa: E731
    colours = colorize(unit_range(np.asarray(scores, np.float32))) if len(scores) else []
    for (start, end), colour in zip(spans, colours, strict=True):
        draw.rectangle([x(start), 0, max(x(start), x(end) - 1), bar_height], fill=tuple(int(c) for c in colour))
    font = ImageFont.load_default()
    if selected is not None and 0 <= selected < len(spans):
        start, end = spans[selected]
        draw.rectangle([x(start), 0, max(x(start) + 2, x(end) - 1), bar_height], outline=SELECTED, width=3)
        score = f"{scores[selected]:.2f}"  # the selected window's own score, centred under it
        middle = (x(start) + x(end)) / 2 - draw.textlength(score, font=font) / 2
        draw.text((min(max(middle, 30), width - 70), bar_height + 2), score, fill=SELECTED, font=font)
    draw.text((2, bar_height + 2), "0 s", fill=(220, 220, 220), font=font)
    label = f"{total:.1f} s"
    draw.text((width - 2 - draw.textlength(label, font=font), bar_height + 2), label, fill=(220, 220, 220), font=font)
    return np.asarray(image)


def spectrogram_rgb(spec: np.ndarray, stops: np.ndarray = HEAT_STOPS) -> np.ndarray:
    """uint8 (F, M, 3): a spectrogram (F, M) drawn with low frequencies at the bottom."""
    return colorize(unit_range(spec), stops)[::-1]


def spectrogram_heatmap(spec: np.ndarray, heat: np.ndarray, height: int = TILE, width: int = 2 * TILE) -> np.ndarray:
    """The spectrogram (F, M) in grey under its patch similarities (f, t), both rows low to high.
    Returns uint8 (height, width, 3)."""
    grey = resize(spectrogram_rgb(spec, GREY_STOPS), width, height)
    heat01 = upsample(unit_range(heat)[::-1], width, height)  # flipped like the spectrogram
    return overlay(grey, heat01)


# --- thumbnails --------------------------------------------------------------------------------


def video_thumbnail(frame: np.ndarray, size: int = TILE) -> np.ndarray:
    """uint8 (size, size, 3) from one frame (H, W, 3)."""
    return resize(frame, size, size)


def audio_thumbnail(spec: np.ndarray, size: int = TILE) -> np.ndarray:
    """uint8 (size, size, 3): a small coloured spectrogram of (F, M)."""
    return resize(spectrogram_rgb(spec), size, size)


def blank(size: int = TILE) -> np.ndarray:
    """uint8 (size, size, 3) of the background colour: a thumbnail that could not be made."""
    return np.full((size, size, 3), BACKGROUND, np.uint8)
