"""Which model a catalog is built and searched with: one place that loads it.

The catalog records the checkpoint's fingerprint (a hash of config and weights); searching with
any other model would compare vectors from two different spaces, so it is refused.
"""

from __future__ import annotations

import os

import torch

from catalog.store import Catalog, CatalogError, CheckpointMismatch
from vlsa.api import VLSA
from vlsa.checkpoint import shipped_checkpoint

SEED = 0  # an untrained preset is drawn from this seed, so the same command gives the same model


def default_checkpoint() -> str | None:
    """The checkpoint used when none is named: the one shipped inside the package (vlsa/assets/real),
    or None if this installation lacks it."""
    path = shipped_checkpoint()
    return None if path is None else str(path)


def load_model(checkpoint: str | os.PathLike | None = None, preset: str | None = None) -> tuple[VLSA, str | None]:
    """(model, absolute checkpoint folder) from a checkpoint, else the default checkpoint; or an
    untrained `preset` drawn from SEED (checkpoint None), for tests and benchmarks."""
    if checkpoint is not None and preset is not None:
        raise ValueError("give a checkpoint or a preset, not both")
    if preset is not None:
        return seeded_preset(preset), None
    checkpoint = checkpoint if checkpoint is not None else default_checkpoint()
    if checkpoint is None:
        raise CatalogError("no checkpoint: pass --checkpoint PATH (this installation ships none), or --preset "
                           "tiny for an untrained model, good only for trying the commands")
    path = os.path.abspath(checkpoint)
    return VLSA.from_pretrained(path), path


def seeded_preset(preset: str) -> VLSA:
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        torch.manual_seed(SEED)
        return VLSA.from_preset(preset).eval()


def model_for_catalog(catalog: Catalog, checkpoint: str | os.PathLike | None = None) -> VLSA:
    """The model that made the catalog's vectors: `checkpoint` if given, else the one it records.

    Raises CheckpointMismatch if the model's fingerprint is not the catalog's.
    """
    settings = catalog.settings
    if settings is None:
        raise CatalogError(f"{catalog.path}: nothing indexed yet (run `vlsa index`)")
    if checkpoint is not None:
        model, _ = load_model(checkpoint)
    elif settings.checkpoint is not None:
        if not os.path.isdir(settings.checkpoint):
            raise CatalogError(f"{catalog.path} was built with {settings.checkpoint}, which is gone; "
                               "pass --checkpoint with a copy of it")
        model, _ = load_model(settings.checkpoint)
    else:
        model = seeded_preset(settings.preset)
    if model.fingerprint() != settings.fingerprint:
        made = settings.checkpoint or f"an untrained {settings.preset} model"
        raise CheckpointMismatch(f"{catalog.path} was built with {made} (fingerprint {settings.fingerprint}); "
                                 f"this model's fingerprint is {model.fingerprint()}")
    return model
