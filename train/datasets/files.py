"""Finding a dataset's clips among the downloaded files, by the names the download tools give.

YouTube clips (AudioSet, VGGSound, AudioCaps, HowTo100M, YouCook2) are found by their 11-character
video id in any of these names, anywhere under the media folder:
- `ID.mp4`: yt-dlp with `-o "%(id)s.%(ext)s"`, the whole video (YouCook2's `raw_videos/SPLIT/RECIPE/ID.mp4`);
- `YID.wav`: AudioSet and AudioCaps copies that prefix the id with Y (PANNs, AudioCaps downloads);
- `ID_START.mp4` (`ID_000030.mp4`, VGGSound's naming), `ID_START_END.mp4` (`ID_000030_000040.mp4`,
  the Kinetics downloader's) or `ID_START-END`: the segment alone, cut at START;
- `TITLE [ID].mp4`: yt-dlp's default output name;
- `KEY.mp4` beside `KEY.json` holding the video's URL: video2dataset's `files` output.
Other datasets name their files by their own ids and are found by file name or stem.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from vlsa.media import MEDIA_EXTENSIONS

YOUTUBE_ID = r"[A-Za-z0-9_-]{11}"
_TIME = r"\d+(?:\.\d+)?"
_WHOLE_NAMES = [re.compile(rf"Y?(?P<id>{YOUTUBE_ID})"), re.compile(rf".*\[(?P<id>{YOUTUBE_ID})\]")]
_CUT_NAME = re.compile(rf"(?P<id>{YOUTUBE_ID})_(?P<start>{_TIME})(?:[_-](?P<end>{_TIME}))?")
_URL_ID = re.compile(rf"(?:[?&]v=|youtu\.be/|/shorts/|/embed/)(?P<id>{YOUTUBE_ID})")
START_TOLERANCE = 0.5  # seconds: names carry whole seconds (VGGSound), metadata 30.000 (AudioSet)


class MediaIndex:
    """Every media file under `root` (hidden folders left out), looked up by relative path, file
    name, stem, or YouTube id and start."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.by_name: dict[str, list[Path]] = {}
        self.by_stem: dict[str, list[Path]] = {}
        self.youtube: dict[str, list[tuple[Path, float | None]]] = {}  # id -> [(file, start it was cut at)]
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(folder) / name
                if path.suffix.lower() in MEDIA_EXTENSIONS and not name.startswith("."):
                    self._add(path)

    def _add(self, path: Path) -> None:
        self.by_name.setdefault(path.name, []).append(path)
        self.by_stem.setdefault(path.stem, []).append(path)
        cut = _CUT_NAME.fullmatch(path.stem)
        if cut:
            self.youtube.setdefault(cut["id"], []).append((path, float(cut["start"])))
            return
        video_id = next((m["id"] for p in _WHOLE_NAMES if (m := p.fullmatch(path.stem))), None)
        video_id = video_id or _id_from_sidecar(path.with_suffix(".json"))
        if video_id:
            self.youtube.setdefault(video_id, []).append((path, None))

    def find(self, name: str) -> Path | None:
        """A file by its path relative to the root, else its file name, else its stem."""
        exact = self.root / name
        if exact.suffix.lower() in MEDIA_EXTENSIONS and exact.is_file():
            return exact
        found = self.by_name.get(Path(name).name) or self.by_stem.get(name)
        return found[0] if found else None

    def find_youtube(self, video_id: str, start: float | None = None) -> tuple[Path | None, bool]:
        """(file, whether it is the segment alone) of a YouTube video's segment at `start`: a file
        cut at that start, else a file of the whole video (or one named by the id alone)."""
        files = self.youtube.get(video_id, [])
        for path, cut_at in files:
            if cut_at is not None and (start is None or abs(cut_at - start) <= START_TOLERANCE):
                return path, True
        whole = next((path for path, cut_at in files if cut_at is None), None)
        return whole, False


def _id_from_sidecar(sidecar: Path) -> str | None:
    """The YouTube id in video2dataset's KEY.json ("url", or a "videoid"/"youtube_id" column)."""
    if not sidecar.is_file():
        return None
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(meta, dict):
        return None
    for key in ("youtube_id", "videoid", "ytid", "video_id"):
        if isinstance(meta.get(key), str) and re.fullmatch(YOUTUBE_ID, meta[key]):
            return meta[key]
    m = _URL_ID.search(str(meta.get("url", "")))
    return m["id"] if m else None
