"""The picture of a synthetic clip: the sounding object's motion track, its silent distractors,
and the frames they are drawn on."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from synth.attributes import COLOURS, SHAPES, SIZES, Attributes

BACKGROUND = (18, 18, 24)
# Silent distractors: dim greys, far from every caption colour and from the background.
DISTRACTOR_RGB = ((78, 78, 84), (96, 92, 86), (70, 84, 78))
PULSE_SCALE = (1.35, 1.15)  # size of a pulsing object on a beat frame and the frame after


# --- motion: top-left corner of each frame's box, scale, and the frames that sound ----------------


@dataclass
class Track:
    xy: np.ndarray  # (T, 2) top-left corner of the unscaled box, pixels
    scale: np.ndarray  # (T,) size multiplier (pulses swell on beats)
    events: list[int]  # frames at which the object makes a sound


def bounce_track(rng: np.random.Generator, room: float, frames: int, fps: float) -> Track:
    """Straight lines between walls. On a frame where it reaches a wall it is drawn touching the
    wall and that frame is an event, so the click and the contact coincide exactly."""
    angle = rng.uniform(0.3, 1.27) + (math.pi / 2) * rng.integers(4)  # never axis-parallel
    speed = rng.uniform(1.0, 1.6) * room  # pixels per second: crosses the room about once a second
    v = speed * np.array([math.cos(angle), math.sin(angle)]) / fps
    p = rng.uniform(0, room, size=2)
    xy, events = np.zeros((frames, 2)), []
    for i in range(frames):
        if i:
            p = p + v
            hit = (p <= 0) | (p >= room)
            if hit.any():
                p, v = np.clip(p, 0, room), np.where(hit, -v, v)
                events.append(i)
        xy[i] = p
    return Track(xy, np.ones(frames), events)


def slide_track(rng: np.random.Generator, room: float, frames: int, fps: float) -> Track:
    """A glide across at least 40% of the room, never touching a wall: one note from the start."""
    start, end = rng.uniform(0, room, size=2), rng.uniform(0, room, size=2)
    while np.linalg.norm(end - start) < 0.4 * room:
        end = rng.uniform(0, room, size=2)
    margin = 0.05 * room
    start, end = np.clip(start, margin, room - margin), np.clip(end, margin, room - margin)
    w = np.linspace(0.0, 1.0, frames)[:, None]
    return Track(start + w * (end - start), np.ones(frames), [0])


def pulse_track(rng: np.random.Generator, room: float, frames: int, fps: float) -> Track:
    """A slow drift that swells on regular beat frames (period 0.4-0.6 s); each beat beeps.
    Near a wall the swollen box is pushed back inside by `frame_box`."""
    period = max(2, round(rng.uniform(0.4, 0.6) * fps))
    events = list(range(int(rng.integers(period)), frames, period))
    scale = np.ones(frames + len(PULSE_SCALE))
    for e in events:
        scale[e:e + len(PULSE_SCALE)] = np.maximum(scale[e:e + len(PULSE_SCALE)], PULSE_SCALE)
    start = rng.uniform(0, room, size=2)
    end = np.clip(start + rng.uniform(-0.15, 0.15, size=2) * room, 0, room)
    w = np.linspace(0.0, 1.0, frames)[:, None]
    return Track(start + w * (end - start), scale[:frames], events)


TRACKS: dict[str, Callable[[np.random.Generator, float, int, float], Track]] = {
    "bounces": bounce_track, "slides": slide_track, "pulses": pulse_track,
}


# --- picture ------------------------------------------------------------------------------------


def shape_points(shape: str, box: tuple[int, int, int, int]) -> list[tuple[float, float]]:
    """Polygon of a shape filling `box` (x0, y0, x1, y1, inclusive pixel corners)."""
    x0, y0, x1, y1 = box
    cx, cy, r = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2
    if shape == "triangle":
        return [(cx, y0), (x1, y1), (x0, y1)]
    if shape == "diamond":
        return [(cx, y0), (x1, cy), (cx, y1), (x0, cy)]
    if shape == "cross":  # a plus sign, arms a third of the side thick
        a = r / 3
        return [(cx - a, y0), (cx + a, y0), (cx + a, cy - a), (x1, cy - a), (x1, cy + a), (cx + a, cy + a),
                (cx + a, y1), (cx - a, y1), (cx - a, cy + a), (x0, cy + a), (x0, cy - a), (cx - a, cy - a)]
    if shape == "star":  # five points, inner radius half the outer
        return [(cx + rad * math.sin(k * math.pi / 5), cy - rad * math.cos(k * math.pi / 5))
                for k in range(10) for rad in [r if k % 2 == 0 else 0.5 * r]]
    raise ValueError(f"unknown shape {shape!r}")


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: tuple[int, int, int, int], rgb: tuple) -> None:
    if shape == "circle":
        draw.ellipse(box, fill=rgb)
    elif shape == "square":
        draw.rectangle(box, fill=rgb)
    else:
        draw.polygon(shape_points(shape, box), fill=rgb)


def frame_box(track: Track, i: int, side: int, size: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1), x1/y1 exclusive, of a track's object on frame i."""
    s = max(2, round(side * track.scale[i]))
    cx, cy = track.xy[i] + side / 2
    x0 = min(max(round(cx - s / 2), 0), size - s)
    y0 = min(max(round(cy - s / 2), 0), size - s)
    return x0, y0, x0 + s, y0 + s


@dataclass
class Sprite:
    shape: str
    rgb: tuple[int, int, int]
    side: int
    track: Track


def render_frames(sprites: list[Sprite], frames: int, size: int) -> tuple[np.ndarray, list]:
    """(T, H, W, 3) uint8 frames and the pixel boxes of the LAST sprite, which is drawn on top
    so no distractor ever hides the sounding object."""
    out = np.empty((frames, size, size, 3), np.uint8)
    boxes = []
    for i in range(frames):
        img = Image.new("RGB", (size, size), BACKGROUND)
        draw = ImageDraw.Draw(img)
        for sp in sprites:
            x0, y0, x1, y1 = box = frame_box(sp.track, i, sp.side, size)
            draw_shape(draw, sp.shape, (x0, y0, x1 - 1, y1 - 1), sp.rgb)
        boxes.append(box)
        out[i] = np.asarray(img)
    return out, boxes


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def make_sprites(rng: np.random.Generator, attrs: Attributes, frames: int, fps: float,
                 size: int) -> list[Sprite]:
    """1-2 silent distractors (another shape, a dim grey, any size, standing still), then the
    sounder: the caption's colour, shape, size and motion pick out exactly one object."""
    sprites = []
    for _ in range(int(rng.integers(1, 3))):
        shape = _pick(rng, [s for s in SHAPES if s != attrs.shape])
        rgb = DISTRACTOR_RGB[int(rng.integers(len(DISTRACTOR_RGB)))]
        side = round(SIZES[_pick(rng, list(SIZES))][0] * size)
        place = rng.uniform(0, size - side, size=2)
        sprites.append(Sprite(shape, rgb, side, Track(np.tile(place, (frames, 1)), np.ones(frames), [])))
    side = round(SIZES[attrs.size][0] * size)
    track = TRACKS[attrs.motion](rng, size - side, frames, fps)
    sprites.append(Sprite(attrs.shape, COLOURS[attrs.colour], side, track))
    return sprites

