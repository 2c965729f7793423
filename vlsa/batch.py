"""Training samples and batches: the one place that turns decoded media and captions into the
tensors `VLSAModel.forward` reads. The trainer's loader workers call `make_sample`; `collate`
stacks samples (keys as in `VLSAModel.forward`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vlsa.audio_tower import PRETRAINED, TOWER_WAVE, tower_input, tower_name, tower_samples
from vlsa.config import VLSAConfig
from vlsa.media import Clip, normalize_frames


def make_sample(clip: Clip | None, text: str | None, config: VLSAConfig, frontend: torch.nn.Module,
                tokenizer) -> dict[str, torch.Tensor]:
    """One training sample. A missing modality (clip None, no video stream, no audio track, no
    text) becomes zeros plus a False `has_*` flag, so the losses that need it skip the row.
    With a pretrained audio tower or teacher the sample also carries its input under TOWER_WAVE."""
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
    sample = {
        "video": video, "audio": audio, "text": ids[0], "text_mask": mask[0], "text_maskable": maskable,
        "has_video": torch.tensor(has_video), "has_audio": torch.tensor(has_audio),
        "has_text": torch.tensor(has_text),
    }
    if tower_name(config) is not None:
        sample[TOWER_WAVE] = clip_tower_input(clip if has_audio else None, config)
    return sample


def clip_tower_input(clip: Clip | None, config: VLSAConfig) -> torch.Tensor:
    """The tower's input from a clip: its sound decoded at the tower's rate where load_clip was
    asked for it, else its sound at the model's rate resampled (a shard stores only that; an
    augmented clip's perturbed sound is only that); zeros without sound."""
    name = tower_name(config)
    if clip is None:
        return torch.zeros(tower_samples(name, config.audio))
    if clip.tower_wave is not None:
        return tower_input(clip.tower_wave, PRETRAINED[name].sample_rate, config)
    return tower_input(clip.wave, config.audio.sample_rate, config)


def collate(samples: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}


def to_device(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
