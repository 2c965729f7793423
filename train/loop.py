"""The training loop: `run_steps(run)` runs optimizer steps until the budget (steps, wall time,
SIGTERM) is spent, checkpointing and evaluating along the way, and returns the final metrics.

Losses stay on the device between log steps: no per-step host synchronisation. At each log step
the losses of the steps since the last one are read once; a non-finite one stops the run naming the
step and the samples.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from train.data import ResumableSampler, make_loader
from train.distributed import gather_with_grad
from train.evaluate import evaluate, format_table
from train.map_teacher import MapTeacher, map_distillation
from train.state import StopFlag, TrainConfig, TrainState, save_run
from vlsa import VLSA
from vlsa.batch import to_device
from vlsa.distributed import DistInfo

if TYPE_CHECKING:  # tensorboard is imported only where a writer is made
    from torch.utils.tensorboard import SummaryWriter

log = logging.getLogger(__name__)
POOL_STAT_BATCHES = 16  # x batch size: 512 samples at the tiny recipe's batch of 32


class NonFiniteLoss(RuntimeError):
    pass


@dataclass
class Run:
    """The objects one training run's steps share, wired by train.trainer.train."""

    model: VLSA
    wrapped: torch.nn.Module  # `model` as the training step calls it: inside DDP and/or torch.compile
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    dataset: torch.utils.data.Dataset  # ClipDataset or ShardDataset: the training split
    sampler: ResumableSampler
    state: TrainState  # step and data position, advanced by the loop
    tc: TrainConfig
    dist: DistInfo
    writer: SummaryWriter | None  # TensorBoard, on the main process only
    map_teacher: MapTeacher | None = None  # tc.map_teacher, loaded

    def save(self) -> Path:
        return save_run(self.model, self.opt, self.sched, self.state, self.tc, self.dist)


def run_steps(run: Run) -> dict:
    """Optimizer steps from `run.state` on until the budget is spent; the final metrics."""
    state, tc, dist = run.state, run.tc, run.dist
    stop = StopFlag()
    deadline = time.time() + 60 * tc.max_minutes if tc.max_minutes else float("inf")
    bar = tqdm(total=tc.steps, initial=state.step, disable=not (dist.main and tc.progress),
               desc="train", unit="step", dynamic_ncols=True)
    outputs: list[dict[str, torch.Tensor]] = []  # of the steps since the last log step
    since, reason = time.time(), "steps"
    try:
        while state.step < tc.steps and reason == "steps":
            for batch, micro in _micro_batches(run):
                out = _forward_backward(run, batch, micro)
                if micro < tc.accum - 1:
                    continue
                _optimizer_step(run)
                state.step += 1
                bar.update(1)
                outputs.append({k: v.detach() for k, v in out.items()})
                if state.step % tc.log_every == 0 or state.step == tc.steps:
                    _log_steps(run, outputs, time.time() - since)
                    outputs, since = [], time.time()
                saving = dist.main and tc.ckpt_every and state.step % tc.ckpt_every == 0
                evaluating = tc.eval_every and tc.eval_split and state.step % tc.eval_every == 0 and dist.main
                if saving or evaluating:
                    refresh_pool_statistics(run)
                if saving:
                    run.save()
                if evaluating:
                    _evaluate(run)
                reason = ("steps" if state.step < tc.steps else "done") if not stop.set else "SIGTERM"
                if time.time() > deadline:
                    reason = "time budget"
                if reason != "steps":
                    break
    finally:
        stop.restore()
        bar.close()
    if outputs:
        _log_steps(run, outputs, time.time() - since)
    if dist.main:
        if reason != "SIGTERM":  # a scheduler's grace period is short: save at once
            refresh_pool_statistics(run)
        path = run.save()
        log.info("stopped (%s) at step %d; checkpoint %s", reason, state.step, path)
    result = {"step": state.step, "stopped_by": reason, "skipped": dict(state.skipped)}
    if tc.eval_split and dist.main and reason != "SIGTERM":
        result["eval"] = _evaluate(run)
    return result


def refresh_pool_statistics(run: Run) -> None:
    """Before weights are saved or evaluated: pool_norm's statistics from POOL_STAT_BATCHES fixed
    training batches (VLSAModel.estimate_pool_statistics). Training itself uses batch statistics
    only, and this touches neither the RNG nor the data position, so resumed runs stay exact."""
    model, tc, device = run.model, run.tc, run.dist.device
    if not model.config.pool_norm:
        return
    sampler = ResumableSampler(len(run.dataset), tc.seed + 1)
    loader = make_loader(run.dataset, sampler, tc.batch_size, min(tc.workers, 2))
    batches = []
    for batch in itertools.islice(loader, POOL_STAT_BATCHES):
        batch.pop("skipped")
        if "video" in batch:
            batches.append(to_device(batch, device))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        model.estimate_pool_statistics(batches)


def _micro_batches(run: Run):
    """Yield (batch, micro index) from the recorded data position on, epoch after epoch,
    counting skipped samples into the state."""
    state, tc = run.state, run.tc
    micro = 0
    while True:
        run.dataset.epoch = state.epoch
        run.sampler.set_position(state.epoch, state.position)
        for batch in make_loader(run.dataset, run.sampler, tc.batch_size, tc.workers):
            state.position += tc.batch_size
            skipped = batch.pop("skipped")
            if skipped:
                state.skipped = dict(Counter(state.skipped) + skipped)
                log.warning("skipped %d samples: %s", sum(skipped.values()), dict(skipped))
            if "video" not in batch:  # every sample of the batch failed
                continue
            yield batch, micro
            micro = (micro + 1) % tc.accum
        state.epoch, state.position = state.epoch + 1, 0


def _forward_backward(run: Run, batch: dict, micro: int) -> dict[str, torch.Tensor]:
    tc, dist = run.tc, run.dist
    batch = to_device(batch, dist.device)
    cuda = dist.device.type == "cuda"
    # DDP: reduce gradients only on the last micro-batch of an accumulation
    sync = contextlib.nullcontext() if micro == tc.accum - 1 or dist.world == 1 else run.wrapped.no_sync()
    with sync, torch.autocast(dist.device.type, dtype=torch.bfloat16, enabled=cuda):
        gather = gather_with_grad if dist.world > 1 else None
        out, z = run.wrapped(batch, gather=gather, return_embeddings=True)
        if run.map_teacher is not None:
            out["map_distill"] = map_distillation(run.model, batch, z, *run.map_teacher.targets(batch, gather), gather)
            out["loss"] = out["loss"] + tc.map_teacher_weight * out["map_distill"]
        (out["loss"] / tc.accum).backward()
    return out


def _optimizer_step(run: Run) -> None:
    if run.tc.grad_clip:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.tc.grad_clip)
    run.opt.step()
    run.sched.step()
    run.opt.zero_grad(set_to_none=True)


def _log_steps(run: Run, outputs: list[dict[str, torch.Tensor]], seconds: float) -> None:
    """One host read for the outputs of the steps since the last log step; scalars to TensorBoard
    and metrics.jsonl."""
    state, tc, dist = run.state, run.tc, run.dist
    stacked = {k: torch.stack([w[k] for w in outputs]).float().cpu() for k in outputs[0]}
    bad = [i for i in range(len(outputs)) if not torch.isfinite(stacked["loss"][i])]
    if bad:
        step = state.step - len(outputs) + bad[0] + 1
        raise NonFiniteLoss(f"non-finite loss at step {step} (epoch {state.epoch}, "
                            f"samples before position {state.position}); last checkpoint is kept")
    if not dist.main:
        return
    samples = len(outputs) * tc.batch_size * tc.accum * dist.world
    row = {"step": state.step, **{k: round(v.mean().item(), 6) for k, v in stacked.items()},
           "per_step_loss": [round(x, 7) for x in stacked["loss"].tolist()],
           "lr": run.sched.get_last_lr()[0], "temperature": 1 / run.model.logit_scale_clamped().item(),
           "samples_per_s": samples / max(seconds, 1e-9), "skipped": sum(state.skipped.values())}
    with open(Path(tc.out) / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    if run.writer:
        for key in (*stacked, "lr", "temperature", "samples_per_s", "skipped"):
            run.writer.add_scalar(f"train/{key}", row[key], state.step)


def _evaluate(run: Run) -> dict:
    # a failure here fails the run (the checkpoint is already saved): a run that asked for
    # evaluation and exits 0 must have evaluated
    tc, step = run.tc, run.state.step
    results = evaluate(run.model, tc.manifest, tc.eval_split, workers=min(tc.workers, 2))
    run.model.train()
    log.info("step %d, %s split:\n%s", step, tc.eval_split, format_table(results))
    if run.writer:
        for direction, m in results.items():
            for k in ("R@1", "R@5", "R@10"):
                run.writer.add_scalar(f"eval/{direction}/{k}", m[k], step)
    with open(Path(tc.out) / "eval.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "split": tc.eval_split, "results": results}) + "\n")
    return results
