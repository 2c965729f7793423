"""Run state: the training configuration, what a checkpoint records beyond the weights (optimizer,
schedule, step, data position, RNG states), and the SIGTERM flag."""

from __future__ import annotations

import dataclasses
import math
import random
import signal
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vlsa import VLSA
from vlsa.checkpoint import CheckpointError, load_extra, load_into, recover_folder, writing_folder
from vlsa.distributed import DistInfo
from vlsa.errors import one_line


@dataclass
class TrainConfig:
    manifest: str  # JSON Lines manifest (its "train" split is used)
    out: str = "runs/vlsa"  # run folder: checkpoint/, tensorboard/, metrics.jsonl
    preset: str = "tiny"
    overrides: dict = field(default_factory=dict)  # dotted model-config keys
    init: str | None = None  # start from this checkpoint's weights and config (+ overrides)
    # name prefixes of weights that do not come from `init` but start fresh, e.g. the token
    # embedding when the overrides change the tokenizer (vlsa.checkpoint.load_into)
    init_fresh: list = field(default_factory=list)
    batch_size: int = 32  # per process, per micro-batch
    accum: int = 1  # micro-batches per optimizer step
    steps: int = 1000  # optimizer steps
    lr: float = 1e-4  # the paper's
    weight_decay: float = 0.01  # the paper's
    warmup: int = 100  # linear warm-up steps
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of lr
    grad_clip: float = 1.0
    seed: int = 0
    workers: int = 2  # loader processes per rank
    group_size: int = 0  # > 1: hard-negative batches of clips sharing a rare caption word (GroupedSampler)
    device: str | None = None  # default: cuda if available
    # torch.compile: "none", "blocks" (each transformer block on its own: seconds to compile) or
    # "model" (the whole training forward: minutes to compile, the fastest step on a GPU);
    # true/false (the field was a switch for regional compile) read as "blocks"/"none"
    compile: str = "none"
    checkpointing: bool = False  # activation checkpointing in encoder and decoder
    # under bf16 autocast (CUDA), keep the transformers' residual stream in bf16 rather than
    # float32 (Transformer.low_precision_residual): half the bytes in the memory-bound norms and
    # residual adds (docs/PERFORMANCE.md, "Third lease"); no effect on CPU
    bf16_residual: bool = False
    ckpt_every: int = 500  # steps; also at the end and on SIGTERM
    log_every: int = 10
    eval_every: int = 0  # steps; 0 = only at the end when eval_split is set
    eval_split: str | None = None  # e.g. "test": retrieval metrics on that split
    max_minutes: float | None = None  # wall-time budget: stop, checkpoint and evaluate
    resume: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.compile = {True: "blocks", False: "none"}.get(self.compile, self.compile)
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)}, not {self.compile!r}")


COMPILE_MODES = ("none", "blocks", "model")


@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0
    position: int = 0  # samples of this epoch already consumed (per rank)
    skipped: dict = field(default_factory=dict)  # reason -> count


def lr_lambda(tc: TrainConfig):
    def f(step: int) -> float:
        if step < tc.warmup:
            return (step + 1) / tc.warmup
        progress = min(1.0, (step - tc.warmup) / max(1, tc.steps - tc.warmup))
        return tc.min_lr_ratio + (1 - tc.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


TRAINER_NAME = "trainer.pt"
TRAINER_KEYS = ("optimizer", "schedule", "state", "rng")


def save_run(model: VLSA, opt, sched, state: TrainState, tc: TrainConfig, dist: DistInfo) -> Path:
    """Write checkpoint/ as one unit (vlsa.checkpoint.writing_folder): the model folder (the step
    in its config.json's "extra") and trainer.pt. A kill at any moment leaves the previous
    checkpoint or this one, never this one's weights with the previous one's optimizer, RNG
    and data position."""
    path = Path(tc.out) / "checkpoint"
    with writing_folder(path) as partial:
        model.save_pretrained(partial, extra={"step": state.step})
        torch.save({"optimizer": opt.state_dict(), "schedule": sched.state_dict(),
                    "state": dataclasses.asdict(state), "rng": rng_state(), "world": dist.world,
                    "train_config": dataclasses.asdict(tc)}, partial / TRAINER_NAME)
    return path


def load_run(model: VLSA, opt, sched, tc: TrainConfig) -> TrainState:
    """Restore a run from its checkpoint/; a file that is unreadable, or weights and trainer
    state of different steps, is a CheckpointError naming the file."""
    path = Path(tc.out) / "checkpoint"
    recover_folder(path)
    if not (path / TRAINER_NAME).is_file():
        raise CheckpointError(f"{path}: nothing to resume (no {TRAINER_NAME})")
    weights_step = load_extra(path).get("step")
    blob = _read_trainer_state(path / TRAINER_NAME)
    try:
        state = TrainState(**blob["state"])
    except TypeError as exc:
        raise CheckpointError(f"{path / TRAINER_NAME}: not a trainer state ({exc})") from None
    if weights_step != state.step:
        raise CheckpointError(f"{path}: the weights are of step {weights_step}, {TRAINER_NAME} of step "
                              f"{state.step}; the folder mixes two checkpoints")
    load_into(model, path)
    try:
        opt.load_state_dict(blob["optimizer"])
        sched.load_state_dict(blob["schedule"])
        set_rng_state(blob["rng"])
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path / TRAINER_NAME}: does not fit this run ({one_line(exc)})") from None
    return state


def _read_trainer_state(file: Path) -> dict:
    try:
        blob = torch.load(file, weights_only=False)
    except Exception as exc:  # empty, truncated or not a torch file: the error types vary
        raise CheckpointError(f"{file}: unreadable trainer state ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or not all(k in blob for k in TRAINER_KEYS) or not isinstance(blob["state"], dict):
        raise CheckpointError(f"{file}: not a trainer state")
    return blob


class StopFlag:
    """Set by SIGTERM (a scheduler's pre-emption): the loop checkpoints and leaves cleanly."""

    def __init__(self):
        self.set = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.set = True

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)


