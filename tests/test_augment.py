"""Sound augmentation in training (train/augment.py, `vlsa train --audio-augment`)."""

import io
import json
import math
import tarfile

import pytest
import torch
from mediagen import make_audio

from synth import generate
from train.augment import GAIN_DB, SPEEDS, augment_clip, perturb_sound
from train.shards import write_shards
from train.trainer import training_dataset
from vlsa.config import preset_config
from vlsa.media import Clip

RATE = 16000


def _burst(seconds: float = 0.5, hz: float = 440.0, total: float = 2.0) -> torch.Tensor:
    """A tone of `seconds` at half scale, then silence, `total` seconds in all."""
    t = torch.arange(round(seconds * RATE)) / RATE
    return torch.cat([0.5 * torch.sin(2 * math.pi * hz * t), torch.zeros(round((total - seconds) * RATE))])


def _pitch(wave: torch.Tensor) -> float:
    spectrum = torch.fft.rfft(wave).abs()
    return spectrum.argmax().item() * RATE / len(wave)


def _sounding_seconds(wave: torch.Tensor) -> float:
    return (wave.abs() > 1e-3).nonzero().max().item() / RATE


def test_perturb_sound_plays_faster_or_slower_and_louder_or_quieter_within_the_range():
    """Each draw is a speed of SPEEDS (the tone's pitch rises by it and its length shrinks by it:
    a change of speed, not a pitch shift alone) and a gain within +-GAIN_DB; over many draws both
    directions of each and the unchanged speed occur; the length stays; one generator seed gives
    one result. Catches a pitch-only shift, a speed outside the range or always the same, the
    gain left out or unbounded, and output of another length (which would change the patch grid)."""
    wave = _burst()
    speeds, gains = [], []
    for seed in range(60):
        out = perturb_sound(wave, torch.Generator().manual_seed(seed))
        assert out.shape == wave.shape
        assert torch.equal(out, perturb_sound(wave, torch.Generator().manual_seed(seed)))
        speed = _pitch(out) / 440.0
        assert min(SPEEDS) - 0.01 <= speed <= max(SPEEDS) + 0.01
        assert _sounding_seconds(out) == pytest.approx(0.5 / speed, rel=0.03)
        tone = out[: round(0.4 / speed * RATE)]  # inside the burst, clear of the resampler's edge
        gain_db = 20 * math.log10(tone.abs().max().item() / 0.5)
        assert -GAIN_DB - 0.2 <= gain_db <= GAIN_DB + 0.2
        speeds.append(speed)
        gains.append(gain_db)
    assert min(speeds) < 0.9 and max(speeds) > 1.1 and any(abs(s - 1) < 1e-3 for s in speeds)
    assert min(gains) < -3 and max(gains) > 3


def test_augment_clip_changes_only_sounds_without_pictures():
    """A sound-only clip is perturbed; a clip with frames (its sound belongs to its picture) and a
    clip without sound come back untouched. Catches the synthetic clips' tones, whose pitch names
    their objects, being perturbed too."""
    wave = _burst()
    g = torch.Generator().manual_seed(1)  # seed 1 draws a speed other than 1
    sound = Clip(frames=None, wave=wave, has_audio=True, has_video=False)
    assert not torch.equal(augment_clip(sound, g).wave, wave)
    pictured = Clip(frames=torch.zeros(4, 3, 8, 8, dtype=torch.uint8), wave=wave, has_audio=True, has_video=True)
    silent = Clip(frames=None, wave=torch.zeros_like(wave), has_audio=False, has_video=False)
    for clip in (pictured, silent):
        assert augment_clip(clip, torch.Generator().manual_seed(1)) is clip


@pytest.fixture(scope="module")
def mixed_manifest(tmp_path_factory):
    """Two synthetic clips (picture and sound) and two sound-only rows."""
    root = tmp_path_factory.mktemp("augment")
    manifest = generate(root, n=2, seed=4, split="train")
    with open(manifest, "a") as f:
        for hz in (330.0, 660.0):
            make_audio(root / f"tone{int(hz)}.wav", 2.0, tone_hz=hz)
            f.write(json.dumps({"audio": f"tone{int(hz)}.wav", "text": "a tone", "split": "train"}) + "\n")
    return manifest


def _webdataset(manifest, folder):
    """The manifest's rows as one webdataset shard: KEY.<media> and KEY.txt per row."""
    folder.mkdir()
    with tarfile.open(folder / "00000.tar", "w") as tar:
        for i, line in enumerate(manifest.read_text().splitlines()):
            row = json.loads(line)
            media = manifest.parent / (row.get("video") or row["audio"])
            tar.add(media, f"{i:08d}{media.suffix}")
            caption = tarfile.TarInfo(f"{i:08d}.txt")
            caption.size = len(row["text"].encode())
            tar.addfile(caption, io.BytesIO(row["text"].encode()))
    return folder


@pytest.mark.parametrize("source", ["manifest", "shards", "webdataset"])
def test_training_datasets_perturb_only_sound_rows_and_the_same_way_after_a_resume(mixed_manifest, source, tmp_path):
    """`training_dataset(..., augment=True)`, from a manifest, shards or a webdataset folder,
    changes the spectrogram of the sound-only rows and of no clip with a picture; a second dataset
    of the same seed (a resumed run) gives the same samples, another epoch other ones. Catches the flag not
    reaching a dataset kind, augmentation of the synthetic clips, and draws that are not the
    sample's own (a resume would train on other samples)."""
    cfg = preset_config("tiny")
    path = mixed_manifest
    if source == "shards":
        write_shards(mixed_manifest, tmp_path / "shards", cfg)
        path = tmp_path / "shards"
    elif source == "webdataset":
        path = _webdataset(mixed_manifest, tmp_path / "tars")
    plain = training_dataset(str(path), cfg, seed=7)
    augmented = training_dataset(str(path), cfg, seed=7, augment=True)
    resumed = training_dataset(str(path), cfg, seed=7, augment=True)
    assert len(plain) == len(augmented) == 4
    sound_rows = 0
    for i in range(4):
        a, b = plain[i], augmented[i]
        assert torch.equal(b["audio"], resumed[i]["audio"])
        if bool(a["has_video"]):
            assert torch.equal(a["audio"], b["audio"]) and torch.equal(a["video"], b["video"])
        else:
            sound_rows += 1
            assert not torch.equal(a["audio"], b["audio"])
            resumed.epoch = 1
            assert not torch.equal(b["audio"], resumed[i]["audio"])
            resumed.epoch = 0
    assert sound_rows == 2

