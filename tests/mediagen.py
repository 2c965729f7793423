"""Write small synthetic media files with PyAV for the tests.

Video frames carry their own index: three corner blocks hold the base-16 digits of the frame
number as grey levels (16 levels, 16 apart), so a test can tell which frame a decoder returned
even after lossy h264 coding and a resize. A square moving across the frame gives the encoder
real motion to code. Audio is a sine tone, so a test can check the sample rate from its pitch.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import wave
from pathlib import Path

import av
import numpy as np
from requires import shared_media

from vlsa.encode import add_aac_stream, write_aac

# The real recordings (where the environment says); a test that needs them asks
# requires.require_shared_media(), which skips, or under CI fails, where they are missing.
SHARED_MEDIA = shared_media()

# Block side as a fraction of the frame side; with 96x96 frames that is 24 px, still 16 px after
# resizing to 64, which leaves a clean 8 px centre to read even with chroma blur at the edges.
BLOCK_FRACTION = 0.25
DIGITS = 3  # three base-16 digits: frame indices up to 4095 (341 s at 12 fps)


def _corner_slices(height: int, width: int) -> list[tuple[slice, slice]]:
    """(rows, cols) of the three index blocks: top-left (low digit), top-right, bottom-left."""
    bh, bw = int(height * BLOCK_FRACTION), int(width * BLOCK_FRACTION)
    return [
        (slice(0, bh), slice(0, bw)),
        (slice(0, bh), slice(width - bw, width)),
        (slice(height - bh, height), slice(0, bw)),
    ]


def _digit_level(digit: int) -> int:
    return 8 + 16 * digit  # 8, 24, ..., 248: mid-points of 16 equal bands


def frame_image(index: int, size: tuple[int, int]) -> np.ndarray:
    """RGB uint8 (height, width, 3) frame number `index`: index blocks plus a moving square."""
    width, height = size
    img = np.full((height, width, 3), 64, dtype=np.uint8)
    side = max(4, height // 6)
    x = (index * 3) % max(1, width - side)
    y = height // 2 - side // 2
    img[y:y + side, x:x + side] = (220, 40, 40)
    for d, (rows, cols) in enumerate(_corner_slices(height, width)):
        img[rows, cols] = _digit_level((index >> (4 * d)) & 15)
    return img


def frame_index(frame: np.ndarray | object) -> int:
    """Read back the index written by `frame_image` from a decoded frame.

    `frame`: uint8 (3, H, W) tensor or array (as returned by vlsa.media), any square size.
    """
    arr = np.asarray(frame)
    _, height, width = arr.shape
    index = 0
    for d, (rows, cols) in enumerate(_corner_slices(height, width)):
        block = arr[:, rows, cols].astype(np.float32)
        h, w = block.shape[1:]
        centre = block[:, h // 4: h - h // 4, w // 4: w - w // 4].mean()
        digit = int(np.clip(round((centre - 8) / 16), 0, 15))
        index |= digit << (4 * d)
    return index


def _tone(num: int, sample_rate: int, tone_hz: float, offset: int = 0) -> np.ndarray:
    t = (np.arange(num) + offset) / sample_rate
    return (0.5 * np.sin(2 * math.pi * tone_hz * t)).astype(np.float32)


def make_video(path: str | os.PathLike, seconds: float, fps: int = 12, size: tuple[int, int] = (96, 96),
               audio: bool = True, sample_rate: int = 16000, tone_hz: float = 440.0,
               gop: int | None = None) -> Path:
    """Write an h264 (+ AAC mono tone when `audio`) mp4 of `seconds` at `fps`; returns the path.

    `gop`: keyframe interval in frames (default 2 s), so seeking has keyframes to land on.
    """
    path = Path(path)
    num_frames = max(1, round(seconds * fps))
    with av.open(str(path), mode="w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.codec_context.gop_size = gop or 2 * fps
        # Near-lossless so the index blocks survive; "veryfast" keeps B-frames (pts reordering).
        vs.codec_context.options = {"preset": "veryfast", "crf": "12"}
        as_ = None
        if audio:
            as_ = add_aac_stream(out, sample_rate)
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_image(i, size), format="rgb24")
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        if as_ is not None:
            write_aac(out, as_, _tone(round(seconds * sample_rate), sample_rate, tone_hz))
    return path


def make_audio(path: str | os.PathLike, seconds: float, sample_rate: int = 16000,
               tone_hz: float = 440.0, channels: int = 1) -> Path:
    """Write a 16-bit PCM wav of a sine tone (the same tone on every channel); returns the path."""
    path = Path(path)
    samples = _tone(round(seconds * sample_rate), sample_rate, tone_hz)
    pcm = (samples * 32767).astype("<i2")
    pcm = np.repeat(pcm[:, None], channels, axis=1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return path


def make_truncated(src: str | os.PathLike, dst: str | os.PathLike, keep_fraction: float) -> Path:
    """Copy the first `keep_fraction` of `src`'s bytes to `dst` (a download cut short)."""
    dst = Path(dst)
    data = Path(src).read_bytes()
    dst.write_bytes(data[: int(len(data) * keep_fraction)])
    return dst


def copy_media(src: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Copy a read-only shared file into a scratch folder before anything writes beside it."""
    dst = Path(folder) / Path(src).name
    shutil.copyfile(src, dst)
    return dst


def make_float_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int = 16000) -> Path:
    """Write mono 32-bit float samples as a WAV (IEEE float, format tag 3) exactly as given, NaN
    and infinity included: the wave module writes integer PCM only."""
    path = Path(path)
    data = np.asarray(samples, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHH", 3, 1, sample_rate, sample_rate * 4, 4, 32)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        f.write(b"data" + struct.pack("<I", len(data)) + data)
    return path
