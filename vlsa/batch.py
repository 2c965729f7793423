"""Training samples and batches: the one place that turns decoded media and captions into the
tensors `VLSAModel.forward` reads. The trainer's loader workers call `make_sample`; `collate`
stacks samples (keys as in `VLSAModel.forward`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vlsa.config import VLSAConfig
from vlsa.media import Clip, normalize_frames


def make_sample(clip: Clip | None, text: str | None, config: VLSAConfig, frontend: torch.nn.Module,
                tokenizer) -> dict[str, torch.Tensor]:
    """One training sample. A missing modality (clip None, no video stream, no audio track, no
    text) becomes zeros plus a False `has_*` flag, so the losses that need it skip the row."""
    v, a = config.video, config.audio
    has_video = clip is not None and clip.frames is not None
    has_audio = clip is not None and clip.has_audio
    has_text = bool(text and text.strip())
    video = (normalize_frames(clip.frames, v) if has_video
             else torch.zeros(v.frames, 3, v.size, v.size))
    with torch.no_grad():
        audio = (frontend(clip.wave) if has_audio else torch.zeros(a.bins, a.frames))
    ids, mask = tokenizer([text if has_text else ""])
    maskable = mask[0] & ~torch.isin(ids[0], torch.tensor(sorted(tokenizer.special_ids)))
    return {
        "video": video, "audio": audio, "text": ids[0], "text_mask": mask[0], "text_maskable": maskable,
        "has_video": torch.tensor(has_video), "has_audio": torch.tensor(has_audio),
        "has_text": torch.tensor(has_text),
    }


def collate(samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}


def to_device(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
