"""WebVid: stock-footage clips with their alt-text captions.

Metadata (`results_2M_train.csv`, `results_2M_val.csv`): `videoid,contentUrl,duration,page_dir,name`;
the files as WebVid's download script writes them (`PAGE_DIR/VIDEOID.mp4`) or by id alone
(`VIDEOID.mp4`, video2dataset with the `videoid` column as key) anywhere under --media.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from train.datasets.common import Clip, ImportOptions, Skip, csv_dicts, split_from_name


def webvid_clips(sources: list[Path], opts: ImportOptions) -> Iterator[Clip | Skip]:
    for source in sources:
        split = opts.split or split_from_name(source)
        for row in csv_dicts(source):
            video_id, caption = row.get("videoid") or "", (row.get("name") or "").strip()
            if not video_id:
                yield Skip("bad row")
            elif not caption:
                yield Skip("no caption")
            else:
                page_dir = row.get("page_dir")
                media = (page_dir and opts.index.find(f"{page_dir}/{video_id}.mp4")) or opts.index.find(video_id)
                yield Clip(media, [caption], split, extra={"videoid": video_id})
