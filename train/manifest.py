"""Manifests from a folder of media with sidecar captions.

A caption sits beside its media file under the same name: `clip.txt` (the whole file's text),
`clip.srt` or `clip.vtt` (timed subtitles: one row per cue, with its start and end, as HowTo100M
pairs transcripts with clips). Media without a caption still get a row (audio and video only).
"""

from __future__ import annotations

import io
import logging
import random
from pathlib import Path

import webvtt
from webvtt.errors import MalformedCaptionError, MalformedFileError

from vlsa.media import MEDIA_EXTENSIONS

log = logging.getLogger(__name__)
SUBTITLE_FORMATS = {".srt": "srt", ".vtt": "vtt"}  # sidecar extension -> webvtt-py's format name


def parse_subtitles(text: str, format: str = "vtt") -> list[tuple[float, float, str]]:
    """Cues of an SRT or WebVTT text (webvtt-py): (start, end, text), seconds to the millisecond;
    tags dropped, a cue's lines joined by spaces, cues without words left out. Malformed text is
    a ValueError."""
    try:
        captions = webvtt.from_buffer(io.StringIO(text), format=format).captions
    except (MalformedFileError, MalformedCaptionError) as exc:
        raise ValueError(f"not {format.upper()} subtitles ({exc})") from None
    cues = []
    for c in captions:
        words = " ".join(line.strip() for line in c.text.splitlines()).strip()
        if words:
            cues.append((c.start_time.in_milliseconds() / 1000, c.end_time.in_milliseconds() / 1000, words))
    return cues


def rows_for(media: Path, root: Path) -> list[dict]:
    """The rows of one media file: one per subtitle cue, else one with its .txt caption (if any).
    A subtitle file that does not parse is named in a warning and the media keeps a row."""
    rel = media.relative_to(root).as_posix()
    for ext, format in SUBTITLE_FORMATS.items():
        sidecar = media.with_suffix(ext)
        if sidecar.is_file():
            try:
                cues = parse_subtitles(sidecar.read_text(encoding="utf-8", errors="replace"), format)
            except ValueError as exc:
                log.warning("%s: %s; its media is listed without captions", sidecar, exc)
                break
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
