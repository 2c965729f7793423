"""Fit a pretrained audio tower into a trained checkpoint's joint space, everything else frozen.

`vlsa fit-tower --init C --manifest M --out RUN` gives checkpoint C an audio tower (audio.tower,
vlsa/audio_tower.py) and trains only what lies between the frozen pretrained towers and the joint
space: the audio tower's adapter, the audio pool norm and projection, and (FitSettings.text, on
by default) the text tower's adapter and projection. C's picture side stays exactly as it is.
By default the tower adds to C's own pooled audio (audio.tower_residual): the fit starts from C
exactly and keeps what C's audio path heard, the demo's synthetic tones among it, which the
tower hears less apart. Sounds are matched with their captions and with the pictures of the rows
that have both, and pictures with their captions (so the fitted words stay on the frozen
pictures), all by the training's own symmetric InfoNCE (vlsa.losses.contrastive_loss); the words
of pictures are held near where C had them (FitSettings.anchor), and the text pool norm keeps
C's statistics, since C's picture maps compare each patch with the words through both. The text
side is fitted because the words are where a trained checkpoint's knowledge is thinnest:
MiniLM tells "a dog barks" from "a woman speaks", the stage-4 adapter had pressed them to a
cosine of 0.6 (docs/REAL_MEDIA.md).

Because nothing before the adapter learns, each row's tower vector and picture embedding are
computed once and kept in RUN/features (in chunks, so a killed run resumes where it stopped), and
the fit then runs many epochs over them in minutes on a CPU. End-to-end training with the tower
(`vlsa train --set audio.tower=aisfx`) sees each sound about once in half an hour on two cores,
too few times to learn the words of a sound heard in a handful of files (docs/REAL_MEDIA.md).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from train.data import Row
from train.protocols import embed_clips
from vlsa.api import VLSA
from vlsa.durable import replace_durably
from vlsa.losses import contrastive_loss
from vlsa.vectors import SHARED_AUDIO, TOWER_VECTORS

CHUNK_ROWS = 512  # rows embedded per features file: what a killed run loses at most
AUDIO_SIDE = ("audio_adapter.", "proj.audio.", "pool_norm.audio.")  # what a fit trains; all else is frozen
# and with FitSettings.text; the text pool norm keeps the checkpoint's statistics, which the
# picture maps compare each patch with the words through (FitSettings.anchor)
TEXT_SIDE = ("text_adapter.", "proj.text.")


@dataclass
class Features:
    """Per manifest row: the frozen tower's unit vector (zeros without sound), the checkpoint's
    picture embedding (zeros without a picture) and, with audio.tower_residual, the shared
    encoder's pooled audio (VLSAModel.shared_audio) that the adapter adds to."""

    tower: torch.Tensor  # (N, width)
    video: torch.Tensor  # (N, E)
    has_audio: torch.Tensor  # (N,) bool
    has_video: torch.Tensor  # (N,) bool
    shared: torch.Tensor | None = None  # (N, D)


def features_key(tower: str, checkpoint: str, rows: list[Row], residual: bool = False) -> str:
    """What a features folder was computed from: the rows' media (path, size and modification
    time: a file rendered again is another file) and times, the tower, the checkpoint's
    fingerprint (its picture embeddings and shared audio path) and whether the shared path's
    audio is kept (audio.tower_residual); another key never reuses a chunk."""
    h = hashlib.sha256(f"{tower} {checkpoint}{' residual' if residual else ''}".encode())
    for r in rows:
        h.update(json.dumps([_identity(r.video), _identity(r.audio), r.start, r.end]).encode())
    return h.hexdigest()[:16]


def _identity(path: Path | None) -> list | None:
    """A media file as the features of it depend on: its path, size and mtime (None: no file)."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:  # missing or unreadable: the row fails to decode, as it will
        return [str(path), None, None]
    return [str(path), st.st_size, st.st_mtime_ns]


def row_features(model: VLSA, checkpoint: str, rows: list[Row], folder: Path, workers: int = 1,
                 on_chunk: Callable[[int, int], object] = lambda done, total: None) -> Features:
    """Each row's Features, decoded as evaluation decodes (train=False: the clip from the row's
    start), computed chunk by chunk into folder/KEY/ and read back from there on a later run.
    `checkpoint`: the fingerprint of the checkpoint the model's picture side was loaded from."""
    residual = model.config.audio.tower_residual
    folder = folder / features_key(model.config.audio.tower, checkpoint, rows, residual)
    names = ("tower", "video", "has_audio", "has_video") + (("shared",) if residual else ())
    folder.mkdir(parents=True, exist_ok=True)
    n_chunks = math.ceil(len(rows) / CHUNK_ROWS)
    parts = []
    for c in range(n_chunks):
        path = folder / f"chunk-{c:05d}.npz"
        if not path.exists():
            _embed_chunk(model, rows[c * CHUNK_ROWS:(c + 1) * CHUNK_ROWS], path, workers)
        with np.load(path, allow_pickle=False) as d:
            parts.append({k: torch.from_numpy(d[k]) for k in names})
        on_chunk(c + 1, n_chunks)
    if not parts:
        raise ValueError("no rows to fit on")
    return Features(**{k: torch.cat([p[k] for p in parts]) for k in parts[0]})


@torch.inference_mode()
def _embed_chunk(model: VLSA, rows: list[Row], path: Path, workers: int) -> None:
    """One chunk's Features, by evaluation's own embedding (train.protocols.embed_clips: the tower
    run once per clip); a row that fails to decode has none."""
    emb = embed_clips(model, rows, None, workers=workers, audio_parts=True)
    idx, n = emb["index"], len(rows)
    out = {"tower": torch.zeros(n, model.audio_tower.width), "video": torch.zeros(n, model.config.embed_dim),
           "has_audio": torch.zeros(n, dtype=torch.bool), "has_video": torch.zeros(n, dtype=torch.bool)}
    sources = [("tower", TOWER_VECTORS), ("video", "video"), ("has_audio", "has_audio"), ("has_video", "has_video")]
    if model.config.audio.tower_residual:
        out["shared"] = torch.zeros(n, model.config.encoder.width)
        sources.append(("shared", SHARED_AUDIO))
    for key, source in sources:
        out[key][idx] = emb[source]
    for key in ("tower", "shared"):  # a row without sound: no vector (the tower heard silence)
        if key in out:
            out[key][~out["has_audio"]] = 0
    out["video"][~out["has_video"]] = 0
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        np.savez(f, **{k: v.numpy() for k, v in out.items()})
    replace_durably(partial, path)


@dataclass
class FitSettings:
    epochs: int = 30
    batch_size: int = 256
    lr: float = 3e-3  # the residual adapter starts at zero: 1e-3 left it short of the words (docs/REAL_MEDIA.md)
    weight_decay: float = 0.05
    temperature: float = 0.05
    video_weight: float = 1.0  # the sound<->picture term of rows that have both
    text: bool = True  # also fit the text tower's adapter, where the checkpoint has a text tower
    # Weight of a term holding the words of pictures (the captions of rows with a picture) where
    # the checkpoint had them (1 - cosine): its picture maps point at the object a caption names
    # patch by patch, which the pooled words<->pictures term cannot see (docs/REAL_MEDIA.md).
    anchor: float = 5.0
    seed: int = 0


def trained_prefixes(settings: FitSettings) -> tuple[str, ...]:
    """The weights a fit trains: the audio side's, and the text side's with settings.text."""
    return AUDIO_SIDE + (TEXT_SIDE if settings.text else ())


def caption_choices(rows: list[Row], chosen: list[int]) -> tuple[list[str], dict[int, list[int]]]:
    """The captions of the chosen rows (each row's phrasings) and, per row, their indices."""
    captions = {i: rows[i].captions or [rows[i].text] for i in chosen}
    vocabulary = sorted({c for phrasings in captions.values() for c in phrasings})
    index = {c: k for k, c in enumerate(vocabulary)}
    return vocabulary, {i: [index[c] for c in phrasings] for i, phrasings in captions.items()}


@torch.no_grad()
def sentence_vectors(model: VLSA, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    """The frozen text tower's sentence embeddings (N, width): what the text adapter reads."""
    out = []
    for start in range(0, len(texts), batch_size):
        ids, mask = model.prepare_text(texts[start:start + batch_size])
        out.append(model.text_tower(ids.to(model.device), mask.to(model.device)).float().cpu())
    return torch.cat(out)


def fit_towers(model: VLSA, rows: list[Row], feats: Features, settings: FitSettings,
               on_epoch: Callable[[int, float], object] = lambda epoch, loss: None) -> None:
    """Train the trained_prefixes weights on cached Features. Each step: a batch of sounds, each
    with one of its row's captions (its phrasings, as training draws them), matched with words
    and with the pictures of the rows that have both; with settings.text, also a batch of
    pictures matched with their captions, so the fitted words stay on the frozen pictures, and
    held near the checkpoint's words for them (settings.anchor). The text tower's sentence
    embeddings of every caption are computed once."""
    sounds = [i for i, r in enumerate(rows) if feats.has_audio[i] and (r.captions or r.text)]
    pictures = [i for i, r in enumerate(rows) if feats.has_video[i] and (r.captions or r.text)]
    if len(sounds) < 2:
        raise ValueError("fewer than two rows with both a sound and a caption")
    fit_text = settings.text and model.config.text.tower != "shared" and len(pictures) >= 2
    vocabulary, choices = caption_choices(rows, sounds + pictures if fit_text else sounds)
    if fit_text:
        words = sentence_vectors(model, vocabulary)
        embed_words = model.join_tower_text
    else:
        words = model.embed_text(vocabulary)  # the checkpoint's own, frozen
        embed_words = torch.nn.Identity()

    prefixes = trained_prefixes(settings) if fit_text else AUDIO_SIDE
    trained = [p for name, p in model.named_parameters() if name.startswith(prefixes)]
    g = torch.Generator().manual_seed(settings.seed)
    batch_size = min(settings.batch_size, len(sounds))
    steps_per_epoch = len(sounds) // batch_size
    optimizer = torch.optim.AdamW(trained, lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, pct_start=0.05,
                                                   total_steps=settings.epochs * steps_per_epoch)
    scale = torch.tensor(1.0 / settings.temperature)
    model.eval()  # dropout and every other norm stay as they are; only the fitted sides train

    def draw(rows_: torch.Tensor) -> torch.Tensor:
        return torch.tensor([choices[i][int(torch.randint(len(choices[i]), (), generator=g))] for i in rows_.tolist()])

    anchors = None
    if fit_text and settings.anchor:
        with torch.no_grad():
            anchors = embed_words(words)  # the words as the checkpoint had them
    for name, module in model.named_modules():
        if name and (name + ".").startswith(prefixes):
            module.train()
    sounds_t, pictures_t = torch.tensor(sounds), torch.tensor(pictures)
    every = torch.ones(batch_size, dtype=torch.bool)
    for epoch in range(settings.epochs):
        order = sounds_t[torch.randperm(len(sounds), generator=g)]
        for s in range(steps_per_epoch):
            idx = order[s * batch_size:(s + 1) * batch_size]
            audio = model.join_tower_audio(feats.tower[idx], shared=_rows(feats.shared, idx))
            loss = contrastive_loss(audio, embed_words(words[draw(idx)]), scale, every)
            with_video = feats.has_video[idx]
            if settings.video_weight and with_video.sum() > 1:
                loss = loss + settings.video_weight * contrastive_loss(audio, feats.video[idx], scale, with_video)
            if fit_text:
                seen = pictures_t[torch.randint(len(pictures), (batch_size,), generator=g)]
                said = draw(seen)
                text = embed_words(words[said])
                loss = loss + contrastive_loss(text, feats.video[seen], scale, every)
                if anchors is not None:
                    loss = loss + settings.anchor * (1 - (text * anchors[said]).sum(-1)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        on_epoch(epoch + 1, loss.item())
    precise_pool_statistics(model, "audio", lambda i: model.join_tower_audio(feats.tower[i], shared=_rows(feats.shared, i)),
                            sounds_t)
    model.eval()


def _rows(x: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    return None if x is None else x[idx]


@torch.no_grad()
def precise_pool_statistics(model: VLSA, modality: str, embed: Callable, inputs: torch.Tensor,
                            batch_size: int = 1024) -> None:
    """A pool norm's running statistics as plain averages over `inputs` through the fitted
    adapter ("precise BN", as VLSAModel.estimate_pool_statistics does for a training run)."""
    if not model.config.pool_norm:
        return
    model.eval()
    norm = model.pool_norm[modality]
    momentum = norm.momentum
    norm.reset_running_stats()
    norm.momentum = None  # a cumulative average
    norm.train()
    for start in range(0, len(inputs), batch_size):
        embed(inputs[start:start + batch_size])
    norm.momentum = momentum
    norm.eval()
