"""Loader throughput from shards: samples/s with N worker processes, the trainer's own loader
(ShardDataset + make_loader: JPEG decode with Pillow, PCM -> spectrogram, token ids, collate).

    vlsa data synth out/bench --n 64 --seed 7 && vlsa data shard out/bench/manifest.jsonl out/bench-shards --preset base
    python bench/loader.py out/bench-shards --preset base --workers 1 2 4 8 16 --seconds 10
    python bench/loader.py out/bench-shards --preset base --gpu-jpeg      # + decode_jpeg on CUDA

JSON: per worker count, samples/s and samples/s per worker, measured after the first batch (worker
start-up is not counted). The shards' samples are cycled so a small set keeps every worker busy.
With --gpu-jpeg, also the rate at which torchvision.io.decode_jpeg on the GPU decodes the same
JPEG frames in batches, as samples/s (a sample is `frames` JPEGs): the ceiling if decoding moved
off the CPU.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train_step import emit  # noqa: E402  (bench/ is on sys.path when run as a script)

from train.data import ResumableSampler, make_loader  # noqa: E402
from train.shards import ShardDataset  # noqa: E402
from vlsa.config import preset_config  # noqa: E402


def loader_rate(shards: Path, cfg, workers: int, batch: int, seconds: float, repeat: int) -> dict:
    dataset = ShardDataset(shards, cfg, split=None, train=True)
    dataset.samples = dataset.samples * repeat  # cycle a small set instead of restarting workers
    loader = make_loader(dataset, ResumableSampler(len(dataset), 0), batch, workers)
    it = iter(loader)
    first = next(it)  # workers started, first batch out
    n, t0 = 0, time.perf_counter()
    for b in it:
        n += b["video"].shape[0]
        if time.perf_counter() - t0 > seconds:
            break
    sec = time.perf_counter() - t0
    del it, loader
    shapes = {k: list(first[k].shape) for k in ("video", "audio", "text")}  # what was read, per batch
    return {"samples_per_s": round(n / sec, 1), "per_worker": round(n / sec / max(1, workers), 1), "samples": n,
            "batch_shapes": shapes}


def gpu_jpeg_rate(shards: Path, cfg, batch: int, reps: int = 5) -> dict:
    from torchvision.io import decode_jpeg

    dataset = ShardDataset(shards, cfg, split=None, train=False)
    blobs = []
    for s in dataset.samples:
        for key, where in s["members"].items():
            if key.endswith(".jpg"):
                blobs.append(torch.frombuffer(bytearray(dataset._read(s["shard"], where)), dtype=torch.uint8))
    frames_per_batch = batch * cfg.video.frames
    blobs = (blobs * (frames_per_batch // len(blobs) + 1))[:frames_per_batch]
    decode_jpeg(blobs[:8], device="cuda")
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        decode_jpeg(blobs, device="cuda")
    torch.cuda.synchronize()
    sec = (time.perf_counter() - t0) / reps
    return {"images_per_s": round(frames_per_batch / sec, 1), "samples_per_s": round(batch / sec, 1),
            "batch_frames": frames_per_batch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("shards", type=Path)
    ap.add_argument("--preset", default="base")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=200, help="times the shards' samples are cycled")
    ap.add_argument("--gpu-jpeg", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    torch.set_num_threads(1)  # as in a worker: one core per process
    cfg = preset_config(args.preset)
    result = {"preset": args.preset, "batch": args.batch, "cpus": os.cpu_count(), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d"), "workers": {}}
    for w in args.workers:
        result["workers"][str(w)] = loader_rate(args.shards, cfg, w, args.batch, args.seconds, args.repeat)
        print(w, result["workers"][str(w)], file=sys.stderr)
    if args.gpu_jpeg:
        result["device"] = torch.cuda.get_device_name(0)
        try:
            result["gpu_jpeg"] = gpu_jpeg_rate(args.shards, cfg, 128)
        except RuntimeError as e:
            result["gpu_jpeg"] = {"error": str(e).splitlines()[0][:200]}
    emit(result, args.out)


if __name__ == "__main__":
    main()
