"""Checkpoint folders: `config.json` (the resolved VLSAConfig) + `model.safetensors`.

Hugging Face conventions, so `save_pretrained` / `from_pretrained` read like theirs. The config
carries everything needed to rebuild the network; training state (optimizer, step, RNG) lives in
the trainer's own files beside it, never in the weights file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from vlsa.config import VLSAConfig

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# The small trained checkpoint that ships inside the package (package data, see pyproject.toml):
# `vlsa demo` indexes with it, and `vlsa index` / `vlsa search` fall back to it.
SHIPPED = Path(__file__).resolve().parent / "assets" / "demo"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line and names the folder."""


def save_checkpoint(state_dict: dict[str, torch.Tensor], config: VLSAConfig, path: str | os.PathLike,
                    extra: dict | None = None) -> Path:
    """Write the folder atomically enough that a killed process never leaves a half weights file
    under the final name (write to a temporary name, then rename)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    tmp = path / (WEIGHTS_NAME + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, path / WEIGHTS_NAME)
    payload = {**config.to_dict(), **({"extra": extra} if extra else {})}
    tmp = path / (CONFIG_NAME + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path / CONFIG_NAME)
    return path


def shipped_checkpoint() -> Path | None:
    """The folder of the checkpoint shipped in the package, or None if this installation lacks one."""
    if (SHIPPED / CONFIG_NAME).is_file() and (SHIPPED / WEIGHTS_NAME).is_file():
        return SHIPPED
    return None


def load_config(path: str | os.PathLike) -> VLSAConfig:
    path = Path(path)
    config_file = path / CONFIG_NAME
    if not config_file.is_file():
        raise CheckpointError(f"{path}: not a VLSA checkpoint (no {CONFIG_NAME})")
    try:
        data = json.loads(config_file.read_text())
        data.pop("extra", None)
        return VLSAConfig.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: bad {CONFIG_NAME}: {exc}") from None


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    weights = Path(path) / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{path}: no {WEIGHTS_NAME}")
    try:
        return load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: unreadable {WEIGHTS_NAME} ({exc})") from None


def check_fits(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Raise CheckpointError naming the first key that is missing, unexpected or misshapen."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing:
        raise CheckpointError(f"{path}: weights do not fit the config: missing {missing[0]}"
                              f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''}")
    if unexpected:
        raise CheckpointError(f"{path}: weights do not fit the config: unexpected {unexpected[0]}")
    for key, value in expected.items():
        if value.shape != state_dict[key].shape:
            raise CheckpointError(f"{path}: weights do not fit the config: {key} is "
                                  f"{tuple(state_dict[key].shape)} in the file, {tuple(value.shape)} by the config")


def load_into(model: torch.nn.Module, path: str | os.PathLike) -> torch.nn.Module:
    """Load a checkpoint folder's weights into `model`, refusing weights that do not fit it."""
    state = load_weights(path)
    check_fits(model, state, path)
    model.load_state_dict(state)
    return model


def fingerprint(path: str | os.PathLike) -> str:
    """A short hash of the weights and config, so a catalog knows which model made its vectors."""
    h = hashlib.sha256()
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        with open(Path(path) / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]
