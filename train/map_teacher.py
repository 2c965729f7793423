"""Keeping a teacher's heatmaps while the model learns new material.

Training the synthetic-only checkpoint on real media keeps its pooled embeddings aligned (the
retrieval bars hold) but loses where in the frame a match lies: its caption heatmaps stop peaking
on the sounding object (docs/REAL_MEDIA.md). This is learning without forgetting (Li & Hoiem,
2016) applied to the patch maps: a frozen copy of the earlier checkpoint, the teacher, draws for
each clip the map of its video patches against the clip's own sound, and the model being trained
is asked to draw the same shape, both against the clip's sound and against its caption.

Only clips whose pairing the teacher knows teach: a clip counts when the teacher's embedding of
its sound picks its own video first among the batch's videos. On material the teacher has never
seen (real recordings) it is at chance, so its maps there would be noise; this gate needs no label
of where a clip came from.

The term compares shapes, not values: one minus the Pearson correlation of the two maps over the
clip's patches, so the model's cosines keep their own scale.
"""

from __future__ import annotations

import dataclasses

import torch

from vlsa import VLSA
from vlsa.audio_tower import tower_rate
from vlsa.losses import Gather, masked_mean, no_gather


class MapTeacher:
    """A frozen checkpoint whose patch maps the trained model keeps. Never part of the model, so
    never in a checkpoint; it reads the same prepared video and sound as the model does."""

    def __init__(self, checkpoint: str, student: VLSA, device: torch.device):
        self.model = VLSA.from_pretrained(checkpoint).to(device).eval().requires_grad_(False)
        if self.model.has_audio_tower and tower_rate(student.config) != tower_rate(self.model.config):
            raise ValueError(f"map teacher {checkpoint}: it hears through audio.tower="
                             f"{self.model.config.audio.tower}, whose waveforms the model's batches do not carry")
        for modality in ("video", "audio"):
            mine, theirs = (_input_settings(getattr(m.config, modality)) for m in (self.model, student))
            if mine != theirs:
                raise ValueError(f"map teacher {checkpoint}: its {modality} input differs from the model's "
                                 f"({mine} against {theirs})")

    @torch.no_grad()
    def targets(self, batch: dict[str, torch.Tensor], gather: Gather | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """The rows that teach and the teacher's map of each: (rows (R,) indices into the batch,
        maps (R, N) over the video patches, against the row's own sound). With `gather` (DDP), a
        sound picks its video among every rank's, as one process on the joined batch would."""
        teacher, gather = self.model, gather or no_gather
        tokens = teacher.encode_video(batch["video"])
        videos, offset = gather(teacher.pool(tokens, "video"))
        has_video = gather(batch["has_video"].to(videos.dtype))[0] > 0.5
        sounds = teacher.embed_audio_input(teacher.audio_input(batch))  # the teacher's own sound vectors
        picked = (sounds @ videos.T).masked_fill(~has_video, float("-inf")).argmax(dim=1)
        own = torch.arange(len(sounds), device=picked.device) + offset
        # a lone video leaves its sound no choice: nothing to know
        knows = batch["has_video"] & batch["has_audio"] & batch["has_text"] & (picked == own) & (has_video.sum() > 1)
        rows = knows.nonzero()[:, 0]
        patches = teacher.patch_embeddings(tokens[rows], "video")
        return rows, (patches @ sounds[rows, :, None]).squeeze(-1)


def _input_settings(config):
    """What decides the prepared input the teacher reads (batch["video"], batch["audio"]): not
    where a model's global sound embedding comes from (audio.tower, audio.teacher), since the
    teacher reads the spectrogram either way."""
    if hasattr(config, "tower"):
        return dataclasses.replace(config, tower="shared", tower_residual=False, teacher=None)
    return config


def map_distillation(model: VLSA, batch: dict[str, torch.Tensor], z: dict[str, torch.Tensor],
                     rows: torch.Tensor, targets: torch.Tensor, gather: Gather | None = None) -> torch.Tensor:
    """1 - Pearson correlation between the model's patch maps of `rows` and the teacher's, the
    model's maps drawn against each row's sound and caption embeddings `z` (from the same
    training forward, whose video pass over every patch is reused when it ran one), averaged
    over the rows of every rank (`gather`). Zero when no row teaches."""
    per_row = batch["audio"].new_zeros(len(rows))
    if len(rows):
        tokens = z["video_tokens"][rows] if "video_tokens" in z else model.encode_video(batch["video"][rows])
        patches = model.patch_embeddings(tokens, "video")  # (R, N, E)
        queries = [z[m][rows] for m in ("audio", "text") if m in z]
        per_row = sum(1 - _pearson((patches @ query[..., None]).squeeze(-1), targets) for query in queries) / len(queries)
    # every rank gathers its count, rows or not: a collective skipped by one rank would hang the others
    return masked_mean(per_row, torch.ones_like(per_row, dtype=torch.bool), gather)


def _pearson(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    x = x.float() - x.float().mean(dim=-1, keepdim=True)
    y = y.float() - y.float().mean(dim=-1, keepdim=True)
    return (x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1)).clamp(min=eps)
