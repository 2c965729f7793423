"""YouCook2: cooking videos cut into recipe steps, each with its sentence.

Metadata: `youcookii_annotations_trainval.json`: `{"database": {VIDEO_ID: {"subset": "training",
"recipe_type": "113", "annotations": [{"segment": [90, 102], "sentence": "..."}, ...]}}}`; the
whole videos as `raw_videos/SUBSET/RECIPE/VIDEO_ID.mp4` (any folder under --media). Its test
annotations are not public, so the validation videos are the test split (as papers evaluate).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from train.datasets.common import Clip, ImportOptions, Skip, seconds

SUBSETS = {"training": "train", "validation": "test", "testing": "test"}


def youcook2_clips(sources: list[Path], opts: ImportOptions) -> Iterator[Clip | Skip]:
    for source in sources:
        try:
            database = json.loads(source.read_text(encoding="utf-8"))["database"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
            database = None
        if not isinstance(database, dict):
            raise ValueError(f"{source}: not a YouCook2 annotation JSON (no \"database\" of videos)")
        for video_id, video in database.items():
            if not isinstance(video, dict) or not isinstance(video.get("annotations"), list):
                yield Skip("bad row")
                continue
            split = opts.split or SUBSETS.get(video.get("subset"), "train")
            media, _ = opts.index.find_youtube(video_id)
            for step in video["annotations"]:
                segment = step.get("segment") if isinstance(step, dict) else None
                start, end = (seconds(t) for t in segment) if isinstance(segment, list) and len(segment) == 2 else (None, None)
                if start is None or end is None or end <= start:
                    yield Skip("bad start or end time")
                elif not isinstance(step.get("sentence"), str) or not step["sentence"].strip():
                    yield Skip("no caption")
                else:
                    yield Clip(media, [step["sentence"].strip()], split, start, end, False,
                               {"youtube_id": video_id, "recipe_type": video.get("recipe_type")})
