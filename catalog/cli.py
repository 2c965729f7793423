"""`vlsa index` and `vlsa search`: the catalog's commands.

    vlsa index ~/Videos ~/Sounds --db library.db --checkpoint ckpt/
    vlsa index ~/Videos --db library.db                      # the checkpoint shipped in the package
    vlsa index ~/Videos --db library.db --preset tiny        # an untrained model, to try things
    vlsa index ~/Videos --db library.db --workers 8          # 8 decoding processes
    torchrun --nproc-per-node 4 -m vlsa.cli index ~/Videos --db library.db   # 4 GPUs (catalog/distributed.py)
    vlsa search "a dog barks" --db library.db --top 5 --per-file
    vlsa search --audio bark.wav --db library.db --kind video --json
    vlsa search --like 1234 --db library.db

Results go to stdout, progress and diagnostics to stderr. Errors a user can cause leave as one
line (vlsa.cli.main turns CatalogError, a ValueError, into "error: ...").
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import time
from collections.abc import Iterator

import click
from click.core import ParameterSource

from catalog import ann as ann_index
from catalog import text_export
from catalog.ann import ANN_MIN_VECTORS
from catalog.connection import is_read_only_error
from catalog.paths import DEMO_CATALOG, demo_dir, display_path
from catalog.records import CatalogReadOnly
from catalog.search import BACKENDS
from catalog.service import KINDS, Hit, SearchService
from catalog.store import BATCH_SIZE, MAX_ID, STORED_MODALITIES, WINDOW_MODALITIES, Catalog, CatalogError
from vlsa.config import list_presets

log = logging.getLogger(__name__)

DB_HELP = "The catalog file (SQLite)."
DB_ENV = "VLSA_DB"  # `vlsa search`'s catalog when --db is not given
MIN_SECONDS = 0.1  # shortest window or stride: a few hops of the audio front end; shorter only multiplies windows


class Seconds(click.FloatRange):
    """A finite number of seconds, at least MIN_SECONDS (FloatRange alone lets nan and inf pass)."""

    name = "seconds"

    def __init__(self):
        super().__init__(min=MIN_SECONDS)

    def convert(self, value, param, ctx) -> float:
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return seconds


@click.command()
# LIBRARY need not exist: a folder that is gone for good is pruned with --prune (the indexer
# refuses a missing one without it).
@click.argument("library", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False, path_type=str), help=DB_HELP)
@click.option("--checkpoint", type=click.Path(exists=True, file_okay=False, path_type=str),
              help="Checkpoint folder to embed with [default: the one shipped in the package].")
@click.option("--preset", type=click.Choice(list_presets()),
              help="Instead of a checkpoint: an untrained model of this preset, seeded (for trying things).")
@click.option("--window", type=Seconds(),
              help="Seconds per window [default: the model's clip length].")
@click.option("--stride", type=Seconds(),
              help="Seconds between window starts [default: the window].")
@click.option("--batch-size", default=BATCH_SIZE, show_default=True, type=click.IntRange(min=1),
              help="Windows per model call (and at most per commit).")
@click.option("--workers", type=click.IntRange(min=0), help="Processes decoding media while the model embeds "
              "(0: the model's own process decodes) [default: the usable cores less one, shared among "
              "torchrun's ranks on this machine].")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Where the model embeds [default: cuda when "
              "there is a GPU; under torchrun each rank takes its LOCAL_RANK's GPU].")
@click.option("--rebuild", is_flag=True, help="Re-index everything if the catalog was built with another "
              "checkpoint or window.")
@click.option("--prune", is_flag=True, help="Take a LIBRARY folder, or a subfolder, that is missing or holds "
              "no media as emptied, and allow removing more than half the catalog at once (without it those "
              "are errors that change nothing, as an unmounted drive looks the same).")
@click.option("--ann/--no-ann", default=None, help="Build (or skip) the approximate search index beside the "
              f"catalog [default: for a modality of at least {ANN_MIN_VECTORS:,} vectors].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def index(library: tuple[str, ...], db_path: str, checkpoint: str | None, preset: str | None,
          window: float | None, stride: float | None, batch_size: int, workers: int | None, device: str | None,
          rebuild: bool, prune: bool, ann: bool | None, quiet: bool, as_json: bool) -> None:
    """Index the media files under LIBRARY (folders or files) into a catalog.

    Incremental: files with the size and modification time recorded are skipped, changed files
    are embedded again, and recorded files seen gone from a folder of LIBRARY are removed (those
    under a folder that cannot be read are kept). A file that cannot be decoded is recorded with
    the reason and skipped until it changes.

    Under torchrun each rank embeds a share of the files and rank 0 writes them all into the
    catalog, as one process would (catalog/distributed.py); a rerun after a rank died reuses
    what the ranks had finished.
    """
    # Imported here, not with the module: a text search needs none of them, nor torch (1.5 s).
    import torch

    from catalog.decode import default_workers
    from catalog.distributed import index_distributed
    from catalog.indexer import Indexer
    from catalog.lock import indexing
    from catalog.model import load_model
    from vlsa.distributed import cleanup, init_distributed

    if device == "cuda" and not torch.cuda.is_available():
        raise click.BadParameter("no CUDA GPU is usable here", param_hint="--device")
    model, checkpoint_path = load_model(checkpoint, preset)
    options = {"window": window, "stride": stride, "batch_size": batch_size, "checkpoint": checkpoint_path,
               "progress": not quiet, "workers": default_workers() if workers is None else workers}
    ranks = init_distributed(device)
    try:
        # One indexer a catalog (catalog/lock.py): rank 0 holds the lock for the job; if it is
        # refused, rank 0 leaves with the one line and torchrun stops the other ranks.
        with _sqlite_errors(db_path), indexing(db_path, "vlsa index") if ranks.main else contextlib.nullcontext():
            if ranks.world > 1:
                report = index_distributed(db_path, model.to(ranks.device), library, rebuild, prune, **options)
            else:
                with Catalog(db_path) as catalog:
                    report = Indexer(catalog, model.to(ranks.device), **options).run(library, rebuild, prune)
            if ranks.main and ann is not False:  # the catalog is complete only on rank 0, after the merge
                with Catalog(db_path) as catalog:
                    _update_ann(catalog, 1 if ann else ANN_MIN_VECTORS)
            if ranks.main:
                _update_text_export(db_path, model)
    finally:
        cleanup()
    if not ranks.main:
        return
    for path, reason in report.skipped:
        click.echo(f"skipped: {display_path(path)}: {reason}", err=True)
    for _, error in report.failed:
        click.echo(f"failed: {error}", err=True)
    rate = report.media_seconds / max(report.wall_seconds, 1e-9)
    click.echo(f"indexed {report.indexed} files ({report.windows} windows, {report.media_seconds:.0f} media-s, "
               f"{rate:.1f}x real time), {report.unchanged} unchanged, {report.removed} removed, "
               f"{len(report.failed)} failed" + (f", {report.reused} of these taken from an interrupted run's parts"
                                                 if report.reused else ""), err=True)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))


@click.command()
@click.argument("query", required=False)
@click.option("--db", "db_path", envvar=DB_ENV, show_envvar=True,
              type=click.Path(exists=True, dir_okay=False, path_type=str),
              help=f"{DB_HELP} [default: ${DB_ENV}, else the catalog `vlsa demo` made, if any]")
@click.option("--audio", type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="Search with a sound file instead of words.")
@click.option("--like", "like", type=click.IntRange(min=1, max=MAX_ID),
              help="Search with a window of the catalog (its id).")
@click.option("--kind", type=click.Choice(KINDS), default="any", show_default=True,
              help="Which windows' vectors compete: video, audio or both.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(min=1), help="How many results.")
@click.option("--per-file", is_flag=True, help="Only the best window of each file.")
@click.option("--folder", type=click.Path(path_type=str), help="Only files under this folder.")
@click.option("--checkpoint", type=click.Path(exists=True, file_okay=False, path_type=str),
              help="The checkpoint to embed the query with [default: the one the catalog records].")
@click.option("--backend", type=click.Choice(BACKENDS), default="numpy", show_default=True,
              help="Exact top-k by a matrix scan or by sqlite-vec.")
@click.option("--exact/--approximate", default=None, help="Never use the approximate index, or use it "
              f"whatever the size [default: from {ANN_MIN_VECTORS:,} vectors, where `vlsa index` built one].")
@click.option("--json", "as_json", is_flag=True, help="Results as a JSON array.")
def search(query: str | None, db_path: str | None, audio: str | None, like: int | None, kind: str, top: int,
           per_file: bool, folder: str | None, checkpoint: str | None, backend: str, exact: bool | None,
           as_json: bool) -> None:
    """Find the windows of a catalog that match QUERY (words), --audio FILE or --like ID.

    Each result: score, its strength in words (by the checkpoint's calibration.json; "uncalibrated"
    without one), modality, start-end seconds, path, and the window id (for --like).
    """
    given = [name for name, value in (("QUERY", query), ("--audio", audio), ("--like", like)) if value is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of QUERY, --audio FILE, --like ID"
                               + (f" (got {', '.join(given)})" if given else ""))
    db_path = _catalog_to_search(db_path)
    with _sqlite_errors(db_path):
        exact_below = {None: ANN_MIN_VECTORS, True: None, False: 0}[exact]
        service = SearchService.open(db_path, checkpoint=checkpoint, backend=backend, exact_below=exact_below)
        hits, matches = _search(service, query, audio, like,
                                {"kind": kind, "top": top, "per_file": per_file, "folder": folder})
    _print_hits(hits, matches, as_json)


def _catalog_to_search(db_path: str | None) -> str:
    """--db, else $VLSA_DB (click reads both), else the demo's catalog; a UsageError without any.
    Says on stderr which catalog, unless it was named on the command line."""
    if db_path is None:
        demo = demo_dir() / DEMO_CATALOG
        if not demo.is_file():
            raise click.UsageError(f"no catalog to search: pass --db FILE or set ${DB_ENV} "
                                   f"(`vlsa demo` makes one, in {display_path(str(demo.parent))})")
        db_path, source = str(demo), "the demo's catalog"
    else:
        source = f"${DB_ENV}"
    if click.get_current_context().get_parameter_source("db_path") != ParameterSource.COMMANDLINE:
        click.echo(f"searching {display_path(os.path.abspath(db_path))} ({source}; --db to name another)", err=True)
    return db_path


def _update_ann(catalog: Catalog, min_vectors: int) -> None:
    """Build or bring up to date each modality's approximate index, saying so on stderr."""
    for modality in STORED_MODALITIES:  # a tower checkpoint's own sound vectors too: they are searched
        began = time.perf_counter()
        outcome = ann_index.update(catalog, modality, min_vectors)
        if outcome in ("built", "updated"):
            click.echo(f"approximate index ({modality}): {outcome} in {time.perf_counter() - began:.1f} s", err=True)


def _update_text_export(db_path: str, model) -> None:
    """Write the catalog's text query encoder if it is missing (catalog/text_export.py), saying so."""
    began = time.perf_counter()
    path = text_export.export_path(db_path, model.fingerprint())
    if not path.is_file() and text_export.update(db_path, model) is not None:
        click.echo(f"text query encoder for fast text searches: written in {time.perf_counter() - began:.1f} s",
                   err=True)


def _search(service: SearchService, query: str | None, audio: str | None, like: int | None,
            options: dict) -> tuple[list[Hit], list[str]]:
    """The hits, and each one's strength in words (vlsa/calibration.py)."""
    try:
        if query is not None:
            hits, sources = service.search_text(query, **options), dict.fromkeys(WINDOW_MODALITIES, "text")
        elif audio is not None:
            hits = service.search_audio(audio, **options)
            sources = dict.fromkeys([*WINDOW_MODALITIES, service.sound_modality()], "audio")
        else:
            hits, sources = service.search_like(like, **options), service.like_query(like)[1]
        return hits, [service.words(h, sources[h.modality]) for h in hits]
    finally:
        service.catalog.close()


@contextlib.contextmanager
def _sqlite_errors(db_path: str) -> Iterator[None]:
    """SQLite's own errors (a locked or damaged file) as one line, like the catalog's."""
    try:
        yield
    except sqlite3.Error as e:
        if is_read_only_error(e):
            raise CatalogReadOnly(db_path) from None
        raise CatalogError(f"{db_path}: {e}") from None


def _print_hits(hits: list[Hit], matches: list[str], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([{**h.to_dict(), "match": m} for h, m in zip(hits, matches, strict=True)], indent=2))
        return
    if not hits:
        click.echo("no results", err=True)
    for h, m in zip(hits, matches, strict=True):
        click.echo(f"{h.score:.3f}\t{m}\t{h.modality}\t{h.start:.1f}-{h.end:.1f}\t{h.display_path}\t#{h.window_id}")
