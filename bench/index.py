"""Benchmark indexing speed: media-seconds indexed per wall second, with the `tiny` preset.

    python bench/index.py                                   # shared media + generated videos
    python bench/index.py --library ~/Videos --no-generated
    python bench/index.py --workers 0 --workers 1 --workers 2 --rounds 3   # decode workers compared
    python bench/index.py --checkpoint vlsa/assets/real --checkpoint OTHER  # checkpoints compared

Libraries indexed, each into a fresh catalog: a copy of the shared test media (354 short sounds
and 4 videos, 771 s in all), and generated mp4s (640x360, 25 fps, h264 + AAC, a moving square
and a tone), so a video-heavy library is measured too. Each library is indexed twice: the
first run embeds everything, the second finds nothing changed (the cost of an incremental
no-op). The model is built before the clock starts; decoding, embedding and writing are timed
(with decode workers, their start-up too). Each `--workers` count is run once a round, the counts
one after another, so a machine whose load changes weighs on all of them alike. Reports JSON:
per run the workers, files, windows, media seconds, wall seconds, the real-time multiple and the
CPU seconds of the main process and of the workers, and the cores kept busy (CPU seconds of
all of them per wall second); per
library and worker count the median real-time multiple over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # mediagen: the test suite's media generator

from mediagen import SHARED_MEDIA, make_video  # noqa: E402

from catalog.indexer import Indexer  # noqa: E402
from catalog.model import load_model, seeded_preset  # noqa: E402
from catalog.store import Catalog  # noqa: E402

SHARED = SHARED_MEDIA  # the real recordings the tests read ($VLSA_SHARED_MEDIA to move them)


def generated_library(folder: Path, count: int, seconds: float) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        make_video(folder / f"clip{i}.mp4", seconds, fps=25, size=(640, 360), tone_hz=220.0 * (i + 1))
    return folder


def cpu_seconds() -> tuple[float, float]:
    """User + system time of this process, and of its finished children (the decode workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def bench_library(name: str, library: Path, model, db: Path, batch_size: int, workers: int, model_name: str) -> dict:
    with Catalog(db) as catalog:
        indexer = Indexer(catalog, model, batch_size=batch_size, workers=workers)
        main_before, workers_before = cpu_seconds()
        first = indexer.run([str(library)])
        main_after, workers_after = cpu_seconds()
        again = indexer.run([str(library)])
        stats = catalog.stats()
        sound_vectors = list(catalog.sound_modalities())
    return {
        "library": name,
        "model": model_name,
        "workers": workers,
        "files": first.indexed + len(first.failed),
        "failed": len(first.failed),
        "windows": first.windows,
        "media_seconds": round(first.media_seconds, 1),
        "wall_seconds": round(first.wall_seconds, 2),
        "x_real_time": round(first.media_seconds / first.wall_seconds, 1),
        "main_cpu_seconds": round(main_after - main_before, 2),  # embedding, writing (and decoding without workers)
        "worker_cpu_seconds": round(workers_after - workers_before, 2),  # decoding in the workers
        "cores_busy": round((main_after - main_before + workers_after - workers_before) / first.wall_seconds, 2),
        "rerun_wall_seconds": round(again.wall_seconds, 3),
        "rerun_indexed": again.indexed,
        "vectors": {"video": stats["video_vectors"], "audio": stats["audio_vectors"]},
        "sound_vectors": sound_vectors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", type=Path, action="append", default=[], help="Also index this folder.")
    ap.add_argument("--no-shared", action="store_true", help="Skip the copy of the shared media.")
    ap.add_argument("--no-generated", action="store_true", help="Skip the generated videos.")
    ap.add_argument("--videos", type=int, default=4, help="Generated videos.")
    ap.add_argument("--seconds", type=float, default=30.0, help="Length of each generated video.")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, action="append", help="Decode workers (repeatable) [default: 0].")
    ap.add_argument("--rounds", type=int, default=1, help="Runs of each worker count, interleaved.")
    ap.add_argument("--checkpoint", action="append", default=[],
                    help="Index with this checkpoint (repeatable) [default: the untrained tiny preset].")
    args = ap.parse_args()
    workers = args.workers or [0]
    models = [(c, load_model(c)[0]) for c in args.checkpoint] or [("tiny preset", seeded_preset("tiny"))]
    results = {"models": [name for name, _ in models], "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
               "load_average_before": os.getloadavg(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        libraries = [(str(p), p) for p in args.library]
        if not args.no_shared and SHARED.is_dir():
            libraries.append(("shared media (copy)", Path(shutil.copytree(SHARED, tmp / "shared"))))
        if not args.no_generated:
            libraries.append((f"{args.videos} x {args.seconds:g} s 640x360 mp4",
                              generated_library(tmp / "generated", args.videos, args.seconds)))
        for i, (name, library) in enumerate(libraries):
            for r in range(args.rounds):
                for m, (model_name, model) in enumerate(models):
                    for w in workers:
                        db = tmp / f"c{i}-r{r}-m{m}-w{w}.db"
                        results["runs"].append(bench_library(name, library, model, db, args.batch_size, w, model_name))
    results["load_average_after"] = os.getloadavg()
    results["median_x_real_time"] = {
        f"{name}, {model_name}, workers {w}": statistics.median(
            run["x_real_time"] for run in results["runs"]
            if run["library"] == name and run["model"] == model_name and run["workers"] == w)
        for name, _ in libraries for model_name, _ in models for w in workers}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
