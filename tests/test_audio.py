"""vlsa.audio: spectrogram front ends (shapes, frequency placement, silence, batching)."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from vlsa.audio import (
    SILENCE,
    LogFreqSpectrogram,
    LogMelSpectrogram,
    build_frontend,
    log_frequency_centres,
    log_frequency_weights,
    map_statistics,
)
from vlsa.config import AudioConfig, preset_config


def settings(preset: str, frontend: str) -> AudioConfig:
    """A preset's audio numbers with either front end."""
    return dataclasses.replace(preset_config(preset).audio, frontend=frontend)


def tone(cfg: AudioConfig, hz: float, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(cfg.num_samples, dtype=torch.float64) / cfg.sample_rate
    return (amplitude * torch.sin(2 * math.pi * hz * t)).float()


def htk_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


@pytest.mark.parametrize("frontend", ["mel", "logfreq"])
@pytest.mark.parametrize("preset", ["tiny", "small", "base"])
def test_frontend_shapes(preset, frontend):
    cfg = settings(preset, frontend)
    module = build_frontend(cfg)
    batch = module(torch.randn(3, cfg.num_samples) * 0.1)
    assert batch.shape == (3, cfg.bins, cfg.frames) and batch.dtype == torch.float32
    assert module(torch.randn(cfg.num_samples)).shape == (cfg.bins, cfg.frames)
    assert module(torch.randn(2, 1000)).shape == (2, cfg.bins, cfg.frames)  # short: zero-padded
    assert module(torch.randn(2, cfg.num_samples * 2)).shape == (2, cfg.bins, cfg.frames)  # cropped


def test_logfreq_spectrogram_raw_shape():
    cfg = preset_config("base").audio
    spec = LogFreqSpectrogram(cfg)(torch.zeros(2, cfg.num_samples))
    assert spec.shape == (2, 256, 256)  # 1022-point STFT: 512 linear bins resampled to 256
    assert LogMelSpectrogram(preset_config("tiny").audio)(torch.zeros(16000)).shape[0] == 64


def test_logfreq_tone_peaks_at_its_log_bin():
    cfg = preset_config("base").audio  # the paper: 11025 Hz, 256 log bins from 20 Hz
    centres = log_frequency_centres(cfg.sample_rate, cfg.bins, cfg.fmin).numpy()
    expected = int(np.argmin(np.abs(np.log(centres) - np.log(1000.0))))
    assert expected == 178
    profile = build_frontend(cfg)(tone(cfg, 1000.0)).mean(dim=-1)
    assert int(profile.argmax()) == expected
    second = int(torch.topk(profile, 2).indices[1])
    assert abs(second - expected) == 1  # the energy stays in the neighbouring bins


def test_mel_tone_peaks_at_its_mel_bin():
    cfg = preset_config("tiny").audio  # 16 kHz, 64 HTK mel bands from 20 Hz
    centres = np.linspace(htk_mel(cfg.fmin), htk_mel(cfg.sample_rate / 2), cfg.bins + 2)[1:-1]
    expected = int(np.argmin(np.abs(centres - htk_mel(1000.0))))
    profile = build_frontend(cfg)(tone(cfg, 1000.0)).mean(dim=-1)
    assert int(profile.argmax()) == expected == 21


def test_row_frequencies_are_each_rows_centre():
    """The app's frequency axis: a mel row's centre is where its filter peaks, a log-frequency
    row's is its geometric centre. Catches the axis drawn linear or for the other front end."""
    import torchaudio

    from vlsa.audio import log_frequency_centres, row_frequencies

    mel = AudioConfig(frontend="mel", sample_rate=16000, n_fft=1024, hop=500, bins=64)
    banks = torchaudio.functional.melscale_fbanks(513, mel.fmin, 8000.0, 64, 16000)  # (freqs, bins)
    peaks = torch.linspace(0, 8000, 513)[banks.argmax(0)].double()
    assert torch.allclose(row_frequencies(mel), peaks, atol=8000 / 512)  # within one STFT bin
    log = AudioConfig()
    assert torch.equal(row_frequencies(log), log_frequency_centres(log.sample_rate, log.bins, log.fmin))


@pytest.mark.parametrize("frontend", ["mel", "logfreq"])
def test_frontend_silence_is_finite(frontend):
    cfg = settings("tiny", frontend)
    out = build_frontend(cfg)(torch.zeros(2, cfg.num_samples))
    assert torch.isfinite(out).all()
    assert torch.allclose(out, torch.full_like(out, (SILENCE - cfg.norm_mean) / cfg.norm_std), atol=1e-4)


@pytest.mark.parametrize("frontend", ["mel", "logfreq"])
def test_frontend_batch_equals_per_item(frontend):
    cfg = settings("tiny", frontend)
    module = build_frontend(cfg)
    waves = torch.randn(4, cfg.num_samples) * torch.tensor([0.01, 0.1, 0.5, 1.0])[:, None]
    batch = module(waves)
    for i in range(4):
        assert torch.allclose(batch[i], module(waves[i]), atol=1e-4)


def test_frontend_pads_short_waves_with_silence():
    cfg = preset_config("tiny").audio
    module = build_frontend(cfg)
    short = tone(cfg, 440.0)[:8000]
    padded = torch.cat([short, torch.zeros(cfg.num_samples - 8000)])
    assert torch.allclose(module(short), module(padded))
    quiet = (SILENCE - cfg.norm_mean) / cfg.norm_std
    assert torch.allclose(module(short)[:, -10:], torch.full((cfg.bins, 10), quiet), atol=1e-3)


def test_frontend_normalises_with_config_statistics():
    cfg = preset_config("tiny").audio
    shifted = dataclasses.replace(cfg, norm_mean=1.0, norm_std=2.0)
    wave = tone(cfg, 300.0)
    raw = build_frontend(dataclasses.replace(cfg, norm_mean=0.0, norm_std=1.0))(wave)
    assert torch.allclose(build_frontend(shifted)(wave), (raw - 1.0) / 2.0, atol=1e-5)


def test_log_frequency_weights_rows_sum_to_one_and_never_empty():
    weights = log_frequency_weights(512, 11025, 256, 20.0)
    assert weights.shape == (256, 512)
    assert torch.allclose(weights.sum(dim=1), torch.ones(256))
    assert ((weights > 0).sum(dim=1) >= 1).all()
    # Below ~500 Hz log bins are denser than the 10.8 Hz STFT bins: plain linear interpolation.
    assert ((weights[:50] > 0).sum(dim=1) <= 2).all()
    centres = log_frequency_centres(11025, 256, 20.0)
    assert centres[0] == pytest.approx(20.0) and centres[-1] == pytest.approx(5512.5)


def test_map_statistics_of_silence():
    cfg = preset_config("tiny").audio
    mean, std = map_statistics([torch.zeros(cfg.num_samples)], cfg)
    assert mean == pytest.approx(SILENCE, abs=1e-4) and std == pytest.approx(0.0, abs=1e-3)
    loud = map_statistics([tone(cfg, 440.0)], cfg)
    assert loud[0] > mean and loud[1] > 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("frontend", ["mel", "logfreq"])
def test_frontend_runs_on_cuda(frontend):
    cfg = settings("base", frontend)
    module = build_frontend(cfg)
    waves = torch.randn(2, cfg.num_samples) * 0.2
    on_gpu = module.to("cuda")(waves.cuda())
    assert on_gpu.device.type == "cuda"
    with torch.autocast("cuda", dtype=torch.bfloat16):
        under_autocast = module(waves.cuda())
    assert under_autocast.dtype == torch.float32
    assert torch.allclose(on_gpu.cpu(), build_frontend(cfg)(waves), atol=1e-3)
