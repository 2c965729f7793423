"""AudioCaps and Clotho: sound clips with several written captions each (5 in their test sets).

AudioCaps (`train.csv`, `val.csv`, `test.csv`): `audiocap_id,youtube_id,start_time,caption`, one
line per caption; the lines of one (youtube_id, start_time) are one 10 s clip of AudioSet, found
as AudioSet's are (or as `AUDIOCAP_ID.wav`). Clotho (`clotho_captions_development.csv`, ...):
`file_name,caption_1,...,caption_5`, the audio as `development/FILE_NAME` (any folder under --media).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from train.datasets.common import Clip, ImportOptions, Skip, csv_dicts, seconds, split_from_name

AUDIOCAPS_SECONDS = 10.0  # AudioCaps clips are AudioSet's 10 s segments
CLOTHO_CAPTIONS = [f"caption_{i}" for i in range(1, 6)]


def audiocaps_clips(sources: list[Path], opts: ImportOptions) -> Iterator[Clip | Skip]:
    for source in sources:
        split = opts.split or split_from_name(source)
        clips: dict[tuple[str, float], list[dict]] = {}  # one clip's caption lines, in file order
        for row in csv_dicts(source):
            start, caption = seconds(row.get("start_time")), (row.get("caption") or "").strip()
            if not row.get("youtube_id") or start is None:
                yield Skip("bad row")
            elif not caption:
                yield Skip("no caption")
            else:
                clips.setdefault((row["youtube_id"], start), []).append(row)
        for (video_id, start), rows in clips.items():
            media, cut = opts.index.find_youtube(video_id, start)
            if media is None:  # downloads named by the caption's id hold the clip alone
                media = next(filter(None, (opts.index.find(r.get("audiocap_id") or "") for r in rows)), None)
                cut = True
            yield Clip(media, [r["caption"].strip() for r in rows], split, start, start + AUDIOCAPS_SECONDS, cut,
                       {"youtube_id": video_id, "audiocap_ids": [r.get("audiocap_id") for r in rows]})


def clotho_clips(sources: list[Path], opts: ImportOptions) -> Iterator[Clip | Skip]:
    for source in sources:
        split = opts.split or split_from_name(source)
        for row in csv_dicts(source):
            name = (row.get("file_name") or "").strip()
            captions = [row[c].strip() for c in CLOTHO_CAPTIONS if (row.get(c) or "").strip()]
            if not name:
                yield Skip("bad row")
            elif not captions:
                yield Skip("no caption")
            else:
                yield Clip(opts.index.find(name), captions, split, extra={"file_name": name})
