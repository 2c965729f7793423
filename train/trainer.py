"""Pre-training: `train(TrainConfig)` wires the objects into a `Run`, `run_steps` runs the loop.

    vlsa train --manifest data/manifest.jsonl --preset tiny --steps 2000 --out runs/tiny
    torchrun --nproc-per-node 8 $(which vlsa) train --manifest ... --preset base --batch-size 256

AdamW, linear warm-up then cosine decay, gradient clipping and accumulation, bf16 autocast on
CUDA. The run folder holds `checkpoint/` (a VLSA checkpoint plus `trainer.pt`: optimizer,
schedule, step, data position, RNG states), TensorBoard logs and `metrics.jsonl`. `--resume`
continues exactly where the checkpoint left off.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import torch

from train.data import ClipDataset, GroupedSampler, ResumableSampler, read_manifest
from train.datasets.webdataset import TarClipDataset, is_tar_folder
from train.distributed import wrap_ddp
from train.evaluate import eval_dataset
from train.loop import Run, run_steps
from train.map_teacher import MapTeacher
from train.shards import ShardDataset
from train.state import TrainConfig, TrainState, load_run
from vlsa import VLSA
from vlsa.checkpoint import load_config, load_into
from vlsa.clip_init import CLIP_OVERRIDES, load_clip_weights, read_clip_state_dict
from vlsa.config import apply_overrides
from vlsa.distributed import cleanup, init_distributed

log = logging.getLogger(__name__)


def build_optimizer(model: torch.nn.Module, tc: TrainConfig, fused: bool) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms, embeddings' position tables and the temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "positions" in name or name == "logit_scale" else decay).append(p)
    groups = [{"params": decay, "weight_decay": tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=tc.lr, betas=(0.9, 0.95), fused=fused)


def build_schedule(opt: torch.optim.Optimizer, tc: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up over `tc.warmup` steps from lr / warmup to lr, then cosine decay to
    lr * min_lr_ratio at `tc.steps`; stepped once per optimizer step."""
    lr_min = tc.lr * tc.min_lr_ratio
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, tc.steps - tc.warmup), eta_min=lr_min)
    if tc.warmup < 1:
        return cosine
    warmup = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / tc.warmup, total_iters=tc.warmup - 1)
    return torch.optim.lr_scheduler.SequentialLR(opt, [warmup, cosine], milestones=[tc.warmup])


def training_dataset(source: str, config, seed: int, augment: bool = False):
    """The train split of a manifest (.jsonl, decoded on the fly), of a shard folder, or of a
    folder of webdataset shards (img2dataset, video2dataset); augment: train/augment.py."""
    if is_tar_folder(source):
        return TarClipDataset(source, config, split="train", train=True, seed=seed, augment=augment)
    if Path(source).is_dir():
        return ShardDataset(source, config, split="train", train=True, seed=seed, augment=augment)
    return ClipDataset(read_manifest(source, split="train"), config, train=True, seed=seed, augment=augment)


def training_sampler(dataset, tc: TrainConfig, dist) -> ResumableSampler:
    """A plain shuffle, or hard-negative groups of `tc.group_size` clips (GroupedSampler)."""
    if tc.group_size <= 1:
        return ResumableSampler(len(dataset), tc.seed, dist.rank, dist.world)
    if (tc.batch_size * dist.world) % tc.group_size:
        log.warning("batch %d x %d ranks is not a multiple of --group-size %d: some groups straddle two steps",
                    tc.batch_size, dist.world, tc.group_size)
    sampler = GroupedSampler(dataset.captions(), tc.seed, tc.group_size, dist.rank, dist.world)
    keyed = sum(k is not None for k in sampler.keys)
    log.info("hard-negative groups of %d: %d of %d clips have a shared caption word", tc.group_size, keyed, len(dataset))
    return sampler


def build_model(tc: TrainConfig, device: torch.device) -> VLSA:
    """A fresh preset, or `tc.init`'s weights under its config with `tc.overrides` on top (the loss
    switches of fine-tuning; shape-changing overrides are refused when the weights load, except for
    the weights named by `tc.init_fresh`, which keep their fresh initialisation), or the preset
    with its shared encoder from the CLIP file `tc.init_clip`."""
    if tc.init:
        model = load_into(VLSA(apply_overrides(load_config(tc.init), tc.overrides)), tc.init, tuple(tc.init_fresh))
    elif tc.init_clip:
        clip = read_clip_state_dict(tc.init_clip)  # a file that is not CLIP's fails before the build
        model = VLSA.from_preset(tc.preset, **{**CLIP_OVERRIDES, **tc.overrides})
        log.info(load_clip_weights(model, clip, tc.init_clip))
    else:
        model = VLSA.from_preset(tc.preset, **tc.overrides)
    model.encoder.checkpointing = model.decoder.checkpointing = tc.checkpointing
    model.encoder.low_precision_residual = model.decoder.low_precision_residual = tc.bf16_residual
    return model.to(device).train()


def train(tc: TrainConfig) -> dict:
    """Wire model, data, optimizer and logging; run; return the final metrics."""
    dist = init_distributed(tc.device)
    torch.manual_seed(tc.seed + dist.rank)  # masks differ across ranks, the init does not:
    model = build_model(tc, dist.device)   # DDP broadcasts rank 0's weights
    dataset = training_dataset(tc.manifest, model.config, tc.seed, tc.audio_augment)
    if len(dataset) < tc.batch_size * dist.world:
        raise ValueError(f"{tc.manifest}: {len(dataset)} training samples, fewer than one batch")
    if tc.eval_split:  # an empty or misspelt split fails now, not after the training
        eval_dataset(tc.manifest, model.config, tc.eval_split)
    sampler = training_sampler(dataset, tc, dist)
    opt = build_optimizer(model, tc, fused=dist.device.type == "cuda")
    sched = build_schedule(opt, tc)
    state = load_run(model, opt, sched, tc) if tc.resume else TrainState()
    wrapped = wrap_ddp(model, dist.device) if dist.world > 1 else model
    if tc.compile == "blocks":  # see VLSAModel.compile_blocks
        model.compile_blocks()
    elif tc.compile == "model":  # the training forward only: evaluation runs `model` as it is
        wrapped = torch.compile(wrapped)
        log.info("compile model: the first step compiles the whole training forward (about two minutes at base)")
    writer = _writer(tc) if dist.main else None
    try:
        teacher = MapTeacher(tc.map_teacher, model, dist.device) if tc.map_teacher else None
        metrics = run_steps(Run(model, wrapped, opt, sched, dataset, sampler, state, tc, dist, writer, teacher))
    finally:
        if writer:
            writer.close()
        cleanup()
    return metrics


def _writer(tc: TrainConfig):
    from torch.utils.tensorboard import SummaryWriter

    Path(tc.out).mkdir(parents=True, exist_ok=True)
    (Path(tc.out) / "train_config.json").write_text(json.dumps(dataclasses.asdict(tc), indent=2))
    return SummaryWriter(str(Path(tc.out) / "tensorboard"))

