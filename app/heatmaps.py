"""Heatmaps and thumbnails as RGB images: pure functions of numpy arrays (PIL for resizing and text).

    strip = spatial_figure(frames, model.video_patch_map(query, frames_tensor).numpy(), times)
    bar = temporal_strip(spans, scores, duration, selected=3)
    spec = spectrogram_figure(spectrogram, model.audio_patch_map(query, wave).numpy(), (start, end), hz)
    when = time_map(blocks.spans, blocks.similarity, columns, seconds)  # an audio tower's (1, columns)

The *_figure functions and temporal_strip are what the page shows: the picture with its axes (seconds,
Hz) and a colour legend in margins around it, never text over it.

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
MARGIN = (255, 255, 255)  # the figures' margins, where axes and legends are written
INK = (40, 40, 48)  # text and ticks in the margins
FONT_SIZE = 14  # pixels: readable at the size the page shows the figures
LEGEND = ("less like the query", "more like the query")  # colours are scaled per picture
HZ_TICKS = (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)


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


def font(size: int = FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def text_width(text: str, size: int = FONT_SIZE) -> int:
    return int(np.ceil(font(size).getlength(text)))


def seconds_label(t: float) -> str:
    t = max(t, 0.0) + 0.0  # never "-0.0 s"
    return f"{t:.1f} s" if t < 60 else f"{int(t // 60)}:{t % 60:04.1f}"


def nice_step(span: float, most: int) -> float:
    """The smallest round step in seconds that puts at most `most` ticks on `span` seconds."""
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600):
        if span / step <= most:
            return step
    return span / most


def time_ticks(start: float, end: float, width: int, most: int | None = None) -> list[tuple[int, str]]:
    """(x pixel, label) of round times from `start` to `end` seconds drawn over `width` pixels."""
    if not end > start:
        return [(0, seconds_label(start))]
    most = most or max(2, width // 70)
    step = nice_step(end - start, most)
    first = np.ceil(start / step - 1e-9) * step
    ticks = np.arange(first, end + 1e-9, step)
    return [(int(round((t - start) / (end - start) * (width - 1))), seconds_label(float(t))) for t in ticks]


def hz_label(hz: float) -> str:
    return f"{hz / 1000:g} kHz" if hz >= 1000 else f"{hz:g} Hz"


def frequency_ticks(hz: Sequence[float], height: int) -> list[tuple[int, str]]:
    """(y pixel, label) of round frequencies on a picture whose rows (low to high, drawn flipped:
    low at the bottom) have centre frequencies `hz`."""
    rows = np.arange(len(hz), dtype=np.float64)
    ticks: list[tuple[int, str]] = []
    for f in HZ_TICKS:
        if hz[0] <= f <= hz[-1]:
            row = float(np.interp(np.log(f), np.log(np.asarray(hz, np.float64)), rows))
            y = int(round((1 - (row + 0.5) / len(hz)) * (height - 1)))
            if not ticks or ticks[-1][0] - y > FONT_SIZE:  # labels never overlap (mel packs the lows)
                ticks.append((y, hz_label(f)))
    return ticks


def with_axes(image: np.ndarray, x_ticks: Sequence[tuple[int, str]] = (),
              y_ticks: Sequence[tuple[int, str]] = ()) -> np.ndarray:
    """`image` in a margin holding tick marks and labels: times below it, frequencies left of it."""
    height, width = image.shape[:2]
    left = max((text_width(label) for _, label in y_ticks), default=0) + 10 if y_ticks else 0
    bottom = FONT_SIZE + 10 if x_ticks else 0
    right = max(text_width(x_ticks[-1][1]) // 2 + 2, 4) if x_ticks else 0
    canvas = Image.new("RGB", (left + width + right, height + bottom + 2), MARGIN)
    canvas.paste(Image.fromarray(np.ascontiguousarray(image)), (left, 0))
    draw = ImageDraw.Draw(canvas)
    for x, label in x_ticks:
        draw.line([left + x, height, left + x, height + 4], fill=INK)
        middle = left + x - text_width(label) / 2
        draw.text((min(max(middle, 0), canvas.width - text_width(label)), height + 5), label, fill=INK, font=font())
    for y, label in y_ticks:
        draw.line([left - 5, y, left - 1, y], fill=INK)
        top = min(max(y - FONT_SIZE // 2 - 1, 0), height - FONT_SIZE)
        draw.text((left - 7 - text_width(label), top), label, fill=INK, font=font())
    return np.asarray(canvas)


def colour_legend(width: int, labels: tuple[str, str] = LEGEND) -> np.ndarray:
    """uint8 (h, width, 3): the heat colour scale from dark to bright, its meaning at both ends."""
    bar_width = min(width, max(220, text_width(labels[0]) + text_width(labels[1]) + 24))
    canvas = Image.new("RGB", (width, 12 + FONT_SIZE + 8), MARGIN)
    bar = colorize(np.tile(np.linspace(0, 1, bar_width), (10, 1)))
    canvas.paste(Image.fromarray(bar), (0, 2))
    draw = ImageDraw.Draw(canvas)
    draw.text((0, 14), labels[0], fill=INK, font=font())
    draw.text((max(bar_width - text_width(labels[1]), text_width(labels[0]) + 12), 14), labels[1], fill=INK, font=font())
    return np.asarray(canvas)


def vstack(parts: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    """Images one above the other, left-aligned, on the margin colour."""
    width = max(p.shape[1] for p in parts)
    canvas = Image.new("RGB", (width, sum(p.shape[0] for p in parts) + gap * (len(parts) - 1)), MARGIN)
    y = 0
    for part in parts:
        canvas.paste(Image.fromarray(np.ascontiguousarray(part)), (0, y))
        y += part.shape[0] + gap
    return np.asarray(canvas)


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


def spatial_figure(frames: np.ndarray, heat: np.ndarray, times: Sequence[float], tile: int = TILE) -> np.ndarray:
    """spatial_strip with each frame's time in the file under it and the colour legend."""
    strip = spatial_strip(frames, heat, tile)
    ticks = [(i * (tile + GAP) + tile // 2, seconds_label(t)) for i, t in enumerate(times)]
    return vstack([with_axes(strip, x_ticks=ticks), colour_legend(strip.shape[1])])


def temporal_strip(spans: Sequence[tuple[float, float]], scores: Sequence[float], duration: float,
                   selected: int | None = None, width: int = 640, height: int = 40) -> np.ndarray:
    """Similarity of each window along the file: a bar from 0 to `duration` seconds, each window's
    stretch coloured by its score, the selected window outlined; times under it, the legend below.

    Overlapping windows (stride < window) are painted in order, so each point shows the latest
    window that covers it. Returns uint8 (H, width, 3), the bar in the top `height` rows.
    """
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    total = max(duration, max((e for _, e in spans), default=0.0), 1e-6)
    x = lambda t: int(round(t / total * (width - 1)))  # noqa: E731
    colours = colorize(unit_range(np.asarray(scores, np.float32))) if len(scores) else []
    for (start, end), colour in zip(spans, colours, strict=True):
        draw.rectangle([x(start), 0, max(x(start), x(end) - 1), height - 1], fill=tuple(int(c) for c in colour))
    if selected is not None and 0 <= selected < len(spans):
        start, end = spans[selected]
        draw.rectangle([x(start), 0, max(x(start) + 2, x(end) - 1), height - 1], outline=SELECTED, width=3)
    bar = with_axes(np.asarray(image), x_ticks=time_ticks(0.0, total, width))
    return vstack([bar, colour_legend(width, ("this query: less like it", "more like it"))])


def spectrogram_rgb(spec: np.ndarray, stops: np.ndarray = HEAT_STOPS) -> np.ndarray:
    """uint8 (F, M, 3): a spectrogram (F, M) drawn with low frequencies at the bottom."""
    return colorize(unit_range(spec), stops)[::-1]


def spectrogram_heatmap(spec: np.ndarray, heat: np.ndarray, height: int = TILE, width: int = 2 * TILE) -> np.ndarray:
    """The spectrogram (F, M) in grey under its patch similarities (f, t), both rows low to high.
    Returns uint8 (height, width, 3)."""
    grey = resize(spectrogram_rgb(spec, GREY_STOPS), width, height)
    heat01 = upsample(unit_range(heat)[::-1], width, height)  # flipped like the spectrogram
    return overlay(grey, heat01)


def spectrogram_figure(spec: np.ndarray, heat: np.ndarray, seconds: tuple[float, float], hz: Sequence[float],
                       height: int = TILE, width: int = 2 * TILE, title: Sequence[str] = (),
                       legend: tuple[str, str] = LEGEND) -> np.ndarray:
    """spectrogram_heatmap with a time axis (`seconds`: the file's times at its first and last
    column), a frequency axis (`hz`: each row's centre frequency), the colour legend, and the
    `title` lines above it (what the colours mean, where that differs from the patch map's)."""
    picture = spectrogram_heatmap(spec, heat, height, width)
    framed = with_axes(picture, x_ticks=time_ticks(*seconds, width, most=4), y_ticks=frequency_ticks(hz, height))
    heading = [text_lines(title, framed.shape[1])] if title else []
    return vstack([*heading, framed, colour_legend(framed.shape[1], legend)])


def time_map(spans: np.ndarray, scores: np.ndarray, columns: int, seconds: float) -> np.ndarray:
    """float32 (1, columns): a heat row over a map of `columns` time columns spanning `seconds`,
    from scores of overlapping time blocks (`spans`: (n, 2) seconds). Each score is placed at its
    block's middle and the row interpolates between them (flat past the first and last): blocks
    overlap, and a block's score says most about its middle, so a block that matches best peaks
    there. One row: spectrogram_heatmap stretches it over every frequency alike."""
    spans, scores = np.asarray(spans, np.float64).reshape(-1, 2), np.asarray(scores, np.float64)
    times = np.arange(columns) * seconds / columns
    return np.interp(times, spans.mean(axis=1), scores).astype(np.float32)[None]


def text_lines(lines: Sequence[str], width: int) -> np.ndarray:
    """uint8 (h, width, 3): lines of text on the margin colour (a figure's title)."""
    canvas = Image.new("RGB", (width, len(lines) * (FONT_SIZE + 4) + 2), MARGIN)
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        draw.text((0, 1 + i * (FONT_SIZE + 4)), line, fill=INK, font=font())
    return np.asarray(canvas)


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
