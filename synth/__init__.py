"""synth: the synthetic tri-modal set, short clips whose caption, picture and sound agree. The
trainer (`vlsa data synth`) and the app (`vlsa demo`'s library) both generate it from here; it
imports only from vlsa.

Each clip shows shapes on a dark background. One of them, in one of eight bright colours, moves
and SOUNDS; one or two silent distractors (another shape, in a dim grey) stand still beside it, so
the picture alone says which object makes the sound, as a listener would see it. Every attribute of
the sounding object can be read from the picture alone and from the sound alone:

    colour -> pitch       8 notes a fourth apart, 220 Hz to 1.66 kHz (3 octaves)
    shape  -> timbre      whistle (sine), buzzer (square), horn (sawtooth), bell (inharmonic),
                          organ (octave stops), drum (noise burst over a tone)
    size   -> loudness    large is loud, small is soft (12 dB apart)
    motion -> rhythm      bounces: a hit at each frame where it touches a wall
                          slides:  one steady note while it glides across
                          pulses:  a beep at each frame where it swells

8 colours x 6 shapes x 2 sizes x 3 motions = 288 distinct captions (DISTINCT_CAPTIONS). The caption names what is seen
and heard: "a large red circle bounces while a loud low whistle clicks at each bounce".

    generate("out/synth", n=1000, seed=0)          # out/synth/clips/00000.mp4 ..., manifest.jsonl
    generate_splits("out/synth", 1000, 100, seed=0)

Everything a clip contains comes from its own seed sequence (seed, split, index), so the output
is the same whatever the number of worker processes.

    attributes.py  the tables, the captions, which clip gets which combination
    scene.py       motion tracks, distractors, frames
    sound.py       instruments, envelopes, the waveform
    render.py      one clip written, whole sets and their manifest
"""

from synth.attributes import DISTINCT_CAPTIONS, Attributes, all_attributes, caption
from synth.render import WORKERS, generate, generate_splits

__all__ = ["DISTINCT_CAPTIONS", "Attributes", "all_attributes", "caption", "WORKERS", "generate", "generate_splits"]
