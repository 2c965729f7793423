"""`vlsa data import FORMAT METADATA... --media DIR --out MANIFEST`: a public dataset's metadata
and downloaded files into our manifest (docs/TRAINING.md, "Public datasets")."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from train.datasets import FORMATS


def run_import(fmt: str, sources: list[Path], out: Path, opts) -> str:
    """Import `sources` of format `fmt` into the manifest `out`; returns the one-line summary."""
    from tqdm import tqdm

    from train.datasets.common import counts, import_clips, write_manifest
    from train.datasets.files import MediaIndex

    module, function = FORMATS[fmt].split(":")
    clips_of = getattr(importlib.import_module(module), function)
    opts.index = MediaIndex(opts.media)
    with tqdm(desc=f"import {fmt}", unit="clip", file=sys.stderr, disable=None) as bar:
        result = import_clips(clips_of(sources, opts), out, probe_files=opts.probe, on_clip=bar.update)
    if not result.rows:
        raise ValueError(f"no usable clips in {', '.join(map(str, sources))} with files under {opts.media}"
                         + (f" (skipped: {counts(result.skipped)})" if result.skipped else ""))
    write_manifest(result.rows, out)
    return result.summary(out)


def scan_webdataset(folder: Path) -> str:
    from train.datasets.webdataset import is_tar_folder, scan_folder

    if not is_tar_folder(folder):
        raise ValueError(f"{folder}: no webdataset .tar shards (a folder of our own shards has index.json)")
    samples, skipped = scan_folder(folder)
    splits = ", ".join(f"{s} {sum(x.split == s for x in samples)}" for s in sorted({x.split for x in samples}))
    captioned = sum(bool(s.text) for s in samples)
    line = f"{folder}: {len(samples)} samples ({splits}), {captioned} with captions"
    if skipped:
        line += "; skipped " + ", ".join(f"{r} {n}" for r, n in skipped.most_common())
    return line + f"; train on it as it is: vlsa train --manifest {folder}"


@click.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(list(FORMATS)))
@click.argument("sources", metavar="METADATA...", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--media", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of the downloaded files, searched recursively [default: the first METADATA's folder].")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Manifest to write [default: MEDIA/manifest.jsonl].")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="audioset: class_labels_indices.csv, to name the label ids.")
@click.option("--split", help="Put every clip in this split (else the dataset's own, or the metadata file's name).")
@click.option("--test-list", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="msrvtt: the 1k-A test videos (MSRVTT_JSFUSION_test.csv or a list of ids).")
@click.option("--train-list", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="msrvtt: the training videos (MSRVTT_train.9k.csv or a list of ids).")
@click.option("--audioset", "audioset_lists", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="howto100m: keep the videos of this AudioSet segments CSV (repeatable): the paper's set.")
@click.option("--probe/--no-probe", default=True, show_default=True,
              help="Open every file: broken ones are skipped, and a file's length tells a whole video from a "
              "cut segment (without it, only names do).")
def import_command(fmt, sources, media, out, labels, split, test_list, train_list, audioset_lists, probe) -> None:
    """A public dataset's METADATA files and downloads into a manifest; see docs/TRAINING.md.

    FORMAT webdataset takes a folder of tar shards, which train and eval read as they are: it
    counts their samples."""
    from train.datasets.common import ImportOptions

    if fmt == "webdataset":
        click.echo(scan_webdataset(sources[0]))
        return
    media = media or sources[0].parent
    opts = ImportOptions(media=media, labels=labels, split=split, test_list=test_list, train_list=train_list,
                         audioset=audioset_lists, probe=probe)
    click.echo(run_import(fmt, list(sources), out or media / "manifest.jsonl", opts))
