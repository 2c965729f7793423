"""Indexing on several ranks (GPUs, machines) under torchrun, into one catalog.

    torchrun --nproc-per-node 8 -m vlsa.cli index ~/Videos --db library.db
    torchrun --nnodes 2 --node-rank R --master-addr HOST --nproc-per-node 8 \
        -m vlsa.cli index /shared/videos --db /shared/library.db

1. Rank 0 binds the catalog, scans, removes the files seen gone (as one process does) and plans:
   the files to embed, less those a part file already holds (below), split among the ranks by
   size. The plan reaches every rank by a broadcast, so all agree on one scan.
2. Each rank embeds its share with the ordinary Indexer (decode workers and all) into its own
   part file, DB.parts/rank-R.db: a catalog with the same settings, committed batch by batch.
3. When every rank is done (a barrier), rank 0 copies the files from the parts into the catalog
   in scan order, the order one process writes them in: media ids, window ids, rows and vector
   bytes come out as one process makes them (every batch runs at the full batch size, so a
   vector does not depend on which rank or batch it was embedded in). Then the parts go.

Restart: a rank that dies ends the job (torchrun stops the others, or the barrier fails). The
catalog is then as before the run or holds a prefix of the merge, and each part holds the files
its rank committed. A rerun, with any number of ranks, plans again: a file the catalog holds is
unchanged as usual; a file a part holds with the same size and modification time is merged
from it, not embedded again; a part made with other settings (or unreadable) is deleted.

Why part files rather than gathering the vectors to rank 0 over the network: they survive a dead
rank (SQLite's commits give the restart for free, as for one process), the ranks never wait on
one another until the end, and rank 0 holds one merge batch in memory. They need the catalog's
folder to be shared by the ranks' machines, as the library already must be (every rank opens the
files by the paths rank 0 scanned).

Why torch.distributed (torchrun) over Ray Data: it is how the trainer already runs on many GPUs
and machines, it is installed (Ray is not, and brings its own cluster runtime), and indexing is a
map over files plus one merge, which needs only a broadcast and a barrier.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist

from catalog.indexer import Indexer, IndexReport, record_tower_vectors
from catalog.scan import FileStat
from catalog.store import Catalog, CatalogError, FileRecord, Settings
from vlsa.api import VLSA

log = logging.getLogger(__name__)

# The barrier waits for the slowest rank's share: hours for a large library, far past the
# process group's default timeout (30 minutes). A dead rank is noticed sooner: its sockets close.
WAIT = timedelta(days=7)
MERGE_WINDOWS = 4096  # windows copied per merge transaction: bounded memory, few commits


def parts_folder(db_path: str | os.PathLike) -> Path:
    """Where the ranks' part files live: beside the catalog."""
    return Path(f"{db_path}.parts")


def split_by_size(files: Sequence[FileStat], world: int) -> list[list[int]]:
    """Positions of `files` for each rank, the largest first to the rank with the fewest bytes so
    far (ties: the lower rank), each share in list order. Deterministic: every rank computes the
    same, and a rerun with the same files the same."""
    shares: list[list[int]] = [[] for _ in range(world)]
    loads = [0] * world
    for i in sorted(range(len(files)), key=lambda i: (-files[i].size, i)):
        rank = min(range(world), key=lambda r: (loads[r], r))
        shares[rank].append(i)
        loads[rank] += files[i].size
    return [sorted(share) for share in shares]


def index_distributed(db_path: str | os.PathLike, model: VLSA, roots: Sequence[str], rebuild: bool = False,
                      prune: bool = False, **options) -> IndexReport:
    """Run on every rank of a started process group: each embeds its share, rank 0 merges.

    `options` go to each rank's Indexer (window, stride, batch_size, checkpoint, workers,
    progress: shown on rank 0 only). Only rank 0 opens the catalog. Rank 0 returns the run's
    report (files merged into the catalog, `reused` of them from an earlier run's parts); the
    others an empty one.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    began = time.perf_counter()
    group = dist.new_group(backend="gloo", timeout=WAIT)  # objects travel on the CPU, even beside NCCL
    parts = parts_folder(db_path)
    options["progress"] = options.get("progress", False) and rank == 0
    with contextlib.ExitStack() as stack:
        plan: list = [None]
        if rank == 0:
            catalog = stack.enter_context(Catalog(db_path))
            try:
                plan[0] = _plan(Indexer(catalog, model, **options), roots, rebuild, prune, parts, world)
            except CatalogError as e:
                plan[0] = str(e)  # every rank raises it: the job ends with one line, not a hang
        dist.broadcast_object_list(plan, src=0, group=group)
        if isinstance(plan[0], str):
            raise CatalogError(plan[0])
        report, todo, shares = plan[0]
        with Catalog(parts / f"rank-{rank}.db") as part:
            indexer = Indexer(part, model, **options)
            part.bind(indexer.settings())
            indexer.index_files([todo[i] for i in shares[rank]], IndexReport())
        dist.barrier(group=group)
        if rank != 0:
            return IndexReport()
        embedded = {todo[i].path for share in shares for i in share}
        _merge(catalog, parts, todo, embedded, report)
        record_tower_vectors(catalog, model)
    shutil.rmtree(parts)
    report.wall_seconds = time.perf_counter() - began
    return report


def _plan(indexer: Indexer, roots: Sequence[str], rebuild: bool, prune: bool, parts: Path,
          world: int) -> tuple[IndexReport, list[FileStat], list[list[int]]]:
    """Rank 0: the report so far, the files to bring in (scan order) and each rank's share of
    those no part holds already."""
    report, todo = indexer.plan(roots, rebuild=rebuild, prune=prune)
    parts.mkdir(exist_ok=True)
    held = _held(parts, indexer.settings())
    to_embed = [i for i, f in enumerate(todo) if held.get(f.path) != (f.size, f.mtime_ns)]
    shares = split_by_size([todo[i] for i in to_embed], world)
    return report, todo, [[to_embed[j] for j in share] for share in shares]


def _held(parts: Path, settings: Settings) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of the files the parts hold; parts made with other settings, or
    that are not catalogs, are deleted (a part is only ever a copy of work to be redone)."""
    held: dict[str, tuple[int, int]] = {}
    for path in _part_files(parts):
        try:
            with Catalog(path, create=False) as part:  # writable: replays what a killed rank left in its WAL
                if part.settings is not None and not part.settings.differences(settings):
                    held.update(part.known_files())
                    continue
        except CatalogError as e:
            log.info("%s: not a part file to reuse (%s)", path, e)
        for leftover in path.parent.glob(path.name + "*"):  # with its -wal and -shm
            leftover.unlink()
    return held


def _part_files(parts: Path) -> list[Path]:
    return sorted(parts.glob("rank-*.db")) if parts.is_dir() else []


def _merge(catalog: Catalog, parts: Path, todo: Sequence[FileStat], embedded: set[str], report: IndexReport) -> None:
    """Copy each file of `todo` from the part holding it (with its size and modification time)
    into the catalog, in order, a few thousand windows per transaction."""
    opened = [Catalog(path, create=False) for path in _part_files(parts)]
    try:
        holders = [part.known_files() for part in opened]
        batch: list[FileRecord] = []
        windows = 0
        for stat in todo:
            source = next((p for p, held in zip(opened, holders, strict=True)
                           if held.get(stat.path) == (stat.size, stat.mtime_ns)), None)
            if source is None:
                raise CatalogError(f"{stat.path}: in no part file after every rank finished; run again")
            batch.append(source.file_record(stat.path))
            windows += len(batch[-1].windows)
            if stat.path not in embedded:
                report.reused += 1
            if windows >= MERGE_WINDOWS:
                _write(catalog, batch, report)
                batch, windows = [], 0
        _write(catalog, batch, report)
    finally:
        for part in opened:
            part.close()


def _write(catalog: Catalog, records: list[FileRecord], report: IndexReport) -> None:
    catalog.write_files(records)
    for record in records:
        report.add(record)
