"""Short videos with motion: a picture gliding and growing or shrinking over a background while
its sound plays (or in silence), and the mixes that teach what several sounds at once are."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image

from vlsa.encode import write_mp4

SIZE = 96  # frame side: the tiny preset decodes 64 px, small 112 (upscaled from here)
FPS = 8
RATE = 16000


def background(rng: np.random.Generator, size: int) -> Image.Image:
    """A vertical two-colour gradient, so the picture moves over something."""
    top, bottom = rng.integers(0, 256, size=3), rng.integers(0, 256, size=3)
    w = np.linspace(0.0, 1.0, size)[:, None, None]
    rows = (top * (1 - w) + bottom * w).astype(np.uint8)
    return Image.fromarray(np.broadcast_to(rows, (size, size, 3)).copy())


def motion_frames(picture: Image.Image, seconds: float, rng: np.random.Generator, size: int = SIZE,
                  fps: int = FPS) -> np.ndarray:
    """uint8 (T, size, size, 3): the picture moving along a straight line while its scale changes
    from one random value to another, over a random gradient background."""
    frames = max(2, round(seconds * fps))
    back = background(rng, size)
    scale0, scale1 = rng.uniform(0.45, 0.8, size=2)
    start, end = rng.uniform(0.0, 1.0, size=2), rng.uniform(0.0, 1.0, size=2)
    picture = picture.convert("RGBA")
    picture.thumbnail((size, size), Image.LANCZOS)  # once, not per frame
    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    for i in range(frames):
        w = i / (frames - 1)
        side = max(4, round(size * (scale0 + (scale1 - scale0) * w)))
        sprite = picture.copy()
        sprite.thumbnail((side, side), Image.LANCZOS)
        x, y = (start + (end - start) * w) * (size - np.array(sprite.size))
        frame = back.copy()
        frame.paste(sprite, (int(x), int(y)), sprite)
        out[i] = np.asarray(frame)
    return out


def write_clip(path: Path, picture: Image.Image, wave: np.ndarray | None, seconds: float,
               rng: np.random.Generator) -> None:
    """A picture-with-motion clip of `seconds`; `wave` (mono, RATE) padded or cut to fit, or None
    for a clip without a sound track."""
    frames = motion_frames(picture, seconds, rng)
    sound = None if wave is None else fit(wave, seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, frames, FPS, sound, RATE)


def fit(wave: np.ndarray, seconds: float) -> np.ndarray:
    n = round(seconds * RATE)
    return np.pad(wave[:n], (0, max(0, n - len(wave)))).astype(np.float32)


def with_noise(wave: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """The sound under white noise at `snr_db` (signal RMS over noise RMS), peak kept below 1."""
    rms = float(np.sqrt(np.mean(wave ** 2))) or 1e-3
    noisy = wave + rng.normal(0.0, rms / 10 ** (snr_db / 20), size=len(wave)).astype(np.float32)
    return noisy / max(1.0, float(np.abs(noisy).max()) / 0.9)


def mix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two sounds at once, each at half level."""
    n = max(len(a), len(b))
    out = np.pad(a, (0, n - len(a))) * 0.5 + np.pad(b, (0, n - len(b))) * 0.5
    return out.astype(np.float32)


def redraw_clip(src: Path, dst: Path, picture: Image.Image, rng: np.random.Generator) -> None:
    """`src` with new frames (`picture` moving, as write_clip draws it) and its own sound track,
    copied packet for packet: the sound is not encoded again, so what a catalog hears is unchanged."""
    with av.open(str(src)) as clip:
        seconds = clip.duration / av.time_base
    silent = dst.with_name(dst.name + ".video.mp4")
    write_mp4(silent, motion_frames(picture, seconds, rng), FPS, None, RATE)
    try:
        with av.open(str(silent)) as video, av.open(str(src)) as sound, av.open(str(dst), "w", format="mp4") as out:
            # Every stream before the first packet: the first mux writes the file's header.
            streams = {s: out.add_stream_from_template(s) for s in (video.streams.video[0], sound.streams.audio[0])}
            for source, target in streams.items():
                for packet in source.container.demux(source):
                    if packet.dts is not None:  # the demuxer's last, empty packet
                        packet.stream = target
                        out.mux(packet)
    finally:
        silent.unlink(missing_ok=True)
