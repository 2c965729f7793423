"""webdataset tar shards as img2dataset and video2dataset write them, read where they lie.

A shard `00000.tar` holds samples as members sharing a key: `KEY.mp4` (or another video or audio
file), `KEY.txt` (the caption) and `KEY.json` (the metadata; its "caption" when there is no .txt,
its "split" when it has one, else the sample trains). `vlsa train --manifest DIR` and `vlsa eval
--manifest DIR` take a folder of such shards; the folder is scanned once (member headers and the
small caption files) and each sample's media bytes are read from the shard by offset, so the
resumable sampler and the worker processes work as for our own shards.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from webdataset.tariterators import base_plus_ext

from train.augment import augment_clip
from train.data import BadRow, Row, check_caption, failure_reason, load_row, sample_generator
from train.shards import INDEX
from vlsa.audio import build_frontend
from vlsa.audio_tower import tower_rate
from vlsa.batch import make_sample
from vlsa.config import VLSAConfig
from vlsa.media import MEDIA_EXTENSIONS, VIDEO_EXTENSIONS, MediaError
from vlsa.tokenizer import build_tokenizer


@dataclass
class TarSample:
    shard: Path
    member: str  # the media member's name, e.g. "00000042.mp4"
    offset: int  # where its bytes start in the shard
    size: int
    text: str | None
    split: str


def is_tar_folder(path: str | Path) -> bool:
    """A folder of webdataset shards (and not one of our own, which has an index)."""
    path = Path(path)
    return path.is_dir() and not (path / INDEX).exists() and any(path.rglob("*.tar"))


def _caption(members: dict[str, bytes]) -> str | None:
    """The .txt, else the json's "caption"; BadRow for one a manifest row could not have."""
    text = members.get(".txt", b"").decode("utf-8", errors="replace").strip()
    if not text:
        key, text = "caption", members.get("meta", {}).get("caption") or None
        if text is not None and not isinstance(text, str):
            raise BadRow("caption is not a string")
    else:
        key = "text"
    check_caption(text, key)
    return text


def scan_shard(shard: Path, skipped: Counter) -> list[TarSample]:
    """The samples of one shard, in its order; a sample without a media member, or a shard that
    cannot be read, is counted in `skipped`."""
    groups: dict[str, dict] = {}
    try:
        with tarfile.open(shard) as tar:
            for m in tar:
                if not m.isfile():
                    continue
                key, ext = base_plus_ext(m.name)  # webdataset's own rule: the key ends at the name's first dot
                if key is None:
                    continue
                ext = "." + ext.lower()
                group = groups.setdefault(key, {})
                if ext in (".txt", ".json"):
                    group[ext] = tar.extractfile(m).read()
                elif ext in MEDIA_EXTENSIONS and (".media" not in group or ext in VIDEO_EXTENSIONS):
                    group[".media"] = m
    except (tarfile.TarError, OSError, EOFError):
        skipped["unreadable shard"] += 1
        return []
    samples = []
    for group in groups.values():
        if ".media" not in group:
            skipped["no media member"] += 1
            continue
        try:
            meta = json.loads(group.get(".json", b"{}"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            meta = {}
        group["meta"] = meta if isinstance(meta, dict) else {}
        m = group[".media"]
        split = group["meta"].get("split")
        try:
            caption = _caption(group)
        except BadRow as exc:
            skipped[str(exc)] += 1
            continue
        samples.append(TarSample(shard, m.name, m.offset_data, m.size, caption,
                                 split if isinstance(split, str) else "train"))
    return samples


def scan_folder(root: str | Path) -> tuple[list[TarSample], Counter]:
    skipped: Counter = Counter()
    samples = [s for shard in sorted(Path(root).rglob("*.tar")) for s in scan_shard(shard, skipped)]
    return samples, skipped


class TarClipDataset(torch.utils.data.Dataset):
    """Samples of a folder of webdataset shards, the same dicts as train.data.ClipDataset gives.
    A sample's media bytes go to a temporary file for the decoder, which reads files only."""

    def __init__(self, root: str | Path, config: VLSAConfig, split: str | None = "train", train: bool = True,
                 seed: int = 0, augment: bool = False):
        self.config, self.train, self.seed, self.epoch = config, train, seed, 0
        self.augment = augment  # train/augment.py, for the sound-only samples
        samples, self.scan_skipped = scan_folder(root)
        self.samples = [s for s in samples if split is None or s.split == split]
        self._frontend = self._tokenizer = None

    def __len__(self) -> int:
        return len(self.samples)

    def captions(self) -> list[str | None]:
        return [s.text for s in self.samples]

    def __getitem__(self, index: int) -> dict:
        if self._frontend is None:  # built lazily: once per worker process
            self._frontend, self._tokenizer = build_frontend(self.config.audio), build_tokenizer(self.config.text)
        s = self.samples[index]
        g = sample_generator(self.seed, self.epoch, index)
        try:
            clip = self._load(s, g)
        except (MediaError, OSError) as exc:
            return {"skipped": f"{s.shard.name}:{s.member}: {failure_reason(str(exc))}"}
        if self.augment:
            clip = augment_clip(clip, g)
        return make_sample(clip, s.text, self.config, self._frontend, self._tokenizer)

    def _load(self, s: TarSample, generator: torch.Generator):
        with open(s.shard, "rb") as f:
            f.seek(s.offset)
            data = f.read(s.size)
        if len(data) < s.size:
            raise MediaError(f"{s.shard}:{s.member}: shard cut short")
        suffix = Path(s.member).suffix.lower()
        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            tmp.write(data)
            tmp.flush()
            path = Path(tmp.name)
            row = Row(video=path if suffix in VIDEO_EXTENSIONS else None,
                      audio=None if suffix in VIDEO_EXTENSIONS else path, text=s.text)
            return load_row(row, self.config.video, self.config.audio, train=self.train, generator=generator,
                            tower_rate=tower_rate(self.config))
