"""Write media with PyAV: the app's playable cuts and the synthetic clips both write RGB frames
at their own times and a mono AAC sound track, and both must feed the encoders the same way.

    sound = add_aac_stream(container, rate)   # before the first packet: the muxer writes its header then
    write_frame(container, video, rgb, pts, fps)  # each picture, at pts / fps seconds
    write_aac(container, sound, samples)      # all the samples, then the encoder's buffered tail

    write_mp4(path, frames, fps, samples, rate)   # a whole clip (the synthetic set, the corpus) at once
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AAC_FRAME = 1024  # samples the AAC encoder takes per frame


def add_aac_stream(container: av.container.OutputContainer, rate: int) -> av.audio.stream.AudioStream:
    """A mono AAC stream at `rate` Hz in `container`."""
    sound = container.add_stream("aac", rate=rate)
    sound.layout = "mono"
    return sound


def write_aac(container: av.container.OutputContainer, sound: av.audio.stream.AudioStream,
              samples: np.ndarray) -> None:
    """Mono float samples in [-1, 1] through the encoder, AAC_FRAME at a time, then flushed."""
    samples = np.asarray(samples, dtype=np.float32)
    rate = sound.codec_context.sample_rate
    for first in range(0, len(samples), AAC_FRAME):
        frame = av.AudioFrame.from_ndarray(samples[None, first:first + AAC_FRAME], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, first
        container.mux(sound.encode(frame))
    container.mux(sound.encode())


def write_frame(container: av.container.OutputContainer, video: av.video.stream.VideoStream,
                rgb: np.ndarray, pts: int, rate: Fraction) -> None:
    """One RGB uint8 (H, W, 3) picture, shown from pts / rate seconds."""
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    frame.pts, frame.time_base = pts, 1 / rate
    container.mux(video.encode(frame))


def write_mp4(path: Path, frames: np.ndarray | None, fps: float, audio: np.ndarray | None, sr: int) -> None:
    """h264 yuv420p video and aac mono audio in one mp4; either may be None (an audio-only .m4a,
    a silent picture clip)."""
    with av.open(str(path), "w", format="mp4") as container:
        rate = Fraction(fps).limit_denominator(1000)
        if frames is not None:
            video = container.add_stream("libx264", rate=rate)
            video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            # Constant quantiser, no rate control: x264's macroblock-tree rate control gave different
            # bytes from run to run here. qp 18 keeps the colours clean; parallelism is across clips.
            video.options = {"qp": "18", "preset": "veryfast", "threads": "1"}
        if audio is not None:
            sound = add_aac_stream(container, sr)
        for i, rgb in enumerate(frames if frames is not None else []):
            write_frame(container, video, rgb, i, rate)
        if frames is not None:
            container.mux(video.encode())
        if audio is None:
            return
        write_aac(container, sound, audio)

