"""save_pretrained / from_pretrained: bit-exact round trips, one-line refusals."""

import json

import pytest
import torch

from vlsa import VLSA
from vlsa.checkpoint import CheckpointError


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    model = VLSA.from_preset("tiny")
    with torch.no_grad():  # move away from the initialisation so a fresh model would differ
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model.save_pretrained(tmp_path / "ckpt")
    loaded = VLSA.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == model.config
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert loaded.fingerprint() == model.fingerprint()
    assert VLSA.from_preset("tiny").fingerprint() != model.fingerprint()


def test_checkpoint_config_that_does_not_fit_is_refused(tmp_path):
    VLSA.from_preset("tiny").save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config["encoder"]["width"] = 64
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as info:
        VLSA.from_pretrained(tmp_path / "ckpt")
    message = str(info.value)
    assert "\n" not in message and "do not fit" in message and "ckpt" in message


def test_checkpoint_missing_or_corrupt_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not a VLSA checkpoint"):
        VLSA.from_pretrained(tmp_path)
    VLSA.from_preset("tiny").save_pretrained(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="unreadable"):
        VLSA.from_pretrained(tmp_path / "ckpt")


def test_checkpoint_unknown_config_key_is_refused(tmp_path):
    VLSA.from_preset("tiny").save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    config["video"]["fps_typo"] = 3
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="fps_typo"):
        VLSA.from_pretrained(tmp_path / "ckpt")
