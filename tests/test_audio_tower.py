"""Pretrained sound knowledge (vlsa/audio_tower.py): the front end against librosa, the pinned
checkpoint, the frozen audio tower and its adapter, the audio teacher, and the input plumbing.

Most tests run a small trunk written into a fake package (conftest.py's small_sound_model: fast,
no 25 MB read); the rest read the real aisfx checkpoint that `make setup` installs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio
from mediagen import SHARED_MEDIA, make_audio

from vlsa import VLSA, audio_tower
from vlsa.audio import fit_length
from vlsa.audio_tower import (
    PRETRAINED,
    TOWER_WAVE,
    SoundEncoder,
    TowerSpectrogram,
    checkpoint_file,
)
from vlsa.batch import collate, make_sample
from vlsa.media import Clip, read_audio

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "aisfx_logmel.npz"
RATE = 44100


def tone(seconds: float, hz: float, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(round(seconds * RATE)) / RATE
    return amplitude * torch.sin(2 * torch.pi * hz * t)


def sound_batch(model: VLSA, waves: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """A training batch of sound-only clips with captions, through the trainer's make_sample."""
    texts = ["a dog barks", "a bell rings", "glass breaks", "a car engine"]
    samples = []
    for wave, text in zip(waves, texts, strict=False):
        low = torchaudio.functional.resample(wave, RATE, model.config.audio.sample_rate)  # the model-rate decode
        clip = Clip(frames=None, wave=fit_length(low, model.config.audio.num_samples), has_audio=True,
                    has_video=False, tower_wave=wave)
        samples.append(make_sample(clip, text, model.config, model.frontend, model.tokenizer))
    return collate(samples)


def test_tower_spectrogram_matches_librosa():
    """The torch front end gives aisfx's librosa log-mel map (tests/fixtures/make_aisfx_logmel.py),
    time first. Catches mel filters not normalised to sum 1, a missing peak normalisation, a
    reflect-padded or uncentred STFT, and the map handed over (mels, time) as aisfx's own
    librosa path does."""
    data = np.load(FIXTURE)
    wave = torch.from_numpy(data["pcm"].astype(np.float32) / 32768)[None]
    maps = TowerSpectrogram(PRETRAINED["aisfx"])(wave)[0]
    expected = torch.from_numpy(data["logmel"]).T  # librosa: (mels, frames)
    assert maps.shape == expected.shape == (9, 96)
    torch.testing.assert_close(maps, expected, atol=1.5e-4, rtol=0)


def test_checkpoint_file_refuses_a_tampered_checkpoint(small_sound_model, tmp_path):
    """A checkpoint whose bytes are not the pinned ones is a one-line ValueError, and so is a
    missing package (saying what to install). Catches a loader that skips the hash check."""
    file = checkpoint_file("small")
    data = bytearray(file.read_bytes())
    data[-100] ^= 1
    file.write_bytes(bytes(data))
    checkpoint_file.cache_clear()
    with pytest.raises(ValueError, match="not the pinned file") as caught:
        audio_tower.load_trunk("small")
    assert "\n" not in str(caught.value)
    PRETRAINED["small"] = dataclasses.replace(PRETRAINED["small"], package="no_such_aisfx", version="0.1.2")
    with pytest.raises(ValueError, match="pip install --no-deps no-such-aisfx==0.1.2"):
        checkpoint_file("small")


def test_load_trunk_reads_the_embedding_net_weights(small_sound_model):
    """The trunk is the checkpoint's `embedding_net.*` (BatchNorm statistics included), read with
    weights_only=True past the file's numpy scalars. Catches the safe-globals list dropped (the
    load is refused) or a trunk left at its own initialisation."""
    trunk = audio_tower.load_trunk("small")
    x = torch.rand(2, 100, 96)
    torch.testing.assert_close(trunk(x), small_sound_model(x))
    assert not trunk.training and not any(p.requires_grad for p in trunk.parameters())


def test_audio_tower_trains_only_its_adapter_and_stays_out_of_the_checkpoint(small_sound_model, tmp_path):
    """A training step with audio.tower moves the adapter, never the tower, whose weights are not
    in the state dict; the checkpoint reloads to the same audio embeddings. Catches a tower left
    trainable, saved into every checkpoint, or re-initialised by the model's initialisation."""
    model = VLSA.from_preset("tiny", **{"audio.tower": "small", "loss.masked_modelling": False})
    torch.manual_seed(1)
    waves = [tone(2.0, hz) + 0.01 * torch.randn(2 * RATE) for hz in (220.0, 880.0, 3000.0, 9000.0)]
    batch = sound_batch(model, waves)
    assert batch[TOWER_WAVE].shape == (4, 2 * RATE)
    model.train()
    model(batch)["loss"].backward()
    trunk = model.audio_tower.trunk
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.audio_adapter.parameters())
    assert all(p.grad is None for p in trunk.parameters()) and not trunk.training
    assert model.audio_embed.weight.grad is None  # the shared audio path makes no audio embedding now
    assert not any(k.startswith("audio_tower.") for k in model.state_dict())
    model.eval()
    model.save_pretrained(tmp_path / "ckpt")
    again = VLSA.from_pretrained(tmp_path / "ckpt")
    torch.testing.assert_close(again.embed_audio(waves[:2]), model.embed_audio(waves[:2]))
    torch.testing.assert_close(trunk.state_dict(), small_sound_model.state_dict())


def test_audio_distillation_trains_the_shared_audio_path_only(small_sound_model):
    """With audio.teacher the forward returns `audio_distill`; its gradient reaches the shared
    audio path (the spectrogram patch embedding) and never the teacher. Catches a term computed
    but detached, or one computed on the teacher's own vectors."""
    model = VLSA.from_preset("tiny", **{"audio.teacher": "small", "loss.masked_modelling": False})
    torch.manual_seed(1)
    batch = sound_batch(model, [tone(2.0, hz) for hz in (220.0, 880.0, 3000.0, 9000.0)])
    model.train()
    losses = model(batch)
    assert losses["audio_distill"] > 0
    losses["audio_distill"].backward()
    assert model.audio_embed.weight.grad is not None and model.audio_embed.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.audio_teacher.trunk.parameters())
    assert not any(k.startswith("audio_teacher.") for k in model.state_dict())


def test_audio_tower_config_is_checked_and_absent_until_set():
    """Bad tower settings are one-line errors; the default writes neither key (so the shipped
    checkpoints keep their config files and fingerprints). Catches the keys left out of
    LATER_SETTINGS, or a teacher accepted beside a tower."""
    from vlsa.config import preset_config

    assert "tower" not in preset_config("tiny").to_dict()["audio"]
    assert preset_config("tiny", **{"audio.tower": "aisfx"}).to_dict()["audio"]["tower"] == "aisfx"
    for overrides, reason in [({"audio.tower": "vggish"}, "audio.tower must be shared or one of aisfx"),
                              ({"audio.tower": "aisfx", "audio.teacher": "aisfx"}, "needs audio.tower=shared"),
                              ({"audio.teacher": "aisfx", "loss.matching": "none"}, "set it")]:
        with pytest.raises(ValueError, match=reason):
            preset_config("tiny", **overrides)


def test_the_sound_encoder_is_read_only_when_sound_is_embedded(small_sound_model, tmp_path, monkeypatch):
    """Building a model with an audio tower, loading its checkpoint, and embedding video and
    words never read the tower's checkpoint; the first sound does, once. Catches the encoder
    loaded with the model (indexing pictures, text search would pay for it)."""
    reads = []
    load = audio_tower.load_trunk
    monkeypatch.setattr(audio_tower, "load_trunk", lambda name: reads.append(name) or load(name))
    VLSA.from_preset("tiny", **{"audio.tower": "small"}).save_pretrained(tmp_path / "ckpt")
    model = VLSA.from_pretrained(tmp_path / "ckpt")
    model.embed_video([torch.zeros(4, 3, 64, 64, dtype=torch.uint8)])
    model.embed_text(["a dog barks"])
    assert reads == []
    model.embed_audio([tone(1.0, 440.0), tone(1.0, 880.0)])
    model.embed_audio([tone(1.0, 440.0)])
    assert reads == ["small"]


def test_a_tower_models_catalogued_sound_has_its_api_vector(tmp_path):
    """With an audio tower the catalog decodes its windows at the tower's 44.1 kHz (through
    vlsa.audio_tower.input_rate), so the stored vector, the search service's query vector and
    the API's embed_audio agree, on a 12 kHz tone that a 16 kHz decode would lose. Catches a
    route that decodes at the model's spectrogram rate or prepares the tower's input otherwise."""
    from catalog.indexer import Indexer
    from catalog.service import SearchService
    from catalog.store import Catalog

    lib = tmp_path / "lib"
    lib.mkdir()
    make_audio(lib / "high.wav", 2.0, sample_rate=RATE, tone_hz=12000.0)
    torch.manual_seed(0)
    model = VLSA.from_preset("tiny", **{"audio.tower": "aisfx"}).eval()  # the real trunk tells the tones apart
    with Catalog(tmp_path / "c.db") as catalog:
        Indexer(catalog, model).run([str(lib)])
    service = SearchService(Catalog(tmp_path / "c.db", read_only=True), model)
    (media,) = service.catalog.media(status="ok")
    (window,) = service.catalog.windows(media.id)
    stored = service.catalog.embedding(window.id, "audio")
    api = model.embed_audio([str(lib / "high.wav")])[0].numpy()
    np.testing.assert_allclose(api, stored, atol=1e-5)
    np.testing.assert_allclose(service.embed_audio(str(lib / "high.wav"))[0], stored, atol=1e-5)
    low = audio_tower.tower_input(read_audio(lib / "high.wav", sample_rate=16000), 16000, model.config)
    assert np.abs(model.embed_audio([low])[0].numpy() - stored).max() > 1e-3  # the tone lost: another vector


@pytest.fixture(scope="module")
def real_sound() -> torch.Tensor:
    """1 s of a real recording at 44.1 kHz (a door, from the shared test media)."""
    rows = [json.loads(line) for line in (SHARED_MEDIA / "sounds" / "labels.jsonl").read_text().splitlines()]
    path = SHARED_MEDIA / next(r["path"] for r in rows if "door" in r["name"])
    return read_audio(path, 0.0, 1.0, RATE)


def test_real_aisfx_embedding_is_deterministic_and_pools_its_blocks(real_sound):
    """The pinned aisfx encoder embeds a real sound the same way twice; a 1-s sound embeds the
    same in a 2-s and in a 5-s clip (the padding's silent blocks stay out of the mean); a sound
    shorter than the trunk's 8 frames still embeds; and a sound heard only in a 5-s clip's later
    blocks embeds as itself. Catches silent blocks averaged in, only the first block used, and
    the crash on clips under 8 frames."""
    encoder = SoundEncoder("aisfx")
    pad = torch.nn.functional.pad
    two = encoder(pad(real_sound, (0, RATE))[None])
    torch.testing.assert_close(encoder(pad(real_sound, (0, RATE))[None]), two, atol=0, rtol=0)
    five = encoder(pad(real_sound, (0, 4 * RATE))[None])
    torch.testing.assert_close(five, two, atol=1e-5, rtol=0)
    late = encoder(pad(real_sound, (3 * RATE, RATE))[None])  # 5 s, the door 3 s in: only in later blocks
    assert float(late @ two.T) > 0.8  # the silent first block alone embeds at 0.44 to it
    tiny = encoder(real_sound[None, :4000])  # 4 frames
    assert torch.isfinite(tiny).all() and abs(float(tiny.norm()) - 1) < 1e-5
