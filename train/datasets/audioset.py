"""AudioSet and VGGSound: YouTube segments with sound-event labels; the labels are the caption.

AudioSet (`balanced_train_segments.csv`, `eval_segments.csv`, ...): `# YTID, start_seconds,
end_seconds, positive_labels` with the labels as quoted machine ids (`"/m/09x0r,/m/05zppz"`),
named by `class_labels_indices.csv` (`index,mid,display_name`). VGGSound (`vggsound.csv`, no
header): `YTID,start_seconds,label,split`, every clip 10 s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from train.datasets.common import Clip, ImportOptions, Skip, csv_dicts, csv_rows, seconds, split_from_name

VGGSOUND_SECONDS = 10.0  # every VGGSound clip is the 10 s from its start
VGGSOUND_SPLITS = {"train": "train", "test": "test"}


def label_names(path: Path) -> dict[str, str]:
    """AudioSet's machine id -> display name, from class_labels_indices.csv."""
    return {r["mid"]: r["display_name"] for r in csv_dicts(path) if r.get("mid") and r.get("display_name")}


def labels_caption(names: list[str]) -> str:
    return ", ".join(names)


def audioset_clips(sources: list[Path], opts: ImportOptions) -> Iterator[Clip | Skip]:
    if opts.labels is None:
        raise ValueError("audioset needs --labels class_labels_indices.csv (label ids to names)")
    names = label_names(opts.labels)
    for source in sources:
        split = opts.split or split_from_name(source)
        for cells in csv_rows(source):
            if len(cells) < 4:
                yield Skip("bad row")
                continue
            video_id, start, end = cells[0], seconds(cells[1]), seconds(cells[2])
            if start is None or end is None or end <= start:
                yield Skip("bad start or end time")
                continue
            labels = [names[m.strip()] for m in cells[3].split(",") if m.strip() in names]
            if not labels:
                yield Skip("no known label")
                continue
            media, cut = opts.index.find_youtube(video_id, start)
            yield Clip(media, [labels_caption(labels)], split, start, end, cut,
                       {"youtube_id": video_id, "labels": labels})


def vggsound_clips(sources: list[Path], opts: ImportOptions) -> Iterator[Clip | Skip]:
    for source in sources:
        for cells in csv_rows(source):
            if len(cells) < 3:
                yield Skip("bad row")
                continue
            video_id, start, label = cells[0], seconds(cells[1]), cells[2]
            if start is None:
                yield Skip("bad start or end time")
                continue
            if not label:
                yield Skip("no caption")
                continue
            split = opts.split or VGGSOUND_SPLITS.get(cells[3] if len(cells) > 3 else "", "train")
            media, cut = opts.index.find_youtube(video_id, start)
            yield Clip(media, [label], split, start, start + VGGSOUND_SECONDS, cut,
                       {"youtube_id": video_id, "labels": [label]})
