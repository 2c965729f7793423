"""Manifests from a folder of media with sidecar captions.

A caption sits beside its media file under the same name: `clip.txt` (the whole file's text),
`clip.srt` or `clip.vtt` (timed subtitles: one row per cue, with its start and end, as HowTo100M
pairs transcripts with clips). Media without a caption still get a row (audio and video only).
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from vlsa.media import MEDIA_EXTENSIONS

_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})")


def _seconds(stamp: str) -> float:
    m = _TIME.fullmatch(stamp.strip())
    if not m:
        raise ValueError(f"bad timestamp {stamp!r}")
    h, mnt, s, frac = m.groups()
    return int(h or 0) * 3600 + int(mnt) * 60 + int(s) + int(frac.ljust(3, "0")) / 1000


def parse_subtitles(text: str) -> list[tuple[float, float, str]]:
    """Cues of an SRT or WebVTT file: (start, end, text). Cue numbers, headers, tags are dropped."""
    cues = []
    for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [line.strip() for line in block.strip().splitlines()]
        timing = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if timing is None:
            continue
        start, end = (part.split()[0] for part in lines[timing].split("-->"))
        words = " ".join(re.sub(r"<[^>]+>", "", line) for line in lines[timing + 1:]).strip()
        if words:
            cues.append((_seconds(start), _seconds(end), words))
    return cues


def rows_for(media: Path, root: Path) -> list[dict]:
    rel = media.relative_to(root).as_posix()
    for ext in (".srt", ".vtt"):
        sidecar = media.with_suffix(ext)
        if sidecar.is_file():
            cues = parse_subtitles(sidecar.read_text(encoding="utf-8", errors="replace"))
            return [{"video": rel, "text": t, "start": round(s, 3), "end": round(e, 3)} for s, e, t in cues]
    txt = media.with_suffix(".txt")
    text = txt.read_text(encoding="utf-8", errors="replace").strip() if txt.is_file() else None
    return [{"video": rel, **({"text": text} if text else {})}]


def build_manifest(folder: Path, test_fraction: float = 0.0, seed: int = 0) -> list[dict]:
    """Rows for every media file under `folder` (hidden folders skipped), paths relative to it.
    Files, not rows, are assigned to splits, so cues of one video never straddle train and test."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in MEDIA_EXTENSIONS and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    test = set(random.Random(seed).sample(range(len(files)), round(len(files) * test_fraction)))
    rows = []
    for i, media in enumerate(files):
        for row in rows_for(media, folder):
            rows.append({**row, "split": "test" if i in test else "train"})
    return rows


def merge_manifests(paths: list[Path]) -> tuple[list[dict], int]:
    """The rows of several manifests as one, each media path made absolute (a manifest's relative
    paths are relative to its own folder) and every other field kept. Rows `parse_manifest`
    rejects are left out and counted: (rows, skipped)."""
    from train.data import parse_manifest

    rows, skipped = [], 0
    for path in paths:
        good, rejected = parse_manifest(path)
        skipped += len(rejected)
        for r in good:
            row = {**r.extra, "split": r.split}
            for key, media in (("video", r.video), ("audio", r.audio)):
                if media is not None:
                    row[key] = str(Path(media).absolute())
            if r.text is not None:
                row["text"] = r.text
            if r.captions:
                row["captions"] = r.captions
            if r.start:
                row["start"] = r.start
            if r.end is not None:
                row["end"] = r.end
            rows.append(row)
    return rows, skipped
