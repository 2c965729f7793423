"""Write a mono AAC sound track with PyAV: the app's playable cuts and the synthetic clips both
carry one, and both must feed the encoder the same way.

    sound = add_aac_stream(container, rate)   # before the first packet: the muxer writes its header then
    ...                                       # other streams' packets
    write_aac(container, sound, samples)      # all the samples, then the encoder's buffered tail
"""

from __future__ import annotations

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
