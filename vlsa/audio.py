"""Audio front ends: waveform -> normalised log spectrogram map (bins x frames) for the encoder.

Two maps, both built from an `AudioConfig`:
- `LogFreqSpectrogram`, the paper's: STFT magnitude, frequency axis resampled to log-spaced bins.
- `LogMelSpectrogram`, AST / AudioMAE / CAV-MAE style: mel power spectrogram.
`build_frontend(cfg)` wraps the configured one with the fixed-length cropping and the
(x - norm_mean) / norm_std normalisation the model expects; `map_statistics` measures those two
numbers on real audio (the presets' values and how they were measured: docs/DESIGN.md, "Audio
normalisation"). The mel map is log power, the log-frequency map log magnitude (the paper's).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable

import torch
import torchaudio
from torch import nn

from vlsa.config import AudioConfig

log = logging.getLogger(__name__)

EPS = 1e-6  # log(x + EPS): silence maps to log(EPS) ~ -13.8 instead of -inf
SILENCE = math.log(EPS)


def log_frequency_centres(sample_rate: int, bins: int, fmin: float) -> torch.Tensor:
    """float64 (bins,): geometrically spaced centre frequencies from fmin to Nyquist, in Hz."""
    nyquist = sample_rate / 2
    return fmin * (nyquist / fmin) ** (torch.arange(bins, dtype=torch.float64) / max(1, bins - 1))


def log_frequency_weights(n_freqs: int, sample_rate: int, bins: int, fmin: float) -> torch.Tensor:
    """float32 (bins, n_freqs): each row averages the linear STFT bins around one log-spaced centre.

    Row k is a triangle peaking at centre k and reaching zero at its neighbours' centres, but
    never narrower than the linear bin spacing: at low frequencies, where log bins are denser than
    STFT bins, it becomes linear interpolation between the two nearest STFT bins (no empty rows),
    and higher up it averages the STFT bins the log bin spans. Rows sum to 1, so a bin holds a
    magnitude on the same scale as the STFT whatever its width.

    Ours because torchaudio has mel and linear filterbanks (melscale_fbanks, linear_fbanks) but
    none with log-spaced centres, which the paper's map needs.
    """
    linear = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)
    spacing = float(linear[1] - linear[0])
    centres = log_frequency_centres(sample_rate, bins, fmin)
    ratio = float(centres[1] / centres[0]) if bins > 1 else 2.0
    below = torch.cat([centres[:1] / ratio, centres[:-1]])  # the neighbours, extended by one step
    above = torch.cat([centres[1:], centres[-1:] * ratio])
    lower = (centres - below).clamp(min=spacing)[:, None]
    upper = (above - centres).clamp(min=spacing)[:, None]
    c = centres[:, None]
    rising = (linear[None, :] - (c - lower)) / lower
    falling = ((c + upper) - linear[None, :]) / upper
    weights = torch.minimum(rising, falling).clamp(min=0)
    return (weights / weights.sum(dim=1, keepdim=True)).float()


class LogFreqSpectrogram(nn.Module):
    """(..., samples) -> (..., cfg.bins, time): log STFT magnitude on a log-frequency axis.

    STFT: n_fft = cfg.n_fft (n_fft // 2 + 1 linear bins), hop cfg.hop, Hann window, centred.
    """

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        self.stft = torchaudio.transforms.Spectrogram(n_fft=cfg.n_fft, hop_length=cfg.hop, power=1,
                                                      center=True)
        weights = log_frequency_weights(cfg.n_fft // 2 + 1, cfg.sample_rate, cfg.bins, cfg.fmin)
        self.register_buffer("weights", weights, persistent=False)  # rebuilt from cfg, not saved

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        magnitude = self.stft(wave)  # (..., n_fft // 2 + 1, time)
        return torch.log(torch.matmul(self.weights, magnitude) + EPS)


class LogMelSpectrogram(nn.Module):
    """(..., samples) -> (..., cfg.bins, time): log mel power spectrogram (HTK mel scale)."""

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(sample_rate=cfg.sample_rate, n_fft=cfg.n_fft,
                                                        hop_length=cfg.hop, n_mels=cfg.bins,
                                                        f_min=cfg.fmin, power=2)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(wave) + EPS)


def spectrogram(cfg: AudioConfig) -> nn.Module:
    """The un-normalised log map named by cfg.frontend."""
    if cfg.frontend == "logfreq":
        return LogFreqSpectrogram(cfg)
    if cfg.frontend == "mel":
        return LogMelSpectrogram(cfg)
    raise ValueError(f"audio.frontend must be logfreq or mel, not {cfg.frontend!r}")


def row_frequencies(cfg: AudioConfig) -> torch.Tensor:
    """float64 (cfg.bins,): the centre frequency of each row of the map, low to high, in Hz (the
    app labels spectrogram axes with it)."""
    if cfg.frontend == "logfreq":
        return log_frequency_centres(cfg.sample_rate, cfg.bins, cfg.fmin)
    if cfg.frontend == "mel":  # torchaudio's HTK mel bands: bins + 2 edges evenly spaced in mel
        edges = torch.linspace(_hz_to_mel(cfg.fmin), _hz_to_mel(cfg.sample_rate / 2), cfg.bins + 2, dtype=torch.float64)
        return 700.0 * (10 ** (edges[1:-1] / 2595.0) - 1)
    raise ValueError(f"audio.frontend must be logfreq or mel, not {cfg.frontend!r}")


def at_rate(cfg: AudioConfig, rate: int) -> AudioConfig:
    """The same map for sound at another rate: the STFT window and hop scaled with the rate, so
    the map keeps its rows, columns and seconds (to a rounding of the hop) and reaches the new
    Nyquist frequency. What the app draws a waveform decoded at an audio tower's 44.1 kHz with
    (VLSA.wave_frontend): the front end's own map, not a second spectrogram."""
    if rate == cfg.sample_rate:
        return cfg
    scale = rate / cfg.sample_rate
    return dataclasses.replace(cfg, sample_rate=rate, n_fft=round(cfg.n_fft * scale), hop=round(cfg.hop * scale))


def _hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1 + hz / 700.0)


def fit_length(x: torch.Tensor, length: int, value: float = 0.0) -> torch.Tensor:
    """Crop or pad (with `value`) the last axis of `x` to exactly `length`."""
    if x.shape[-1] >= length:
        return x[..., :length]
    return nn.functional.pad(x, (0, length - x.shape[-1]), value=value)


class AudioFrontend(nn.Module):
    """Waveform (S,) or (B, S) at cfg.sample_rate -> normalised map (bins, frames) / (B, bins, frames).

    The waveform is zero-padded or cropped to cfg.num_samples, which a centred STFT turns into
    exactly cfg.frames columns; the time axis is still fitted to cfg.frames (padding with the
    silence value) so a config whose numbers disagree cannot change the patch grid.
    """

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        self.spectrogram = spectrogram(cfg)
        self.num_samples, self.frames = cfg.num_samples, cfg.frames
        self.norm_mean, self.norm_std = cfg.norm_mean, cfg.norm_std

    def log_map(self, wave: torch.Tensor) -> torch.Tensor:
        """The map before normalisation: float32 (..., bins, frames)."""
        wave = fit_length(wave.float(), self.num_samples)
        # STFT and log in float32 even inside an autocast region: half precision loses the quiet
        # end of the log map.
        with torch.autocast(device_type=wave.device.type, enabled=False):
            spec = self.spectrogram(wave)
        return fit_length(spec, self.frames, value=SILENCE)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() not in (1, 2):
            raise ValueError(f"expected a waveform (S,) or (B, S), got shape {tuple(wave.shape)}")
        return (self.log_map(wave) - self.norm_mean) / self.norm_std


def build_frontend(cfg: AudioConfig) -> AudioFrontend:
    """The configured front end; move it with .to(device) like any module."""
    return AudioFrontend(cfg)


def map_statistics(waves: Iterable[torch.Tensor], cfg: AudioConfig,
                   skip_padding: bool = True) -> tuple[float, float]:
    """(mean, std) of the un-normalised log map over waveforms at cfg.sample_rate: the numbers for
    cfg.norm_mean / cfg.norm_std.

    With `skip_padding`, map columns past the end of a short waveform (pure padding silence) are
    left out, so the numbers describe sound rather than how short the files happen to be.
    """
    frontend = AudioFrontend(cfg)
    total, total_sq, count = 0.0, 0.0, 0
    with torch.no_grad():
        for wave in waves:
            spec = frontend.log_map(wave).double()
            if skip_padding:
                spec = spec[..., : min(cfg.frames, 1 + len(wave) // cfg.hop)]
            total += float(spec.sum())
            total_sq += float((spec * spec).sum())
            count += spec.numel()
    if count == 0:
        raise ValueError("map_statistics needs at least one waveform")
    mean = total / count
    return mean, math.sqrt(max(0.0, total_sq / count - mean * mean))
