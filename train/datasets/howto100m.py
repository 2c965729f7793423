"""HowTo100M: narrated videos cut into clips by their ASR captions' times; the paper pre-trains
on the videos that are also in AudioSet.

Captions: the released `caption.json` (`{VIDEO_ID: {"start": [...], "end": [...], "text": [...]}}`)
or a folder of one CSV per video (`VIDEO_ID.csv` with columns `start,end,text`, as MIL-NCE reads
them). `--audioset SEGMENTS.csv` (repeatable) keeps only the videos those AudioSet lists name.
Each caption is a clip of the whole downloaded video (`ID.mp4`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from train.datasets.common import Clip, ImportOptions, Skip, csv_dicts, csv_rows, seconds


def audioset_ids(paths: tuple[Path, ...]) -> set[str]:
    return {cells[0] for path in paths for cells in csv_rows(path) if cells}


def captions_by_video(source: Path) -> Iterator[tuple[str, object]]:
    """(video id, its captions as {"start", "end", "text"} lists) from caption.json or a folder
    of VIDEO_ID.csv; a video whose captions cannot be read comes with None."""
    if source.is_dir():
        for path in sorted(source.glob("*.csv")):
            rows = list(csv_dicts(path))
            yield path.stem, {k: [r.get(k) for r in rows] for k in ("start", "end", "text")}
        return
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{source}: not a HowTo100M caption.json ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source}: not a HowTo100M caption.json (not an object of videos)")
    yield from data.items()


def howto100m_clips(sources: list[Path], opts: ImportOptions) -> Iterator[Clip | Skip]:
    keep = audioset_ids(opts.audioset) if opts.audioset else None
    for source in sources:
        for video_id, caps in captions_by_video(source):
            if keep is not None and video_id not in keep:
                continue  # not in AudioSet: outside the paper's set, not a skipped row
            if not isinstance(caps, dict) or not all(isinstance(caps.get(k), list) for k in ("start", "end", "text")):
                yield Skip("bad captions")
                continue
            media, _ = opts.index.find_youtube(video_id)
            for start, end, text in zip(caps["start"], caps["end"], caps["text"], strict=False):
                start, end = seconds(start), seconds(end)
                if start is None or end is None or end <= start:
                    yield Skip("bad start or end time")
                elif not isinstance(text, str) or not text.strip():
                    yield Skip("no caption")
                else:
                    yield Clip(media, [text.strip()], opts.split or "train", start, end, False,
                               {"youtube_id": video_id})
