"""Run state: the training configuration, what a checkpoint records beyond the weights (optimizer,
schedule, step, data position, RNG states), and the SIGTERM flag."""

from __future__ import annotations

import dataclasses
import pickle
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


def described(default, help: str, **metadata) -> dataclasses.Field:
    """A field with the `help` (and any other option metadata, e.g. `metavar`) that `vlsa train`
    shows: train.cli makes an option of every TrainConfig field."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


@dataclass
class TrainConfig:
    manifest: str = field(metadata={"help": "A manifest (.jsonl) or a shard folder from `vlsa data shard`; "
                                            "its train split is used."})
    out: str = described("runs/vlsa", "Run folder: checkpoint/, tensorboard/, metrics.jsonl.")
    preset: str = described("tiny", "Model preset (ignored with --init).")
    overrides: dict = described({}, "Dotted model-config keys (--set).")
    init: str | None = described(None, "Start from this checkpoint's weights and config (+ overrides).")
    # e.g. the token embedding when the overrides change the tokenizer (vlsa.checkpoint.load_into)
    init_fresh: list = described([], "With --init: weights whose names start with PREFIX start fresh instead "
                                 "(e.g. token_embed and text_bias when --set changes the tokenizer).", metavar="PREFIX")
    # vlsa/clip_init.py says what maps where; the rest starts fresh
    init_clip: str | None = described(None, "Start the shared encoder, patch embeddings and video positions from a "
                                      "local open_clip ViT-B/16 state dict (torch.save; base preset).")
    # train/map_teacher.py: learning without forgetting, for the heatmaps
    map_teacher: str | None = described(None, "Keep this checkpoint's heatmaps: its patch maps against each clip's "
                                        "sound are taught on the clips whose pairing it knows.")
    map_teacher_weight: float = described(1.0, "Weight of the --map-teacher term.")
    # train/augment.py
    audio_augment: bool = described(False, "Hear each sound-only sample at a random speed (0.85-1.15, pitch with "
                                    "it) and gain (+-6 dB).")
    batch_size: int = described(32, "Samples per process and micro-batch.")
    accum: int = described(1, "Micro-batches per optimizer step.")
    steps: int = described(1000, "Optimizer steps.")
    lr: float = described(1e-4, "Peak learning rate (the paper's).")
    weight_decay: float = described(0.01, "AdamW weight decay (the paper's).")
    warmup: int = described(100, "Linear warm-up steps.")
    min_lr_ratio: float = described(0.0, "Cosine floor, as a fraction of --lr.")
    grad_clip: float = described(1.0, "Gradient norm clip (0: none).")
    seed: int = described(0, "Seed of the initialisation, masks and data order.")
    workers: int = described(2, "Loader processes per rank.")
    # GroupedSampler
    group_size: int = described(0, "Hard-negative batches: clips sharing a rare caption word, this many at a "
                                "time (0: plain shuffle).")
    device: str | None = described(None, "cpu, cuda (default: cuda when available).")
    # true/false (the field was a switch for regional compile) read as "blocks"/"none"
    compile: str = described("none", "torch.compile each transformer block (--compile, or --compile blocks) or the "
                             "whole training forward (--compile model: minutes to compile, the fastest GPU step).")
    checkpointing: bool = described(False, "Activation checkpointing in encoder and decoder.")
    # Transformer.low_precision_residual: half the bytes in the memory-bound norms and residual
    # adds (docs/PERFORMANCE.md, "Third lease"); no effect on CPU
    bf16_residual: bool = described(False, "GPU: keep the residual stream in bf16 under autocast (faster; "
                                    "default float32).")
    ckpt_every: int = described(500, "Checkpoint every this many steps (also at the end and on SIGTERM).")
    log_every: int = described(10, "Log the losses of every this many steps.")
    eval_every: int = described(0, "Evaluate every this many steps (0: only at the end, with --eval-split).")
    eval_split: str | None = described(None, "Evaluate retrieval on this split (e.g. test).")
    max_minutes: float | None = described(None, "Wall-time budget; stops cleanly with a checkpoint.")
    resume: bool = described(False, "Continue the run in --out exactly.")
    progress: bool = described(True, "A progress bar on stderr.")

    def __post_init__(self) -> None:
        self.compile = {True: "blocks", False: "none"}.get(self.compile, self.compile)
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile must be one of {', '.join(COMPILE_MODES)}, not {self.compile!r}")
        if self.init and self.init_clip:
            raise ValueError("init and init_clip both name a start: give one")


COMPILE_MODES = ("none", "blocks", "model")


@dataclass
class TrainState:
    step: int = 0
    epoch: int = 0
    position: int = 0  # samples of this epoch already consumed (per rank)
    skipped: dict = field(default_factory=dict)  # reason -> count


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
    blob = read_trainer_state(path / TRAINER_NAME)
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


# What trainer.pt holds besides tensors and plain Python values: numpy's RNG state, an array of
# uint32 (np.random.get_state). Unpickling may build only these and torch's own tensor types
# (weights_only=True): any other object, whose unpickling could run code, is refused.
# numpy 2 moved numpy.core to numpy._core (pyproject allows numpy 1.24 on); np.dtypes is 1.25+.
_MULTIARRAY = (np._core if hasattr(np, "_core") else np.core).multiarray
NUMPY_ARRAY_TYPES = (np.ndarray, np.dtype, type(np.dtype(np.uint32)), _MULTIARRAY._reconstruct)


def read_trainer_state(file: Path) -> dict:
    """trainer.pt's contents, or a CheckpointError naming the file: an unreadable file, one that
    is not a trainer state, and one holding any other object (never unpickled)."""
    try:
        with torch.serialization.safe_globals(list(NUMPY_ARRAY_TYPES)):
            blob = torch.load(file, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(_refusal(file)) from None
    except Exception as exc:  # empty, truncated or not a torch file: the error types vary
        raise CheckpointError(f"{file}: unreadable trainer state ({type(exc).__name__})") from None
    if not isinstance(blob, dict) or not all(k in blob for k in TRAINER_KEYS) or not isinstance(blob["state"], dict):
        raise CheckpointError(f"{file}: not a trainer state")
    return blob


def _refusal(file: Path) -> str:
    """Why a file weights_only refused: the objects it names, if it is a torch file at all."""
    try:
        objects = torch.serialization.get_unsafe_globals_in_checkpoint(file)
    except Exception:  # not a zip of pickles: damaged, or not a torch file
        objects = []
    allowed = {f"{t.__module__}.{t.__qualname__}" for t in NUMPY_ARRAY_TYPES}
    objects = [name for name in objects if name not in allowed]
    if not objects:
        return f"{file}: unreadable trainer state (not a torch file)"
    return (f"{file}: refused: it holds Python objects a trainer state never holds ({', '.join(objects[:3])}), "
            "whose loading could run code")


class StopFlag:
    """Set by SIGTERM (a scheduler's pre-emption): the loop checkpoints and leaves cleanly."""

    def __init__(self):
        self.set = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        self.set = True

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)


