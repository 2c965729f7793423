"""`vlsa data ...`, `vlsa train`, `vlsa eval`, `vlsa finetune`: registered as vlsa.commands."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click


@click.group()
def data() -> None:
    """Make and prepare data: synthetic clips, manifests, shards."""


@data.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--n", "n", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Clips of --split to write.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="train", show_default=True,
              help="Split of the --n clips; val and test clips get unique captions.")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True)
@click.option("--fps", type=click.IntRange(min=1), default=12, show_default=True)
@click.option("--size", type=click.IntRange(min=16), default=96, show_default=True,
              help="Frame side in pixels (even).")
@click.option("--test", "n_test", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also write this many test clips with unique captions into the same manifest.")
@click.option("--workers", type=click.IntRange(min=1), default=min(os.cpu_count() or 1, 8),
              show_default=True, help="Processes rendering clips; the output does not depend on it.")
def synth(out: Path, n: int, seed: int, split: str, seconds: float, fps: int, size: int, n_test: int,
          workers: int) -> None:
    """Write synthetic clips whose caption, picture and sound agree, and OUT/manifest.jsonl."""
    from tqdm import tqdm  # imported here so `vlsa --help` stays fast

    from train.synth import all_attributes, generate, generate_splits

    settings = dict(seconds=seconds, fps=fps, size=size, workers=workers)
    start = time.perf_counter()
    with tqdm(total=n + n_test, unit="clip", desc="synth", file=sys.stderr) as bar:
        if n_test:
            manifest = generate_splits(out, n, n_test, seed, split=split, on_clip=bar.update, **settings)
        else:
            manifest = generate(out, n, seed, split=split, on_clip=bar.update, **settings)
    counts = f"{n} {split}" + (f" + {n_test} test" if n_test else "")
    click.echo(f"wrote {counts} clips ({len(all_attributes())} possible captions) to {manifest} "
               f"in {time.perf_counter() - start:.1f} s")
