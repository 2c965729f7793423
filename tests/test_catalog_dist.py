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
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from mediagen import make_audio, make_truncated, make_video
from test_catalog_cli import dump

from catalog.cli import index
from catalog.distributed import split_by_size
from catalog.scan import FileStat
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(lib: Path, db: Path, world: int = 2, die: dict[int, int] | None = None) -> dict:
    """`vlsa index` on `world` gloo ranks on the CPU; rank 0's report."""
    mp.start_processes(_rank_main, args=(world, free_port(), lib, db, die or {}), nprocs=world, start_method="fork")
    return json.loads(Path(f"{db}.rank0.json").read_text())


def test_split_by_size_gives_each_file_to_one_rank():
    """Every file goes to exactly one rank, the bytes spread evenly, each share in list order.
    Catches (seen): every rank given every file; the sizes ignored (a round robin: 18 bytes against 6 here)."""
    files = [FileStat(f"/m/{i}", size, 0) for i, size in enumerate([9, 1, 1, 1, 4, 4, 4])]
    shares = split_by_size(files, 2)
    assert sorted(i for share in shares for i in share) == list(range(len(files)))
    assert [sum(files[i].size for i in share) for share in shares] == [12, 12]
    assert all(share == sorted(share) for share in shares)


def test_index_decode_workers_give_the_catalog_of_one_process(library, reference, tmp_path):
    """--workers 2 decodes in two loader processes: the same rows, ids and vector bytes as
    --workers 0, and the broken files skipped and counted.
    Catches (each seen): worker 1's files dropped; a decoding error raised in the worker
    instead of carried back as a value; files written as they complete rather than in scan
    order (the ids differ)."""
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
    Catches (each seen): rank 1's share not embedded (the merge stops at a file in no part);
    the merge in reverse scan order (the ids differ)."""
    ref_db, ref_report = reference
    db = tmp_path / "two.db"
    report = run_ranks(library, db)
    assert dump(db, library) == dump(ref_db, library)
    for key in ("indexed", "failed", "windows", "unchanged", "removed"):
        assert report[key] == ref_report[key], key
    # the indexing lock file stays (catalog/lock.py); no part file does
    kept = {"two.db", "two.db-wal", "two.db-shm", "two.db.lock", "two.db.rank0.json", "two.db.rank1.json"}
    assert set(os.listdir(tmp_path)) <= kept


def test_index_rank_killed_then_rerun_gives_the_catalog_of_one_process(library, reference, tmp_path):
    """Rank 1 exits abruptly after its first commit (the run fails, as torchrun's does); the rerun
    reuses what the ranks had committed and ends in the single process's catalog.
    Catches (seen): a rerun that ignores the dead run's part files and embeds everything again."""
    ref_db, _ = reference
    db = tmp_path / "killed.db"
    with pytest.raises(mp.ProcessExitedException):
        run_ranks(library, db, die={1: 1})
    report = run_ranks(library, db)
    assert 0 < report["reused"] < report["indexed"] + report["failed"]  # some reused, some left to embed
    assert dump(db, library) == dump(ref_db, library)


@pytest.mark.slow
def test_torchrun_vlsa_index_gives_the_catalog_of_one_process(library, reference, tmp_path):
    """The documented launch, `torchrun --nproc-per-node 2 -m vlsa.cli index ...`, as a subprocess.
    Catches (seen): the command not taking torchrun's ranks (both processes then index
    everything into the one catalog by themselves, and one fails)."""
    ref_db, _ = reference
    db = tmp_path / "torchrun.db"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the reference's one thread (torchrun's default too)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-port", str(free_port()), "-m", "vlsa.cli", "index", str(library), "--db", str(db),
                           *OPTIONS], capture_output=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert json.loads(proc.stdout)["indexed"] == 7  # one report, from rank 0
    assert dump(db, library) == dump(ref_db, library)
