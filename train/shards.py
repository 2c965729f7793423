"""Pre-decoded shards: frames as JPEG, audio as 16-bit PCM and the caption, in tar files, so that
training reads no video container.

    vlsa data shard data/manifest.jsonl data/shards --preset tiny

Layout: OUT/index.json (the preset's front-end settings, one entry per sample: shard, byte offsets,
split, text) and OUT/shard-NNNNN.tar (members KEY.json, KEY.F.jpg, KEY.pcm). Each clip keeps
FRAME_POOL times the preset's frame count, at the centres of equal segments; training draws one
frame of each pool group at random (as random frame times would), evaluation the first.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import tarfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from train.data import Row, failure_reason, load_row, parse_manifest, sample_generator
from vlsa.audio import build_frontend
from vlsa.batch import make_sample
from vlsa.config import VLSAConfig
from vlsa.media import Clip, MediaError
from vlsa.tokenizer import build_tokenizer

log = logging.getLogger(__name__)

FRAME_POOL = 2  # frames stored per sampled frame: keeps some of random sampling's augmentation
JPEG_QUALITY = 90
INDEX = "index.json"


def _frontend_settings(config: VLSAConfig) -> dict:
    """What decoding depended on: shards made for other sizes or rates are refused."""
    v, a = config.video, config.audio
    return {"frames": v.frames, "size": v.size, "sample_rate": a.sample_rate, "num_samples": a.num_samples,
            "clip_seconds": config.clip_seconds}


def _encode_jpeg(frame: torch.Tensor) -> bytes:
    """uint8 (3, H, W) -> JPEG bytes (Pillow: torchvision's codecs are deprecated from 0.29)."""
    buffer = io.BytesIO()
    Image.fromarray(frame.permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _decode_jpeg(data: bytes) -> torch.Tensor:
    """JPEG bytes -> uint8 (3, H, W)."""
    array = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


def _encode_sample(clip: Clip, row: Row) -> dict[str, bytes]:
    members = {"json": json.dumps({"text": row.text, "split": row.split, "has_video": clip.has_video,
                                   "has_audio": clip.has_audio}).encode()}
    if clip.frames is not None:
        for i, frame in enumerate(clip.frames):
            members[f"{i}.jpg"] = _encode_jpeg(frame)
    # 16-bit PCM, as audio is stored everywhere: its -96 dB noise floor shows only in the log
    # map's near-silent bins (mean change 0.03 of a normalised unit; tests/test_shards.py)
    pcm = (clip.wave.clamp(-1, 1) * 32767).round().to(torch.int16).numpy()
    members["pcm"] = pcm.tobytes()
    return members


def write_shards(manifest: str | Path, out: str | Path, config: VLSAConfig, per_shard: int = 1000,
                 on_row: Callable[[], None] | None = None) -> dict:
    """Decode every row of `manifest` once into shards under `out`; returns the index. Rows that
    are not valid or fail to decode are left out and counted by reason in the index."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pool_cfg = dataclasses.replace(config.video, frames=config.video.frames * FRAME_POOL)
    rows, rejected = parse_manifest(manifest)
    entries, skipped, tar, tar_path = [], Counter(reason for _, reason in rejected), None, None
    for i, row in enumerate(rows):
        if on_row:
            on_row()
        try:
            clip = load_row(row, pool_cfg, config.audio)
        except MediaError as exc:
            skipped[failure_reason(str(exc))] += 1
            continue
        if len(entries) % per_shard == 0:
            if tar:
                tar.close()
            tar_path = out / f"shard-{len(entries) // per_shard:05d}.tar"
            tar = tarfile.open(tar_path, "w")
        key = f"{i:08d}"
        for name, data in _encode_sample(clip, row).items():
            info = tarfile.TarInfo(f"{key}.{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        entries.append({"key": key, "shard": tar_path.name, "split": row.split})
    if tar:
        tar.close()
    _add_offsets(out, entries)
    index = {"settings": _frontend_settings(config), "samples": entries, "skipped": dict(skipped)}
    (out / INDEX).write_text(json.dumps(index))
    return index


def _add_offsets(out: Path, entries: list[dict]) -> None:
    """Record where each member's bytes start, for random access without scanning the tar."""
    by_shard: dict[str, dict[str, tuple[int, int]]] = {}
    for shard in {e["shard"] for e in entries}:
        with tarfile.open(out / shard) as tar:
            by_shard[shard] = {m.name: (m.offset_data, m.size) for m in tar.getmembers()}
    for e in entries:
        members = by_shard[e["shard"]]
        e["members"] = {name.split(".", 1)[1]: members[name] for name in members if name.startswith(e["key"] + ".")}


class ShardDataset(torch.utils.data.Dataset):
    """Samples from shards, the same dicts as train.data.ClipDataset gives."""

    def __init__(self, root: str | Path, config: VLSAConfig, split: str | None = "train", train: bool = True,
                 seed: int = 0):
        self.root, self.config, self.train, self.seed, self.epoch = Path(root), config, train, seed, 0
        index = json.loads((self.root / INDEX).read_text())
        if index["settings"] != _frontend_settings(config):
            raise ValueError(f"{root}: shards were made for {index['settings']}, the model needs "
                             f"{_frontend_settings(config)}; run `vlsa data shard` again")
        self.samples = [s for s in index["samples"] if split is None or s["split"] == split]
        self._files: dict[str, object] = {}
        self._frontend = self._tokenizer = None

    def __len__(self) -> int:
        return len(self.samples)

    def _read(self, shard: str, where: tuple[int, int]) -> bytes:
        f = self._files.get(shard)
        if f is None:  # one open file per shard per worker process
            f = self._files[shard] = open(self.root / shard, "rb")
        f.seek(where[0])
        return f.read(where[1])

    def captions(self) -> list[str | None]:
        """Every sample's caption, read through files of its own that are closed again: worker
        processes forked later must not inherit open shard files, whose offsets they would share."""
        saved, self._files = self._files, {}
        try:
            return [json.loads(self._read(s["shard"], s["members"]["json"]))["text"] for s in self.samples]
        finally:
            for f in self._files.values():
                f.close()
            self._files = saved

    def __getitem__(self, i: int) -> dict:
        if self._frontend is None:
            self._frontend, self._tokenizer = build_frontend(self.config.audio), build_tokenizer(self.config.text)
        s = self.samples[i]
        meta = json.loads(self._read(s["shard"], s["members"]["json"]))
        frames = None
        if meta["has_video"]:
            g = sample_generator(self.seed, self.epoch, i)
            T = self.config.video.frames
            pick = torch.randint(0, FRAME_POOL, (T,), generator=g) if self.train else torch.zeros(T, dtype=torch.long)
            chosen = [k * FRAME_POOL + int(p) for k, p in enumerate(pick)]
            frames = torch.stack([_decode_jpeg(self._read(s["shard"], s["members"][f"{c}.jpg"])) for c in chosen])
        pcm = np.frombuffer(self._read(s["shard"], s["members"]["pcm"]), dtype=np.int16)
        wave = torch.from_numpy(pcm.astype(np.float32) / 32767)
        clip = Clip(frames=frames, wave=wave, has_audio=meta["has_audio"], has_video=meta["has_video"])
        return make_sample(clip, meta["text"], self.config, self._frontend, self._tokenizer)
