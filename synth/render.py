"""One synthetic clip drawn, synthesised and written, and whole sets of them with their manifest."""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synth.attributes import SOUND_PHRASES, TEMPLATES, ClipSpec, caption, plan_clips
from synth.scene import make_sprites, render_frames
from synth.sound import synthesize
from vlsa.encode import write_mp4

# Processes rendering clips by default, one per CPU (each clip's encoder runs on one thread) up to 8.
WORKERS = min(os.cpu_count() or 1, 8)


@dataclass(frozen=True)
class RenderSettings:
    """How every clip of a set is rendered and where it is written."""

    out_dir: str
    seconds: float
    fps: float
    size: int
    sample_rate: int


def render_clip(spec: ClipSpec, cfg: RenderSettings) -> dict:
    """Draw, synthesise and write one clip; return its manifest row."""
    rng = np.random.default_rng(list(spec.entropy))
    frames = max(1, round(cfg.seconds * cfg.fps))
    sprites = make_sprites(rng, spec.attrs, frames, cfg.fps, cfg.size)
    pictures, boxes = render_frames(sprites, frames, cfg.size)
    events = [round(i / cfg.fps, 4) for i in sprites[-1].track.events]
    audio = synthesize(spec.attrs, events, cfg.seconds, cfg.sample_rate, rng)
    rel = f"clips/{spec.index:05d}.mp4"
    write_mp4(Path(cfg.out_dir) / rel, pictures, cfg.fps, audio, cfg.sample_rate)
    text = caption(spec.attrs, int(rng.integers(len(TEMPLATES))), int(rng.integers(len(SOUND_PHRASES[spec.attrs.motion]))))
    return {"video": rel, "text": text, "split": spec.split, "start": 0.0, "end": float(cfg.seconds),
            "attributes": spec.attrs.to_dict(),
            "boxes": [[round(v / cfg.size, 4) for v in b] for b in boxes],
            "fps": cfg.fps, "events": events}


def render_all(specs: list[ClipSpec], cfg: RenderSettings, out_dir: Path, workers: int = 1,
               on_clip: Callable[[], object] | None = None) -> Path:
    """Render every clip (in order, whatever `workers`) and write manifest.jsonl."""
    if cfg.size % 2 or cfg.size < 16:
        raise ValueError(f"size must be an even number of pixels >= 16 (yuv420p), not {cfg.size}")
    if cfg.seconds <= 0 or cfg.fps <= 0:
        raise ValueError("seconds and fps must be positive")
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    render = functools.partial(render_clip, cfg=cfg)
    manifest = out_dir / "manifest.jsonl"
    with contextlib.ExitStack() as stack:
        f = stack.enter_context(open(manifest, "w"))
        rows = map(render, specs)  # one worker: render here, no process start-up
        if workers > 1:  # imap keeps the order of `specs`, so the manifest does not depend on workers
            rows = stack.enter_context(multiprocessing.get_context().Pool(workers)).imap(render, specs, 4)
        for row in rows:
            f.write(json.dumps(row) + "\n")
            if on_clip is not None:
                on_clip()
    return manifest


def generate(out_dir: str | Path, n: int, seed: int, split: str = "train", seconds: float = 2.0,
             fps: float = 12, size: int = 96, sample_rate: int = 16000,
             unique_captions: bool | None = None, workers: int = 1,
             on_clip: Callable[[], object] | None = None) -> Path:
    """Write `n` clips and their manifest under `out_dir`; return the manifest's path.

    unique_captions (default: True unless split is "train") gives every clip its own caption and
    raises ValueError if n exceeds the number of distinct captions. `on_clip` is called once per
    finished clip (a progress bar's update).
    """
    unique = split != "train" if unique_captions is None else unique_captions
    specs = plan_clips(n, seed, split, unique)
    cfg = RenderSettings(str(out_dir), seconds, fps, size, sample_rate)
    return render_all(specs, cfg, Path(out_dir), workers, on_clip)


def generate_splits(out_dir: str | Path, n_train: int, n_test: int, seed: int, split: str = "train",
                    seconds: float = 2.0, fps: float = 12, size: int = 96, sample_rate: int = 16000,
                    workers: int = 1, on_clip: Callable[[], object] | None = None) -> Path:
    """One manifest with `n_train` clips of `split` then `n_test` test clips with unique captions.
    Clip seeds carry the split, so training clips never share a seed with test clips."""
    if split == "test":
        raise ValueError("the extra test clips need the main split to be train or val, not test")
    specs = plan_clips(n_train, seed, split, unique=split != "train")
    specs += plan_clips(n_test, seed, "test", unique=True, first_index=n_train)
    cfg = RenderSettings(str(out_dir), seconds, fps, size, sample_rate)
    return render_all(specs, cfg, Path(out_dir), workers, on_clip)
