"""What every importer shares: the clip a metadata row names, the skip counting, finding the
clip's file, placing its segment in that file, and writing the manifest.

A manifest row holds one clip: `{"video" or "audio": path, "text": caption, "captions": [...],
"start", "end", "split"}` plus the dataset's own fields. `captions` holds every caption of a clip
(AudioCaps and Clotho have 5, MSR-VTT 20); `text` is the first, which is what the trainer reads.
Paths are relative to the manifest's folder.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from train.data import failure_reason
from train.datasets.files import MediaIndex
from vlsa.durable import replace_durably
from vlsa.media import VIDEO_EXTENSIONS, MediaError, probe

# seconds a file may fall short of a segment's end and still count as the whole source video
# (YouTube durations and AudioSet's segment ends disagree by a frame or so)
DURATION_SLACK = 1.0
MISSING = "missing file"


@dataclass
class Clip:
    """One clip a metadata row names, before its file is opened."""
    media: Path | None  # the local file; None when it is not there (counted as MISSING)
    captions: list[str]  # every caption of the clip, the dataset's order; may be empty
    split: str = "train"
    start: float | None = None  # the segment in the source video, when the metadata times it
    end: float | None = None
    cut: bool = False  # the file's name says it holds the segment alone (starts at the segment)
    extra: dict = field(default_factory=dict)  # dataset fields kept in the row (ids, labels)


@dataclass
class Skip:
    """A metadata row that names no usable clip; `reason` is counted in the summary."""
    reason: str


@dataclass
class ImportOptions:
    media: Path  # the folder of the downloaded files
    labels: Path | None = None  # AudioSet's class_labels_indices.csv
    split: str | None = None  # every row in this split (else the dataset's own split)
    test_list: Path | None = None  # MSR-VTT 1k-A test videos
    train_list: Path | None = None  # MSR-VTT 1k-A training videos
    audioset: tuple[Path, ...] = ()  # HowTo100M: keep only videos in these AudioSet segment CSVs
    probe: bool = True  # open every file (broken ones are skipped; the segment is placed by duration)
    index: MediaIndex | None = None  # built from `media` on first use


@dataclass
class ImportResult:
    rows: list[dict]
    skipped: Counter

    def summary(self, out: Path) -> str:
        splits = Counter(r["split"] for r in self.rows)
        line = f"wrote {len(self.rows)} rows to {out} (" + ", ".join(f"{s} {n}" for s, n in sorted(splits.items())) + ")"
        return line + (f"; skipped {sum(self.skipped.values())}: {counts(self.skipped)}" if self.skipped else "")


def counts(c: Counter) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in c.most_common())


def segment_in_file(clip: Clip, duration: float | None) -> tuple[float, float | None]:
    """Where the clip's segment lies in its file: (start, end); end None for "to the file's end".

    A file named with its segment's start holds that segment alone. Otherwise a file long enough
    to reach the segment's end is the whole source video (yt-dlp's download), and the metadata's
    times apply; a shorter one was cut to the segment when it was downloaded (AudioSet and
    AudioCaps copies named by the id alone), so the segment starts at 0 in it."""
    if clip.start is None:
        return 0.0, None
    if clip.cut or (duration and clip.end is not None and duration + DURATION_SLACK < clip.end):
        return 0.0, (clip.end - clip.start if clip.end is not None else None)
    return clip.start, clip.end


def clip_row(clip: Clip, out_dir: Path, info) -> dict:
    """The manifest row of a found clip; `info`: its probe, or None when files are not opened."""
    is_video = info.has_video if info else clip.media.suffix.lower() in VIDEO_EXTENSIONS
    start, end = segment_in_file(clip, info.duration if info else None)
    row = {("video" if is_video else "audio"): os.path.relpath(clip.media, out_dir)}
    if clip.captions:
        row["text"] = clip.captions[0]
        if len(clip.captions) > 1:
            row["captions"] = clip.captions
    if start:
        row["start"] = round(start, 3)
    if end is not None:
        row["end"] = round(end, 3)
    return {**row, "split": clip.split, **clip.extra}


def import_clips(clips: Iterable[Clip | Skip], out: Path, probe_files: bool = True,
                 on_clip: Callable[[], None] | None = None) -> ImportResult:
    """The manifest rows of `clips`; missing and broken files and bad metadata rows are counted
    by reason, never raised."""
    rows, skipped = [], Counter()
    for clip in clips:
        if on_clip:
            on_clip()
        if isinstance(clip, Skip):
            skipped[clip.reason] += 1
            continue
        if clip.media is None:
            skipped[MISSING] += 1
            continue
        try:
            info = probe(clip.media) if probe_files else None
        except MediaError as exc:
            skipped[failure_reason(str(exc))] += 1
            continue
        if info is not None and not (info.has_video or info.has_audio):
            skipped["no video or audio stream"] += 1
            continue
        rows.append(clip_row(clip, out.parent.absolute(), info))
    return ImportResult(rows, skipped)


def write_manifest(rows: list[dict], out: Path) -> None:
    """JSON Lines, written whole or not at all (a partial file renamed into place)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    partial.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    replace_durably(partial, out)


def csv_rows(path: Path, delimiter: str = ",") -> Iterator[list[str]]:
    """The rows of a CSV, cells stripped; blank lines and `#` comment lines (AudioSet's header)
    left out. Tab-separated files have no quoting (LSMDC's sentences hold bare quote marks)."""
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        lines = (line for line in f if line.strip() and not line.lstrip().startswith("#"))
        for cells in csv.reader(lines, delimiter=delimiter, skipinitialspace=True, quoting=quoting):
            yield [c.strip() for c in cells]


def csv_dicts(path: Path, delimiter: str = ",") -> Iterator[dict[str, str]]:
    """The rows of a CSV with a header line, as {column: cell}."""
    rows = csv_rows(path, delimiter)
    header = next(rows, [])
    for cells in rows:
        yield dict(zip(header, cells, strict=False))


def seconds(text: str | float | int | None) -> float | None:
    """A non-negative finite number of seconds, or None."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if 0 <= value < float("inf") else None


def split_from_name(path: Path, default: str = "train") -> str:
    """train/val/test from a metadata file's name (eval_segments.csv, LSMDC16_annos_val.csv, ...)."""
    name = path.stem.lower()
    for split, words in (("test", ("test", "eval")), ("val", ("val",)), ("train", ("train", "develop"))):
        if any(w in name for w in words):
            return split
    return default
