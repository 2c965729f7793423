"""MSR-VTT: 10,000 web clips with 20 captions each, and the 1k-A split most papers report.

Metadata: `train_val_videodatainfo.json` / `test_videodatainfo.json` (or CLIP4Clip's
`MSRVTT_data.json`): `{"videos": [{"video_id": "video0", "split": "train"}, ...], "sentences":
[{"video_id": "video0", "caption": "..."}, ...]}`; files `video0.mp4` anywhere under --media.
The 1k-A split: `--test-list MSRVTT_JSFUSION_test.csv` (columns `key,vid_key,video_id,sentence`,
or a plain list of video ids) and optionally `--train-list MSRVTT_train.9k.csv` (else every other
video trains). A 1k-A test clip's JSFUSION sentence is its first caption, so its `text`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from train.datasets.common import Clip, ImportOptions, Skip, csv_dicts

JSON_SPLITS = {"train": "train", "validate": "val", "test": "test"}


def video_list(path: Path) -> dict[str, str | None]:
    """video id -> its 1k-A sentence (None in a plain list), from a CSV with a video_id column or
    a plain list of ids, one a line."""
    first = path.read_text(encoding="utf-8").splitlines()[:1]
    if first and "video_id" in first[0].split(","):
        return {r["video_id"]: r.get("sentence") for r in csv_dicts(path) if r.get("video_id")}
    return {line.strip(): None for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def _load(source: Path) -> dict:
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{source}: not an MSR-VTT JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list) or not isinstance(data.get("sentences"), list):
        raise ValueError(f"{source}: not an MSR-VTT JSON (needs \"videos\" and \"sentences\" lists)")
    return data


def msrvtt_clips(sources: list[Path], opts: ImportOptions) -> Iterator[Clip | Skip]:
    test = video_list(opts.test_list) if opts.test_list else None
    train = video_list(opts.train_list) if opts.train_list else None
    for source in sources:
        data = _load(source)
        captions: dict[str, list[str]] = {}
        for s in data["sentences"]:
            if isinstance(s, dict) and isinstance(s.get("caption"), str) and s["caption"].strip():
                captions.setdefault(str(s.get("video_id")), []).append(s["caption"].strip())
        for video in data["videos"]:
            video_id = video.get("video_id") if isinstance(video, dict) else None
            if not isinstance(video_id, str):
                yield Skip("bad row")
                continue
            caps = captions.get(video_id, [])
            if test is None:
                split = JSON_SPLITS.get(video.get("split"), "train")
            elif video_id in test:
                split = "test"
                if test[video_id]:  # the sentence 1k-A scores against comes first
                    caps = [test[video_id].strip()] + [c for c in caps if c != test[video_id].strip()]
            elif train is None or video_id in train:
                split = "train"
            else:
                continue  # in neither 1k-A list (the 9k training list leaves out the rest)
            if not caps:
                yield Skip("no caption")
                continue
            yield Clip(opts.index.find(video_id), caps, opts.split or split, extra={"video_id": video_id})
