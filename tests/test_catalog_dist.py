"""catalog: indexing with decode workers and with several torch.distributed ranks (gloo, CPU).

The ranks run `vlsa index` (the click command) in processes forked from the test's, with
torchrun's environment: a rank starts at once instead of importing torch afresh. Every process
embeds on one thread (a forked OpenMP pool is unsafe; one thread is safe and makes the reference
and the ranks run the same arithmetic).
"""

import contextlib
import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from mediagen import make_audio, make_truncated, make_video
from test_catalog_cli import dump

from catalog.cli import index
from catalog.store import Catalog

BATCH = "4"  # windows per model call: small, so a rank commits several times
OPTIONS = ["--preset", "tiny", "--batch-size", BATCH, "-q", "--json"]


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """Nine files of one to three windows, tracks of every kind, two of them broken."""
    lib = tmp_path_factory.mktemp("dist") / "lib"
    (lib / "sub").mkdir(parents=True)
    make_video(lib / "av.mp4", 5.0)
    make_video(lib / "silent.mp4", 3.0, audio=False)
    for i in range(5):
        make_audio(lib / "sub" / f"tone{i}.wav", 1.0 + i, tone_hz=220.0 * (i + 1))
    make_truncated(lib / "av.mp4", lib / "sub" / "truncated.mp4", 0.4)
    (lib / "letter.mp3").write_text("Dear reader, this is not a sound.\n" * 20)
    return lib


@pytest.fixture(scope="module")
def reference(library, tmp_path_factory) -> tuple[Path, dict]:
    """The library indexed by one process without decode workers: what every other run must equal."""
    db = tmp_path_factory.mktemp("ref") / "one.db"
    with one_thread():
        return db, run_cli(library, db, "--workers", "0")


@contextlib.contextmanager
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_cli(lib: Path, db: Path, *options: str, report: Path | None = None) -> dict:
    """`vlsa index` in this process; its --json report (kept in `report`; {} from a rank but the first)."""
    report = report or db.with_suffix(".json")
    with open(report, "w") as f, contextlib.redirect_stdout(f):
        index.main([str(lib), "--db", str(db), *OPTIONS, *options], standalone_mode=False)
    return json.loads(report.read_text() or "{}")


def _rank_main(rank: int, world: int, port: int, lib: Path, db: Path, die: dict[int, int]) -> None:
    """One rank, as torchrun starts it. `die`: rank -> commits after which that rank exits abruptly."""
    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if rank in die:
        write, writes = Catalog.write_files, []

        def write_then_die(self, records):
            write(self, records)
            writes.append(records)
            if len(writes) == die[rank]:
                os._exit(3)  # no clean-up of any kind, as a killed process

        Catalog.write_files = write_then_die
    run_cli(lib, db, "--workers", "1", report=Path(f"{db}.rank{rank}.json"))


def run_ranks(lib: Path, db: Path, world: int = 2, die: dict[int, int] | None = None) -> dict:
    """`vlsa index` on `world` gloo ranks on the CPU; rank 0's report."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_rank_main, args=(world, port, lib, db, die or {}), nprocs=world, start_method="fork")
    return json.loads(Path(f"{db}.rank0.json").read_text())


def test_index_decode_workers_give_the_catalog_of_one_process(library, reference, tmp_path):
    """--workers 2 decodes in two loader processes: the same rows, ids and vector bytes as
    --workers 0, and the broken files skipped and counted.
    Catches: a worker's share dropped or doubled, files written out of scan order (ids differ),
    a decoding error ending the run instead of being carried back as a value."""
    ref_db, ref_report = reference
    with one_thread():
        report = run_cli(library, tmp_path / "w2.db", "--workers", "2")
    assert dump(tmp_path / "w2.db", library) == dump(ref_db, library)
    assert {Path(e["path"]).name for e in report["errors"]} == {"truncated.mp4", "letter.mp3"}
    assert (report["indexed"], report["failed"]) == (ref_report["indexed"], ref_report["failed"]) == (7, 2)


def test_index_two_gloo_ranks_give_the_catalog_of_one_process(library, reference, tmp_path):
    """Two ranks each embed their share of the files and rank 0 merges: the catalog's rows, ids
    and vector bytes equal a single process's, the broken files counted in rank 0's report, and
    no part file left behind.
    Catches: a rank's share dropped, the merge in another order than the scan's (ids differ),
    shares that overlap or leave a file out."""
    ref_db, ref_report = reference
    db = tmp_path / "two.db"
    report = run_ranks(library, db)
    assert dump(db, library) == dump(ref_db, library)
    for key in ("indexed", "failed", "windows", "unchanged", "removed"):
        assert report[key] == ref_report[key], key
    kept = {"two.db", "two.db-wal", "two.db-shm", "two.db.rank0.json", "two.db.rank1.json"}
    assert set(os.listdir(tmp_path)) <= kept


def test_index_rank_killed_then_rerun_gives_the_catalog_of_one_process(library, reference, tmp_path):
    """Rank 1 exits abruptly after its first commit (the run fails, as torchrun's does); the rerun
    reuses what the ranks had committed and ends in the single process's catalog.
    Catches: a rerun that ignores (re-embeds) or mis-reads the dead run's part files, a part's
    half-done file taken as done."""
    ref_db, _ = reference
    db = tmp_path / "killed.db"
    with pytest.raises(mp.ProcessExitedException):
        run_ranks(library, db, die={1: 1})
    report = run_ranks(library, db)
    assert 0 < report["reused"] < report["indexed"] + report["failed"]  # some reused, some left to embed
    assert dump(db, library) == dump(ref_db, library)
