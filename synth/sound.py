"""The sound of a synthetic clip: the sounding object's instrument at its colour's pitch, as loud as
its size, in the rhythm of its motion."""

from __future__ import annotations

import numpy as np

from synth.attributes import NOTES_HZ, SHAPES, SIZES, Attributes

BEEP_SECONDS = 0.16  # length of one pulse beep
HIT_DECAY_SECONDS = 0.06  # a bounce is a sharp click, so bounces and pulses sound different
CLICK_ATTACK_SECONDS = 0.003  # ... with a hard onset, like a real impact
SOFT_EDGE_SECONDS = 0.015  # beeps and held notes fade in and out
TARGET_RMS = 0.2  # loudness of a "loud" note before the size gain


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

