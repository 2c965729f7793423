"""The training loop: `run_steps` runs optimizer steps until the budget (steps, wall time,
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
from pathlib import Path

import torch
from tqdm import tqdm

from train.data import ClipDataset, ResumableSampler, make_loader
from train.distributed import gather_with_grad
from train.evaluate import evaluate, format_table
from train.state import StopFlag, TrainConfig, TrainState, save_run
from vlsa import VLSA
from vlsa.batch import to_device
from vlsa.distributed import DistInfo

log = logging.getLogger(__name__)
POOL_STAT_BATCHES = 16  # x batch size: 512 samples at the tiny recipe's batch of 32


class NonFiniteLoss(RuntimeError):
    pass


def run_steps(model: VLSA, wrapped, opt, sched, dataset: ClipDataset, sampler: ResumableSampler,
              state: TrainState, tc: TrainConfig, dist: DistInfo, writer) -> dict:
    """`wrapped` is `model` as the training step calls it: inside DDP and/or torch.compile."""
    stop = StopFlag()
    deadline = time.time() + 60 * tc.max_minutes if tc.max_minutes else float("inf")
    bar = tqdm(total=tc.steps, initial=state.step, disable=not (dist.main and tc.progress),
               desc="train", unit="step", dynamic_ncols=True)
    outputs: list[dict[str, torch.Tensor]] = []  # of the steps since the last log step
    since, reason = time.time(), "steps"
    try:
        while state.step < tc.steps and reason == "steps":
            for batch, micro in _micro_batches(dataset, sampler, state, tc):
                out = _forward_backward(model, wrapped, batch, micro, tc, dist)
                if micro < tc.accum - 1:
                    continue
                _optimizer_step(model, opt, sched, tc)
                state.step += 1
                bar.update(1)
                outputs.append({k: v.detach() for k, v in out.items()})
                if state.step % tc.log_every == 0 or state.step == tc.steps:
                    _log_steps(outputs, state, tc, dist, writer, model, sched, time.time() - since)
                    outputs, since = [], time.time()
                saving = dist.main and tc.ckpt_every and state.step % tc.ckpt_every == 0
                evaluating = tc.eval_every and tc.eval_split and state.step % tc.eval_every == 0 and dist.main
                if saving or evaluating:
                    refresh_pool_statistics(model, dataset, tc, dist)
                if saving:
                    save_run(model, opt, sched, state, tc, dist)
                if evaluating:
                    _evaluate(model, tc, writer, state.step)
                reason = ("steps" if state.step < tc.steps else "done") if not stop.set else "SIGTERM"
                if time.time() > deadline:
                    reason = "time budget"
                if reason != "steps":
                    break
    finally:
        stop.restore()
        bar.close()
    if outputs:
        _log_steps(outputs, state, tc, dist, writer, model, sched, time.time() - since)
    if dist.main:
        if reason != "SIGTERM":  # a scheduler's grace period is short: save at once
            refresh_pool_statistics(model, dataset, tc, dist)
        path = save_run(model, opt, sched, state, tc, dist)
        log.info("stopped (%s) at step %d; checkpoint %s", reason, state.step, path)
    result = {"step": state.step, "stopped_by": reason, "skipped": dict(state.skipped)}
    if tc.eval_split and dist.main and reason != "SIGTERM":
        result["eval"] = _evaluate(model, tc, writer, state.step)
    return result


def refresh_pool_statistics(model: VLSA, dataset, tc: TrainConfig, dist: DistInfo) -> None:
    """Before weights are saved or evaluated: pool_norm's statistics from POOL_STAT_BATCHES fixed
    training batches (VLSAModel.estimate_pool_statistics). Training itself uses batch statistics
    only, and this touches neither the RNG nor the data position, so resumed runs stay exact."""
    if not model.config.pool_norm:
        return
    sampler = ResumableSampler(len(dataset), tc.seed + 1)
    loader = make_loader(dataset, sampler, tc.batch_size, min(tc.workers, 2))
    batches = []
    for batch in itertools.islice(loader, POOL_STAT_BATCHES):
        batch.pop("skipped")
        if "video" in batch:
            batches.append(to_device(batch, dist.device))
    with torch.random.fork_rng(devices=[dist.device] if dist.device.type == "cuda" else []):
        model.estimate_pool_statistics(batches)


def _micro_batches(dataset, sampler, state: TrainState, tc: TrainConfig):
    """Yield (batch, micro index) from the recorded data position on, epoch after epoch,
    counting skipped samples into the state."""
    micro = 0
    while True:
        dataset.epoch = state.epoch
        sampler.set_position(state.epoch, state.position)
        for batch in make_loader(dataset, sampler, tc.batch_size, tc.workers):
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


def _forward_backward(model, wrapped, batch, micro: int, tc: TrainConfig, dist: DistInfo):
    batch = to_device(batch, dist.device)
    cuda = dist.device.type == "cuda"
    # DDP: reduce gradients only on the last micro-batch of an accumulation
    sync = contextlib.nullcontext() if micro == tc.accum - 1 or dist.world == 1 else wrapped.no_sync()
    with sync, torch.autocast(dist.device.type, dtype=torch.bfloat16, enabled=cuda):
        out = wrapped(batch, gather=gather_with_grad if dist.world > 1 else None)
        (out["loss"] / tc.accum).backward()
    return out


def _optimizer_step(model, opt, sched, tc: TrainConfig) -> None:
    if tc.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)


def _log_steps(outputs, state: TrainState, tc: TrainConfig, dist: DistInfo, writer, model, sched, seconds):
    """One host read for the outputs of the steps since the last log step; scalars to TensorBoard
    and metrics.jsonl."""
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
           "lr": sched.get_last_lr()[0], "temperature": 1 / model.logit_scale_clamped().item(),
           "samples_per_s": samples / max(seconds, 1e-9), "skipped": sum(state.skipped.values())}
    with open(Path(tc.out) / "metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    if writer:
        for key in (*stacked, "lr", "temperature", "samples_per_s", "skipped"):
            writer.add_scalar(f"train/{key}", row[key], state.step)


def _evaluate(model: VLSA, tc: TrainConfig, writer, step: int) -> dict:
    # a failure here fails the run (the checkpoint is already saved): a run that asked for
    # evaluation and exits 0 must have evaluated
    results = evaluate(model, tc.manifest, tc.eval_split, workers=min(tc.workers, 2))
    model.train()
    log.info("step %d, %s split:\n%s", step, tc.eval_split, format_table(results))
    if writer:
        for direction, m in results.items():
            for k in ("R@1", "R@5", "R@10"):
                writer.add_scalar(f"eval/{direction}/{k}", m[k], step)
    with open(Path(tc.out) / "eval.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "split": tc.eval_split, "results": results}) + "\n")
    return results
