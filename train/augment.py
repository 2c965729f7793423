"""Sound augmentation in training (`vlsa train --audio-augment`): each sound-only sample heard at
another speed and another level, drawn from the sample's own generator (so a resumed run sees
the same samples).

Speed perturbation (Ko et al., 2015: the same recording at 0.9, 1.0 and 1.1 times its speed, the
pitch moving with it) is the classic way to make a speech model hear voices it was not trained
on, and every held-out recording is another microphone, speaker or instrument than training's.
A random gain says that loudness is not content: the corpus's sounds are peak-normalised, a
user's are not. Only rows without pictures change: a clip's sound belongs to its moving picture,
and the synthetic clips name their objects by their tones' pitch.
"""

from __future__ import annotations

import dataclasses

import torch
import torchaudio

from vlsa.audio import fit_length
from vlsa.media import Clip

SPEED_STEPS = 20  # speeds are k / SPEED_STEPS: a small integer ratio keeps the resampling kernel short
SPEED_NUMERATORS = range(17, 24)
SPEEDS = tuple(k / SPEED_STEPS for k in SPEED_NUMERATORS)  # 0.85 ... 1.15, 1.0 among them
GAIN_DB = 6.0  # the level moves by up to this much either way


def perturb_sound(wave: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A mono waveform (S,) played at a random speed of SPEEDS (pitch with it) and a random gain
    within +-GAIN_DB, cut or zero-padded back to S samples."""
    k = SPEED_NUMERATORS[int(torch.randint(len(SPEED_NUMERATORS), (), generator=generator))]
    gain_db = (2 * torch.rand((), generator=generator) - 1) * GAIN_DB
    # k / SPEED_STEPS times as fast: k input samples become SPEED_STEPS output samples
    out = wave if k == SPEED_STEPS else torchaudio.functional.resample(wave, orig_freq=k, new_freq=SPEED_STEPS)
    return fit_length(out, wave.shape[-1]) * 10 ** (gain_db / 20)


def augment_clip(clip: Clip, generator: torch.Generator) -> Clip:
    """The clip with its sound perturbed when it is a sound without pictures; else as it is."""
    if not clip.has_audio or clip.frames is not None:
        return clip
    # The tower's 44.1 kHz copy is dropped: the tower then hears the perturbed sound, resampled
    # (vlsa.batch.clip_tower_input), rather than the original.
    return dataclasses.replace(clip, wave=perturb_sound(clip.wave, generator), tower_wave=None)
