"""Fit a pretrained audio tower into a trained checkpoint's joint space, everything else frozen.

`vlsa fit-tower --init C --manifest M --out RUN` gives checkpoint C an audio tower (audio.tower,
vlsa/audio_tower.py) and trains only what lies between the frozen tower and the joint space: the
tower's adapter, the audio pool norm and the audio projection. C's text and picture sides stay
exactly as they are, so every search that does not involve sound ranks as before. The sounds are
matched to their captions (and to the pictures of the rows that have both) by the training's own
symmetric InfoNCE (vlsa.losses.contrastive_loss).

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from train.data import ClipDataset, Row
from vlsa.api import VLSA
from vlsa.audio_tower import TOWER_WAVE
from vlsa.durable import replace_durably
from vlsa.losses import contrastive_loss

CHUNK_ROWS = 512  # rows embedded per features file: what a killed run loses at most
TRAINED = ("audio_adapter.", "proj.audio.", "pool_norm.audio.")  # all else is frozen


@dataclass
class Features:
    """Per manifest row: the frozen tower's unit vector (zeros without sound) and the checkpoint's
    picture embedding (zeros without a picture)."""

    tower: torch.Tensor  # (N, width)
    video: torch.Tensor  # (N, E)
    has_audio: torch.Tensor  # (N,) bool
    has_video: torch.Tensor  # (N,) bool


def features_key(tower: str, checkpoint: str, rows: list[Row]) -> str:
    """What a features folder was computed from: the rows' media and times, the tower, and the
    checkpoint's fingerprint (its picture embeddings); another key never reuses a chunk."""
    h = hashlib.sha256(f"{tower} {checkpoint}".encode())
    for r in rows:
        h.update(json.dumps([str(r.video), str(r.audio), r.start, r.end]).encode())
    return h.hexdigest()[:16]


def row_features(model: VLSA, checkpoint: str, rows: list[Row], folder: Path, workers: int = 1,
                 on_chunk: Callable[[int, int], object] = lambda done, total: None) -> Features:
    """Each row's Features, decoded as evaluation decodes (train=False: the clip from the row's
    start), computed chunk by chunk into folder/KEY/ and read back from there on a later run.
    `checkpoint`: the fingerprint of the checkpoint the model's picture side was loaded from."""
    folder = folder / features_key(model.config.audio.tower, checkpoint, rows)
    folder.mkdir(parents=True, exist_ok=True)
    n_chunks = math.ceil(len(rows) / CHUNK_ROWS)
    parts = []
    for c in range(n_chunks):
        path = folder / f"chunk-{c:05d}.npz"
        if not path.exists():
            _embed_chunk(model, rows[c * CHUNK_ROWS:(c + 1) * CHUNK_ROWS], path, workers)
        with np.load(path, allow_pickle=False) as d:
            parts.append({k: torch.from_numpy(d[k]) for k in ("tower", "video", "has_audio", "has_video")})
        on_chunk(c + 1, n_chunks)
    if not parts:
        raise ValueError("no rows to fit on")
    return Features(**{k: torch.cat([p[k] for p in parts]) for k in parts[0]})


@torch.inference_mode()
def _embed_chunk(model: VLSA, rows: list[Row], path: Path, workers: int) -> None:
    model.eval()
    dataset = ClipDataset(rows, model.config, train=False, random_caption=False)
    loader = DataLoader(dataset, batch_size=32, num_workers=workers, collate_fn=list)
    width, dim = model.audio_tower.width, model.config.embed_dim
    out = {"tower": [], "video": [], "has_audio": [], "has_video": []}
    for samples in loader:
        n = len(samples)
        tower, video = torch.zeros(n, width), torch.zeros(n, dim)
        has_audio, has_video = torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)
        kept = [i for i, s in enumerate(samples) if "skipped" not in s]  # a failed row: no features
        if kept:
            batch = {k: torch.stack([samples[i][k] for i in kept]) for k in samples[kept[0]]}
            idx = torch.tensor(kept)
            a, v = batch["has_audio"], batch["has_video"]
            if a.any():
                tower[idx[a]] = model.audio_tower(batch[TOWER_WAVE][a].to(model.device)).float().cpu()
            if v.any():
                video[idx[v]] = model.pool(model.encode_video(batch["video"][v].to(model.device)), "video").float().cpu()
            has_audio[idx], has_video[idx] = a, v
        for key, value in (("tower", tower), ("video", video), ("has_audio", has_audio), ("has_video", has_video)):
            out[key].append(value)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        np.savez(f, **{k: torch.cat(v).numpy() for k, v in out.items()})
    replace_durably(partial, path)


@dataclass
class FitSettings:
    epochs: int = 40
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.05
    temperature: float = 0.05
    video_weight: float = 1.0  # the audio<->picture term of rows that have both
    seed: int = 0


def fit_audio_side(model: VLSA, rows: list[Row], feats: Features, settings: FitSettings,
                   on_epoch: Callable[[int, float], object] = lambda epoch, loss: None) -> None:
    """Train the TRAINED weights on cached Features: each step draws one of each row's captions
    (its phrasings, as training does); the checkpoint's own text embeddings of every caption are
    computed once, frozen."""
    usable = [i for i, r in enumerate(rows) if feats.has_audio[i] and (r.captions or r.text)]
    if len(usable) < 2:
        raise ValueError("fewer than two rows with both a sound and a caption")
    captions = {i: rows[i].captions or [rows[i].text] for i in usable}  # a picture's are not needed
    vocabulary = sorted({c for phrasings in captions.values() for c in phrasings})
    index = {c: k for k, c in enumerate(vocabulary)}
    text = model.embed_text(vocabulary)
    choices = {i: [index[c] for c in phrasings] for i, phrasings in captions.items()}

    trained = [p for name, p in model.named_parameters() if name.startswith(TRAINED)]
    g = torch.Generator().manual_seed(settings.seed)
    batch_size = min(settings.batch_size, len(usable))
    steps_per_epoch = len(usable) // batch_size
    optimizer = torch.optim.AdamW(trained, lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=settings.lr, pct_start=0.05,
                                                   total_steps=settings.epochs * steps_per_epoch)
    scale = torch.tensor(1.0 / settings.temperature)
    model.eval()  # dropout and every other norm stay as they are; only the audio side trains
    model.audio_adapter.train()
    model.pool_norm["audio"].train() if model.config.pool_norm else None
    usable_t = torch.tensor(usable)
    for epoch in range(settings.epochs):
        order = usable_t[torch.randperm(len(usable), generator=g)]
        for s in range(steps_per_epoch):
            idx = order[s * batch_size:(s + 1) * batch_size]
            pick = torch.tensor([choices[i][int(torch.randint(len(choices[i]), (), generator=g))]
                                 for i in idx.tolist()])
            audio = model.join_tower_audio(feats.tower[idx])
            loss = contrastive_loss(audio, text[pick], scale, torch.ones(len(idx), dtype=torch.bool))
            with_video = feats.has_video[idx]
            if settings.video_weight and with_video.sum() > 1:
                loss = loss + settings.video_weight * contrastive_loss(audio, feats.video[idx], scale, with_video)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        on_epoch(epoch + 1, loss.item())
    estimate_audio_pool_statistics(model, feats.tower[usable_t])
    model.eval()


@torch.no_grad()
def estimate_audio_pool_statistics(model: VLSA, tower: torch.Tensor, batch_size: int = 1024) -> None:
    """The audio pool norm's running statistics as plain averages over every row with the fitted
    adapter ("precise BN", as VLSAModel.estimate_pool_statistics does for a training run)."""
    if not model.config.pool_norm:
        return
    model.eval()
    norm = model.pool_norm["audio"]
    momentum = norm.momentum
    norm.reset_running_stats()
    norm.momentum = None  # a cumulative average
    norm.train()
    for start in range(0, tower.shape[0], batch_size):
        model.join_tower_audio(tower[start:start + batch_size])
    norm.momentum = momentum
    norm.eval()
