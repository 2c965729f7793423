"""Pre-decoded shards: frames as JPEG, audio as 16-bit PCM and the caption, in tar files, so that
training reads no video container.

    vlsa data shard data/manifest.jsonl data/shards --preset tiny

Layout: OUT/shard-NNNNN.tar, written by webdataset's ShardWriter (members KEY.json, KEY.F.jpg,
KEY.pcm), so other webdataset tools read them; and OUT/index.json (the preset's front-end settings,
one entry per sample: shard, split, each member's byte offset and size, read back from the tar).
The index is ours because training reads samples by position, not as a stream: the resumable
samplers pick any sample of an epoch, which a tar read front to back cannot serve. Each clip keeps
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
import webdataset
from PIL import Image
from webdataset.tariterators import base_plus_ext

from train.augment import augment_clip
from train.data import Row, draw_caption, failure_reason, load_row, parse_manifest, sample_generator
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
    meta = {"text": row.text, "split": row.split, "has_video": clip.has_video, "has_audio": clip.has_audio,
            **({"captions": row.captions} if len(row.captions) > 1 else {})}
    members = {"json": json.dumps(meta).encode()}
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
    out = Path(out).absolute()  # webdataset opens its shards by name: an absolute one is never a URL
    out.mkdir(parents=True, exist_ok=True)
    pool_cfg = dataclasses.replace(config.video, frames=config.video.frames * FRAME_POOL)
    rows, rejected = parse_manifest(manifest)
    entries, skipped, members = [], Counter(reason for _, reason in rejected), {}
    # mtime fixed: the same manifest gives the same bytes; encoder=False: the members are bytes already
    with webdataset.ShardWriter("shard-%05d.tar", maxcount=per_shard, verbose=0, opener=lambda name: str(out / name),
                                post=lambda name: members.update(_member_offsets(out / name)),
                                encoder=False, mtime=0) as writer:
        for i, row in enumerate(rows):
            if on_row:
                on_row()
            try:
                clip = load_row(row, pool_cfg, config.audio)
            except MediaError as exc:
                skipped[failure_reason(str(exc))] += 1
                continue
            key = f"{i:08d}"
            writer.write({"__key__": key, **_encode_sample(clip, row)})
            entries.append({"key": key, "shard": writer.fname, "split": row.split})
    for e in entries:
        e["members"] = members[e["key"]]
    index = {"settings": _frontend_settings(config), "samples": entries, "skipped": dict(skipped)}
    (out / INDEX).write_text(json.dumps(index))
    return index


def _member_offsets(shard: Path) -> dict[str, dict[str, tuple[int, int]]]:
    """key -> {member suffix: (byte offset, size)} of a written shard, for random access."""
    with tarfile.open(shard) as tar:
        by_key: dict[str, dict[str, tuple[int, int]]] = {}
        for m in tar.getmembers():
            key, suffix = base_plus_ext(m.name)
            by_key.setdefault(key, {})[suffix] = (m.offset_data, m.size)
    return by_key


class ShardDataset(torch.utils.data.Dataset):
    """Samples from shards, the same dicts as train.data.ClipDataset gives."""

    def __init__(self, root: str | Path, config: VLSAConfig, split: str | None = "train", train: bool = True,
                 seed: int = 0, augment: bool = False):
        self.root, self.config, self.train, self.seed, self.epoch = Path(root), config, train, seed, 0
        self.augment = augment  # train/augment.py, for the sound-only samples
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
        g = sample_generator(self.seed, self.epoch, i)
        if meta["has_video"]:
            T = self.config.video.frames
            pick = torch.randint(0, FRAME_POOL, (T,), generator=g) if self.train else torch.zeros(T, dtype=torch.long)
            chosen = [k * FRAME_POOL + int(p) for k, p in enumerate(pick)]
            frames = torch.stack([_decode_jpeg(self._read(s["shard"], s["members"][f"{c}.jpg"])) for c in chosen])
        pcm = np.frombuffer(self._read(s["shard"], s["members"]["pcm"]), dtype=np.int16)
        wave = torch.from_numpy(pcm.astype(np.float32) / 32767)
        clip = Clip(frames=frames, wave=wave, has_audio=meta["has_audio"], has_video=meta["has_video"])
        text = draw_caption(meta["text"], meta.get("captions", []), g) if self.train else meta["text"]
        if self.augment:
            clip = augment_clip(clip, g)
        return make_sample(clip, text, self.config, self._frontend, self._tokenizer)
