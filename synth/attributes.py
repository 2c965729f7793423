"""What a synthetic clip shows and says: the attribute tables (colour, shape, size, motion and the
sound each one makes), the caption templates, and which combination each clip of a split gets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Colour -> RGB, far apart in RGB so they survive yuv420p chroma subsampling. Order sets pitch.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "orange": (250, 140, 0),
    "yellow": (240, 230, 30),
    "green": (30, 200, 50),
    "cyan": (0, 210, 230),
    "blue": (40, 70, 250),
    "purple": (190, 50, 230),
    "white": (235, 235, 235),
}
# Fundamental per colour: a fourth (5 semitones) apart from A3. On a 64-band mel scale from 20 Hz
# to 8 kHz neighbouring notes lie 2-5 bands apart, so a tiny model can tell them apart.
NOTES_HZ: dict[str, float] = {c: round(220.0 * 2 ** (5 * k / 12), 2) for k, c in enumerate(COLOURS)}
# The caption's word for the pitch range, so text alone says how high the sound is.
REGISTERS: dict[str, str] = {c: ("low", "low", "low", "middle", "middle", "high", "high", "high")[k]
                             for k, c in enumerate(COLOURS)}
# Shape -> instrument (its timbre, see `timbre`).
SHAPES: dict[str, str] = {
    "circle": "whistle",
    "square": "buzzer",
    "triangle": "horn",
    "diamond": "bell",
    "cross": "organ",
    "star": "drum",
}
# Size -> (side as a fraction of the frame, loudness word, amplitude). 0.25 is -12 dB.
SIZES: dict[str, tuple[float, str, float]] = {"small": (0.18, "soft", 0.25), "large": (0.30, "loud", 1.0)}
MOTIONS = ("bounces", "slides", "pulses")
# What the sound does, per motion; the template picks one phrase per clip.
SOUND_PHRASES: dict[str, tuple[str, ...]] = {
    "bounces": ("clicks at each bounce", "sounds every time it hits a wall"),
    "slides": ("hums steadily", "holds one steady note"),
    "pulses": ("beeps with each pulse", "beats in time"),
}
TEMPLATES = (
    "a {size} {colour} {shape} {motion} while a {loudness} {register} {instrument} {sound}",
    "a {loudness} {register} {instrument} {sound} as a {size} {colour} {shape} {motion}",
    "on a dark background a {size} {colour} {shape} {motion} and a {loudness} {register} "
    "{instrument} {sound}",
)
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}  # keeps the seeds of different splits disjoint
PLAN_TAG, CLIP_TAG = 0, 1  # seed sequences (seed, split, PLAN_TAG) and (seed, split, CLIP_TAG, index)


@dataclass(frozen=True)
class Attributes:
    """What the caption says about the sounding object; the rest follows from the tables."""

    colour: str
    shape: str
    size: str
    motion: str

    def to_dict(self) -> dict[str, object]:
        return {"colour": self.colour, "shape": self.shape, "size": self.size, "motion": self.motion,
                "instrument": SHAPES[self.shape], "register": REGISTERS[self.colour],
                "loudness": SIZES[self.size][1], "frequency": NOTES_HZ[self.colour]}


def all_attributes() -> list[Attributes]:
    """Every combination, in a fixed order: one distinct caption each."""
    return [Attributes(c, s, z, m) for c in COLOURS for s in SHAPES for z in SIZES for m in MOTIONS]



# Every combination of the tables has its own caption (tests/test_synth.py checks it): how many
# clips of a split can carry a caption no other clip has.
DISTINCT_CAPTIONS = len(COLOURS) * len(SHAPES) * len(SIZES) * len(MOTIONS)


def caption(attrs: Attributes, template: int = 0, phrase: int = 0) -> str:
    """The caption of a clip: every attribute word appears, whichever template."""
    words = attrs.to_dict()
    words["sound"] = SOUND_PHRASES[attrs.motion][phrase % len(SOUND_PHRASES[attrs.motion])]
    return TEMPLATES[template % len(TEMPLATES)].format(**words)


@dataclass(frozen=True)
class ClipSpec:
    """Everything needed to render clip `index` of a split, in any process."""

    index: int
    split: str
    attrs: Attributes
    entropy: tuple[int, ...]  # (seed, split stream, CLIP_TAG, index): this clip's own seed sequence


def plan_clips(n: int, seed: int, split: str, unique: bool, first_index: int = 0) -> list[ClipSpec]:
    """Choose the sounding object of each clip. `unique` draws combinations without replacement."""
    if split not in SPLIT_STREAMS:
        raise ValueError(f"split must be one of {', '.join(SPLIT_STREAMS)}, not {split!r}")
    combos, stream = all_attributes(), SPLIT_STREAMS[split]
    rng = np.random.default_rng([seed, stream, PLAN_TAG])
    if unique and n > len(combos):
        raise ValueError(f"{n} {split} clips with unique captions asked for, but there are only "
                         f"{len(combos)} distinct captions")
    order = rng.permutation(len(combos))[:n] if unique else rng.integers(len(combos), size=n)
    return [ClipSpec(first_index + i, split, combos[k], (seed, stream, CLIP_TAG, first_index + i))
            for i, k in enumerate(order)]

