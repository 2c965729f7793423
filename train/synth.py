"""The synthetic tri-modal set: short clips whose caption, picture and sound agree.

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

8 colours x 6 shapes x 2 sizes x 3 motions = 288 distinct captions. The caption names what is seen
and heard: "a large red circle bounces while a loud low whistle clicks at each bounce".

    generate("out/synth", n=1000, seed=0)          # out/synth/clips/00000.mp4 ..., manifest.jsonl
    generate_splits("out/synth", 1000, 100, seed=0)

Everything a clip contains comes from its own seed sequence (seed, split, index), so the output
is the same whatever the number of worker processes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import multiprocessing
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from vlsa.encode import add_aac_stream, write_aac, write_frame

# --- attribute tables ---------------------------------------------------------------------------

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
BACKGROUND = (18, 18, 24)
# Silent distractors: dim greys, far from every caption colour and from the background.
DISTRACTOR_RGB = ((78, 78, 84), (96, 92, 86), (70, 84, 78))
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}  # keeps the seeds of different splits disjoint
PLAN_TAG, CLIP_TAG = 0, 1  # seed sequences (seed, split, PLAN_TAG) and (seed, split, CLIP_TAG, index)
PULSE_SCALE = (1.35, 1.15)  # size of a pulsing object on a beat frame and the frame after
BEEP_SECONDS = 0.16  # length of one pulse beep
HIT_DECAY_SECONDS = 0.06  # a bounce is a sharp click, so bounces and pulses sound different
CLICK_ATTACK_SECONDS = 0.003  # ... with a hard onset, like a real impact
SOFT_EDGE_SECONDS = 0.015  # beeps and held notes fade in and out
TARGET_RMS = 0.2  # loudness of a "loud" note before the size gain


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


# --- sound --------------------------------------------------------------------------------------


def partials(freq: float, t: np.ndarray, sr: int, ratios, amps) -> np.ndarray:
    """Sum of sines at `ratios` x freq, skipping those above Nyquist (so no aliased tone lands on
    another colour's note)."""
    wave = np.zeros_like(t)
    for ratio, amp in zip(ratios, amps, strict=True):
        if ratio * freq < sr / 2:
            wave += amp * np.sin(2 * np.pi * ratio * freq * t)
    return wave


def timbre(instrument: str, freq: float, t: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """The instrument's waveform at `freq`, normalised to unit RMS (loudness is the size's job)."""
    k = np.arange(1, int(sr / 2 / freq) + 1)
    if instrument == "whistle":  # pure sine
        wave = np.sin(2 * np.pi * freq * t)
    elif instrument == "buzzer":  # square wave: odd harmonics at 1/k
        wave = partials(freq, t, sr, k[::2], 1 / k[::2])
    elif instrument == "horn":  # sawtooth: every harmonic at 1/k
        wave = partials(freq, t, sr, k, 1 / k)
    elif instrument == "bell":  # inharmonic partials of a struck bar
        wave = partials(freq, t, sr, (1, 2.76, 5.40, 8.93), (1.0, 0.6, 0.4, 0.25))
    elif instrument == "organ":  # octave stops: 1, 2, 4, 8 times the fundamental
        wave = partials(freq, t, sr, (1, 2, 4, 8), (1.0, 0.7, 0.5, 0.3))
    elif instrument == "drum":  # broadband noise over a tone that still carries the colour's pitch
        wave = np.sin(2 * np.pi * freq * t) + 0.8 * rng.standard_normal(t.shape)
    else:
        raise ValueError(f"unknown instrument {instrument!r}")
    return wave / np.sqrt(np.mean(wave**2))


def _ramp(x: np.ndarray) -> np.ndarray:
    """Raised-cosine step from 0 (x <= 0) to 1 (x >= 1): smooth edges do not splatter across bands."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def envelope(motion: str, event_times: list[float], n: int, sr: int, seconds: float) -> np.ndarray:
    """Amplitude over time: clicks at bounces, gated beeps at pulses, one held note for slides."""
    t = np.arange(n) / sr
    if motion == "slides":
        return _ramp(t / SOFT_EDGE_SECONDS) * _ramp((seconds - t) / SOFT_EDGE_SECONDS)
    env = np.zeros(n)
    for e in event_times:
        dt = t - e
        if motion == "bounces":
            shape = _ramp(dt / CLICK_ATTACK_SECONDS) * np.exp(-np.maximum(dt, 0) / HIT_DECAY_SECONDS)
        else:
            shape = _ramp(dt / SOFT_EDGE_SECONDS) * _ramp((BEEP_SECONDS - dt) / SOFT_EDGE_SECONDS)
        env = np.maximum(env, shape)
    return env


def synthesize(attrs: Attributes, event_times: list[float], seconds: float, sr: int,
               rng: np.random.Generator) -> np.ndarray:
    """Mono float32 waveform in [-1, 1] of the sounding object."""
    n = round(seconds * sr)
    t = np.arange(n) / sr
    wave = timbre(SHAPES[attrs.shape], NOTES_HZ[attrs.colour], t, sr, rng)
    gain = TARGET_RMS * SIZES[attrs.size][2]
    return np.clip(gain * wave * envelope(attrs.motion, event_times, n, sr, seconds), -1, 1).astype(np.float32)


# --- container ----------------------------------------------------------------------------------


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


# --- one clip and the whole set -----------------------------------------------------------------


@dataclass(frozen=True)
class RenderSettings:
    """How every clip of a set is rendered and where it is written."""

    out_dir: str
    seconds: float
    fps: float
    size: int
    sample_rate: int


def render_clip(spec: ClipSpec, cfg: RenderSettings) -> dict:
    """Draw, synthesise and write one clip; return its manifest row."""
    rng = np.random.default_rng(list(spec.entropy))
    frames = max(1, round(cfg.seconds * cfg.fps))
    sprites = make_sprites(rng, spec.attrs, frames, cfg.fps, cfg.size)
    pictures, boxes = render_frames(sprites, frames, cfg.size)
    events = [round(i / cfg.fps, 4) for i in sprites[-1].track.events]
    audio = synthesize(spec.attrs, events, cfg.seconds, cfg.sample_rate, rng)
    rel = f"clips/{spec.index:05d}.mp4"
    write_mp4(Path(cfg.out_dir) / rel, pictures, cfg.fps, audio, cfg.sample_rate)
    text = caption(spec.attrs, int(rng.integers(len(TEMPLATES))), int(rng.integers(len(SOUND_PHRASES[spec.attrs.motion]))))
    return {"video": rel, "text": text, "split": spec.split, "start": 0.0, "end": float(cfg.seconds),
            "attributes": spec.attrs.to_dict(),
            "boxes": [[round(v / cfg.size, 4) for v in b] for b in boxes],
            "fps": cfg.fps, "events": events}


def render_all(specs: list[ClipSpec], cfg: RenderSettings, out_dir: Path, workers: int = 1,
               on_clip: Callable[[], object] | None = None) -> Path:
    """Render every clip (in order, whatever `workers`) and write manifest.jsonl."""
    if cfg.size % 2 or cfg.size < 16:
        raise ValueError(f"size must be an even number of pixels >= 16 (yuv420p), not {cfg.size}")
    if cfg.seconds <= 0 or cfg.fps <= 0:
        raise ValueError("seconds and fps must be positive")
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    render = functools.partial(render_clip, cfg=cfg)
    manifest = out_dir / "manifest.jsonl"
    with contextlib.ExitStack() as stack:
        f = stack.enter_context(open(manifest, "w"))
        rows = map(render, specs)  # one worker: render here, no process start-up
        if workers > 1:  # imap keeps the order of `specs`, so the manifest does not depend on workers
            rows = stack.enter_context(multiprocessing.get_context().Pool(workers)).imap(render, specs, 4)
        for row in rows:
            f.write(json.dumps(row) + "\n")
            if on_clip is not None:
                on_clip()
    return manifest


def generate(out_dir: str | Path, n: int, seed: int, split: str = "train", seconds: float = 2.0,
             fps: float = 12, size: int = 96, sample_rate: int = 16000,
             unique_captions: bool | None = None, workers: int = 1,
             on_clip: Callable[[], object] | None = None) -> Path:
    """Write `n` clips and their manifest under `out_dir`; return the manifest's path.

    unique_captions (default: True unless split is "train") gives every clip its own caption and
    raises ValueError if n exceeds the number of distinct captions. `on_clip` is called once per
    finished clip (a progress bar's update).
    """
    unique = split != "train" if unique_captions is None else unique_captions
    specs = plan_clips(n, seed, split, unique)
    cfg = RenderSettings(str(out_dir), seconds, fps, size, sample_rate)
    return render_all(specs, cfg, Path(out_dir), workers, on_clip)


def generate_splits(out_dir: str | Path, n_train: int, n_test: int, seed: int, split: str = "train",
                    seconds: float = 2.0, fps: float = 12, size: int = 96, sample_rate: int = 16000,
                    workers: int = 1, on_clip: Callable[[], object] | None = None) -> Path:
    """One manifest with `n_train` clips of `split` then `n_test` test clips with unique captions.
    Clip seeds carry the split, so training clips never share a seed with test clips."""
    if split == "test":
        raise ValueError("the extra test clips need the main split to be train or val, not test")
    specs = plan_clips(n_train, seed, split, unique=split != "train")
    specs += plan_clips(n_test, seed, "test", unique=True, first_index=n_train)
    cfg = RenderSettings(str(out_dir), seconds, fps, size, sample_rate)
    return render_all(specs, cfg, Path(out_dir), workers, on_clip)
