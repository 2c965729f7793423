"""Manifests, the dataset over them, a resumable sampler and the loader.

A manifest is JSON Lines, one clip a line (docs/DESIGN.md, "Data formats"):
    {"video": path, "audio": path?, "text": str?, "captions": [str]?, "start": s?, "end": s?, "split": "train"?}
"captions" holds all of a clip's captions where a dataset has several (MSR-VTT 20, AudioCaps 5),
"text" the first of them: training draws one per load, evaluation protocols score them all.
Relative paths are relative to the manifest's folder. Every row is validated when the manifest
is read (parse_manifest): a bad row is skipped and named with its line number. A sample that
fails to decode is skipped and counted with its reason; neither kills the run.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import re
import signal
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from train.augment import augment_clip
from vlsa.audio import build_frontend
from vlsa.audio_tower import tower_rate
from vlsa.batch import collate, make_sample
from vlsa.config import AudioConfig, VideoConfig, VLSAConfig
from vlsa.media import Clip, MediaError, load_clip, read_frames
from vlsa.tokenizer import build_tokenizer

log = logging.getLogger(__name__)


@dataclass
class Row:
    video: Path | None
    audio: Path | None
    text: str | None
    start: float = 0.0
    end: float | None = None
    split: str = "train"
    extra: dict = field(default_factory=dict)
    captions: list[str] = field(default_factory=list)  # all of the clip's captions; text is the first


class BadRow(ValueError):
    """A manifest row that cannot be used; the message is the reason, without the line."""


MAX_NAMED = 10  # skipped rows named one by one in the summary line; the rest are counted by reason
# The longest caption a row may have. The tokenizers read at most 77 tokens (a few hundred
# characters of English); real captions (MSR-VTT, AudioCaps, subtitle cues) are far shorter,
# while a 10 MB "caption" once passed and cost a training step 55 s of tokenizing.
MAX_CAPTION_CHARS = 2000
MAX_CAPTIONS = 100  # captions of one clip: the datasets here have at most 20 (MSR-VTT)
_reported: set[tuple[str, int, int]] = set()  # (path, size, mtime) of manifests whose skips were said


def manifest_identity(path: str | Path) -> dict[str, str]:
    """What a record made from a manifest says of it (a calibration, a fitted checkpoint): its
    last two path parts, naming no machine's folders, and its hash's first 16 hex digits, which
    version of it was read."""
    path = Path(path)
    return {"manifest": "/".join(path.parts[-2:]), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()[:16]}


def parse_manifest(path: str | Path) -> tuple[list[Row], list[tuple[int, str]]]:
    """Every row of a manifest, validated: (usable rows, [(line number, reason)] of the others).

    Blank lines are not rows. A row is skipped when it is not a JSON object (NaN and Infinity,
    which Python's json accepts, are not JSON), names no video and no audio, has a path that is
    not a string, a text or split that is not a string, or a start or end that is not a finite
    number of seconds, negative, or with end not after start, or a caption longer than
    MAX_CAPTION_CHARS (or more than MAX_CAPTIONS of them). Times past the end of the file are
    known only once it is opened: load_row skips those samples.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such manifest")
    rows, rejected = [], []
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            rows.append(_row(_parse(raw), path.parent))
        except BadRow as exc:
            rejected.append((number, str(exc)))
    return rows, rejected


def read_manifest(path: str | Path, split: str | None = None) -> list[Row]:
    """The usable rows of a manifest, optionally one split. Skipped rows are named in one warning
    line (once per process: evaluation reads the manifest again); none usable is a ValueError."""
    rows, rejected = parse_manifest(path)
    if rejected:
        summary = skipped_summary(rejected)
        if not rows:
            raise ValueError(f"{path}: no usable rows ({summary})")
        st = Path(path).stat()
        key = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
        if key not in _reported:
            _reported.add(key)
            log.warning("manifest %s: %d rows skipped (%s)", path, len(rejected), summary)
    return [r for r in rows if split is None or r.split == split]


def skipped_summary(rejected: list[tuple[int, str]]) -> str:
    """'line 4: text is not a string; line 9: not JSON', the rest counted by reason."""
    named = "; ".join(f"line {n}: {reason}" for n, reason in rejected[:MAX_NAMED])
    rest = Counter(reason for _, reason in rejected[MAX_NAMED:])
    if rest:
        named += f"; and {sum(rest.values())} more: " + ", ".join(f"{r}: {c}" for r, c in rest.most_common())
    return named


def _not_json(name: str):
    raise BadRow("NaN or Infinity is not JSON")


def _parse(raw: bytes) -> object:
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_not_json)
    except UnicodeDecodeError:
        raise BadRow("not UTF-8") from None
    except (json.JSONDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        raise BadRow("not JSON") from None


def _path(d: dict, key: str, base: Path) -> Path | None:
    value = d.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or "\0" in value:
        raise BadRow(f"{key} is not a path")
    return Path(value) if Path(value).is_absolute() else base / value


def _string(d: dict, key: str) -> str | None:
    value = d.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRow(f"{key} is not a string")
    return value


def _captions(d: dict) -> list[str]:
    value = d.get("captions")
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise BadRow("captions is not a list of strings")
    if len(value) > MAX_CAPTIONS:
        raise BadRow(f"captions holds more than {MAX_CAPTIONS}")
    for caption in value:
        check_caption(caption, "captions")
    return value


def check_caption(text: str | None, key: str = "text") -> None:
    """BadRow for a caption longer than MAX_CAPTION_CHARS (`key`: where it was read from)."""
    if text is not None and len(text) > MAX_CAPTION_CHARS:
        raise BadRow(f"{key} is longer than {MAX_CAPTION_CHARS} characters")


def _seconds(d: dict, key: str) -> float | None:
    value = d.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRow(f"{key} is not a number")
    try:
        seconds = float(value)
    except OverflowError:  # an integer past float range
        seconds = math.inf
    if not math.isfinite(seconds):  # 1e400 parses as infinity
        raise BadRow(f"{key} is not a finite number")
    if seconds < 0:
        raise BadRow(f"{key} is negative")
    return seconds


def _row(d: object, base: Path) -> Row:
    if not isinstance(d, dict):
        raise BadRow("not a JSON object")
    video, audio = _path(d, "video", base), _path(d, "audio", base)
    if video is None and audio is None:
        raise BadRow("no video and no audio")
    text, split, captions = _string(d, "text"), _string(d, "split"), _captions(d)
    check_caption(text)
    start, end = _seconds(d, "start") or 0.0, _seconds(d, "end")
    if end is not None and end <= start:
        raise BadRow("end is not after start")
    known = {"video", "audio", "text", "captions", "start", "end", "split"}
    return Row(video=video, audio=audio, text=text if text is not None or not captions else captions[0],
               start=start, end=end, split=split or "train", captions=captions,
               extra={k: v for k, v in d.items() if k not in known})


class ClipDataset(Dataset):
    """Decodes rows into training samples. Random frame times in training are drawn from a
    generator seeded by (seed, epoch, index), so a sample is the same in any worker and after a
    resume; so is the caption drawn from a row's "captions" (`random_caption`, on in training:
    evaluation reads each row's first). A failed row returns {"skipped": reason}, which the
    collate counts."""

    def __init__(self, rows: list[Row], config: VLSAConfig, train: bool = True, seed: int = 0,
                 random_caption: bool | None = None, augment: bool = False):
        self.rows, self.config, self.train, self.seed = rows, config, train, seed
        self.augment = augment  # train/augment.py, for the sound-only rows
        self.random_caption = train if random_caption is None else random_caption
        self.epoch = 0
        self._frontend = None
        self._tokenizer = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        if self._frontend is None:  # built lazily: once per worker process
            self._frontend = build_frontend(self.config.audio)
            self._tokenizer = build_tokenizer(self.config.text)
        row = self.rows[index]
        g = sample_generator(self.seed, self.epoch, index)
        try:
            clip = load_row(row, self.config.video, self.config.audio, train=self.train, generator=g,
                            tower_rate=tower_rate(self.config))
        except MediaError as exc:
            return {"skipped": str(exc)}
        text = self._caption(row, g)
        if self.augment:
            clip = augment_clip(clip, g)
        return make_sample(clip, text, self.config, self._frontend, self._tokenizer)

    def captions(self) -> list[str | None]:
        return [row.text for row in self.rows]

    def _caption(self, row: Row, generator: torch.Generator) -> str | None:
        return draw_caption(row.text, row.captions, generator) if self.random_caption else row.text


def draw_caption(text: str | None, captions: list[str], generator: torch.Generator) -> str | None:
    """One of a clip's captions, drawn after the frame times from the sample's generator (so a
    clip with one caption samples its frames as it always did), or its text."""
    if len(captions) < 2:
        return text
    return captions[int(torch.randint(len(captions), (), generator=generator))]


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The generator of one sample's random choices: the same in any worker and after a resume."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 10_000_019 + index)


def load_row(row: Row, video_cfg: VideoConfig, audio_cfg: AudioConfig, train: bool = False,
             generator: torch.Generator | None = None, tower_rate: int | None = None) -> Clip:
    """Decode one manifest row: its video's frames and soundtrack, or, when the row names a
    separate audio file, the video's frames and that file's sound (each decoded once; the sound
    again at `tower_rate` when given, for a pretrained audio tower: load_clip)."""
    source = row.video or row.audio
    if source is None:
        raise MediaError("row: no video and no audio")
    for path in (row.video, row.audio):
        if path is not None and not Path(path).exists():
            raise MediaError(f"{path}: missing file")
    end = row.end if row.end is not None else row.start + audio_cfg.clip_seconds
    if row.video is None or row.audio is None:
        clip = load_clip(source, row.start, end, video_cfg, audio_cfg, train=train, generator=generator,
                         tower_rate=tower_rate)
    else:
        frames = read_frames(row.video, row.start, end, video_cfg.frames, video_cfg.size,
                             "random" if train else "uniform", generator)
        sound = load_clip(row.audio, row.start, end, video_cfg, audio_cfg, tower_rate=tower_rate)
        clip = Clip(frames=frames, wave=sound.wave, has_audio=sound.has_audio, has_video=True,
                    duration=sound.duration, tower_wave=sound.tower_wave)
    if 0 < clip.duration <= row.start:  # decoding gave the last frame repeated and silence
        raise MediaError(f"{source}: starts past the end of the file ({row.start:g} s of {clip.duration:g} s)")
    return clip


def collate_skipping(items: list[dict], pad_to: int | None = None) -> dict:
    """Stack the good samples; count the skipped ones by reason under "skipped". With pad_to,
    fill the batch back up with copies of a good sample flagged as having no modality, so every
    batch keeps its shape (ranks gather equal sizes; compiled steps see one shape)."""
    good = [s for s in items if "skipped" not in s]
    skipped = Counter(failure_reason(s["skipped"]) for s in items if "skipped" in s)
    if pad_to and good and len(good) < pad_to:
        filler = {**good[0], "has_video": torch.tensor(False), "has_audio": torch.tensor(False),
                  "has_text": torch.tensor(False)}
        good = good + [filler] * (pad_to - len(good))
    batch = collate(good) if good else {}
    batch["skipped"] = skipped
    return batch


def failure_reason(message: str) -> str:
    """'path: reason (detail)' -> 'reason', so counts group by kind of failure."""
    reason = message.split(": ", 1)[-1]
    return reason.split(" (")[0]


class ResumableSampler(Sampler[int]):
    """Shuffled indices, a new permutation per epoch from (seed, epoch), sharded across ranks,
    starting `start` samples into the epoch: the data position a checkpoint records."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.seed, self.rank, self.world = n, seed, rank, world
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, start: int) -> None:
        self.epoch, self.start = epoch, start

    def per_rank(self) -> int:
        return self.n // self.world

    def epoch_order(self) -> list[int]:
        return torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()

    def __iter__(self):
        # rank r takes every world-th index, so the step-k batches of all ranks together are
        # epoch_order()[k * B * world : (k + 1) * B * world]
        mine = self.epoch_order()[self.rank: self.per_rank() * self.world: self.world]
        return iter(mine[self.start:])

    def __len__(self) -> int:
        return self.per_rank() - self.start


class GroupedSampler(ResumableSampler):
    """Hard-negative batches: clips whose captions share a rare word come `group` at a time.

    Each clip's key is its rarest caption word that at least `group` captions and at most half of
    them contain (ties: alphabetical), so a group is a handful of clips about the same specific
    thing ("trombone", "red") that differ in the rest: the negatives a contrastive loss learns the
    most from, and that random batches rarely hold. Per epoch the clips of each key are shuffled
    and cut into groups of `group`; the full groups come first, in random order, then the leftovers.
    With batch * world a multiple of `group`, no full group straddles two steps. The order is a
    function of (seed, epoch) alone, so resuming stays exact.
    """

    def __init__(self, captions: list[str | None], seed: int, group: int, rank: int = 0, world: int = 1):
        super().__init__(len(captions), seed, rank, world)
        self.group = group
        self.keys = caption_keys(captions, group)

    def epoch_order(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        shuffled = torch.randperm(self.n, generator=g).tolist()
        by_key: dict[str, list[int]] = {}
        for i in shuffled:
            by_key.setdefault(self.keys[i] or "", []).append(i)
        full, rest = [], []
        for key in sorted(by_key):
            members = by_key[key]
            cut = len(members) - len(members) % self.group if key else 0
            full += [members[k: k + self.group] for k in range(0, cut, self.group)]
            rest += members[cut:]
        order = [i for k in torch.randperm(len(full), generator=g).tolist() for i in full[k]]
        return order + [rest[k] for k in torch.randperm(len(rest), generator=g).tolist()]


def caption_keys(captions: list[str | None], group: int) -> list[str | None]:
    """Each caption's rarest word shared by >= group and <= half of the captions, else None."""
    words = [set(re.findall(r"[^\W\d_]+", (c or "").lower())) for c in captions]
    df = Counter(w for ws in words for w in ws)
    usable = {w for w, n in df.items() if group <= n <= len(captions) / 2}
    return [min((df[w], w) for w in ws & usable)[1] if ws & usable else None for ws in words]


def make_loader(dataset: ClipDataset, sampler: ResumableSampler, batch_size: int, workers: int) -> DataLoader:
    # A private generator: creating the iterator must not consume the global RNG, or a resumed
    # run (which creates it mid-epoch) would draw different masks than an uninterrupted one.
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=functools.partial(collate_skipping, pad_to=batch_size), drop_last=True, persistent_workers=False,
                      pin_memory=torch.cuda.is_available(), generator=torch.Generator(),
                      worker_init_fn=_ignore_sigterm if workers else None)


def _ignore_sigterm(worker_id: int) -> None:
    """A scheduler's SIGTERM goes to the whole process group; the workers leave it to the main
    process, which checkpoints and then shuts them down."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
