"""Checkpoint folders: `config.json` (the resolved VLSAConfig) + `model.safetensors`.

Hugging Face conventions, so `save_pretrained` / `from_pretrained` read like theirs. The config
carries everything needed to rebuild the network; training state (optimizer, step, RNG) lives in
the trainer's own files beside it, never in the weights file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from vlsa.config import VLSAConfig
from vlsa.durable import fsync_path, replace_durably

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# The small trained checkpoints that ship inside the package (package data, see pyproject.toml).
# SHIPPED, trained on the real-media corpus and the synthetic set, is what `vlsa demo` indexes with
# and what `vlsa index` / `vlsa search` / `vlsa app` fall back to; SYNTHETIC, trained on the
# synthetic set alone, is where it started and the teacher that kept its heatmaps (docs/TRAINING.md).
SHIPPED = Path(__file__).resolve().parent / "assets" / "real"
SYNTHETIC = SHIPPED.parent / "synthetic"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line and names the folder."""


def save_checkpoint(state_dict: dict[str, torch.Tensor], config: VLSAConfig, path: str | os.PathLike,
                    extra: dict | None = None) -> Path:
    """Write the folder atomically enough that a killed process or a power cut never leaves a half
    weights file under the final name (write to a temporary name, flush, then rename)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    tmp = path / (WEIGHTS_NAME + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    replace_durably(tmp, path / WEIGHTS_NAME)
    payload = {**config.to_dict(), **({"extra": extra} if extra else {})}
    tmp = path / (CONFIG_NAME + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    replace_durably(tmp, path / CONFIG_NAME)
    return path


def shipped_checkpoint() -> Path | None:
    """The folder of the checkpoint shipped in the package, or None if this installation lacks one."""
    if (SHIPPED / CONFIG_NAME).is_file() and (SHIPPED / WEIGHTS_NAME).is_file():
        return SHIPPED
    return None


def _read_config_json(path: Path) -> dict:
    config_file = path / CONFIG_NAME
    if not config_file.is_file():
        raise CheckpointError(f"{path}: not a VLSA checkpoint (no {CONFIG_NAME})")
    try:
        data = json.loads(config_file.read_text())
    except ValueError as exc:  # not UTF-8, not JSON (empty, truncated, random bytes)
        raise CheckpointError(f"{path}: bad {CONFIG_NAME}: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: bad {CONFIG_NAME}: not a JSON object")
    return data


def load_config(path: str | os.PathLike) -> VLSAConfig:
    path = Path(path)
    data = _read_config_json(path)
    data.pop("extra", None)
    try:
        return VLSAConfig.from_dict(data)
    except (ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path}: bad {CONFIG_NAME}: {exc}") from None


def load_extra(path: str | os.PathLike) -> dict:
    """What `save_checkpoint(extra=...)` recorded beside the config (the trainer: the step)."""
    extra = _read_config_json(Path(path)).get("extra", {})
    if not isinstance(extra, dict):
        raise CheckpointError(f"{path}: bad {CONFIG_NAME}: 'extra' is not an object")
    return extra


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    weights = Path(path) / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{path}: no {WEIGHTS_NAME}")
    try:
        return load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: unreadable {WEIGHTS_NAME} ({exc})") from None


def check_fits(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: str | os.PathLike,
               fresh: tuple[str, ...] = ()) -> None:
    """Raise CheckpointError naming the first key that is missing, unexpected or misshapen. Keys
    starting with one of `fresh` are not checked: they keep the model's own initialisation."""
    expected = _without(model.state_dict(), fresh)
    state_dict = _without(state_dict, fresh)
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


def load_into(model: torch.nn.Module, path: str | os.PathLike, fresh: tuple[str, ...] = ()) -> torch.nn.Module:
    """Load a checkpoint folder's weights into `model`, refusing weights that do not fit it.

    `fresh`: name prefixes of weights to leave at the model's own initialisation (say
    `("token_embed", "text_bias")` when the new config reads another tokenizer); a prefix that
    names no weight of the model is an error, so a typo cannot silently load everything."""
    fresh = tuple(fresh)
    names = model.state_dict().keys()
    for prefix in fresh:
        if not any(k.startswith(prefix) for k in names):
            raise CheckpointError(f"{prefix!r} names no weight of the model (e.g. token_embed, text_adapter)")
    state = load_weights(path)
    check_fits(model, state, path, fresh)
    model.load_state_dict(_without(state, fresh), strict=not fresh)
    return model


def _without(state: dict[str, torch.Tensor], prefixes: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not (prefixes and k.startswith(prefixes))}


def fingerprint(path: str | os.PathLike) -> str:
    """A short hash of the weights and config, so a catalog knows which model made its vectors."""
    h = hashlib.sha256()
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        with open(Path(path) / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


# --- a folder written as one unit -------------------------------------------------------------

PARTIAL_SUFFIX = ".partial"  # the folder being written; never read
PREVIOUS_SUFFIX = ".previous"  # the folder being replaced, kept until the new one is in place


@contextlib.contextmanager
def writing_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Write the folder `path` as one unit: the block writes into an empty sibling folder, which
    then takes `path`'s place by two renames (`path` -> `path.previous`, the new one -> `path`);
    the previous folder is removed only once the new one is in place. A process killed at any
    moment leaves either the previous folder or the new one, whole (`recover_folder` finishes an
    interrupted swap), never a mix of files from two saves."""
    path = Path(path)
    recover_folder(path)
    partial = path.with_name(path.name + PARTIAL_SUFFIX)
    shutil.rmtree(partial, ignore_errors=True)  # a save killed earlier
    partial.mkdir(parents=True)
    try:
        yield partial
        _sync(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    previous = path.with_name(path.name + PREVIOUS_SUFFIX)
    if path.exists():
        os.replace(path, previous)
    os.replace(partial, path)
    fsync_path(path.parent)
    shutil.rmtree(previous, ignore_errors=True)


def recover_folder(path: str | os.PathLike) -> None:
    """After a writer killed between `writing_folder`'s two renames, `path` is missing and its
    previous version waits under `path.previous`: put it back. Once `path` exists again, a
    leftover previous version is stale and goes."""
    path = Path(path)
    previous = path.with_name(path.name + PREVIOUS_SUFFIX)
    if previous.is_dir() and not path.exists():
        os.replace(previous, path)
    elif previous.is_dir():
        shutil.rmtree(previous, ignore_errors=True)


def _sync(folder: Path) -> None:
    """Flush the folder's files to disk before it is renamed into place, so that after a power
    cut too the name points at complete files."""
    for file in folder.iterdir():
        fsync_path(file)
    fsync_path(folder)
