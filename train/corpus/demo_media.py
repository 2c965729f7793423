"""The real media of `vlsa demo`: a few held-out corpus rows copied into the package, credited.

    vlsa data demo-media CORPUS vlsa/assets/media

Takes, from a built corpus's test split only (so the shipped checkpoint never trained on them),
the picture-with-sound clips named in `CLIPS` and the spoken words named in `SPEECH`, copies
their files into OUT, and writes OUT/manifest.jsonl (the rows, paths relative to OUT, so `vlsa
eval` and `bench/real_media.py` read them as any manifest) and OUT/CREDITS.md (each file's
source package and licence, and the licence of its picture). Every licence is one that allows
redistribution with credit. The output depends only on the corpus manifest.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

# (source, caption): the first test clip of that source with that caption. Everyday sounds the
# app's example queries name, and held-out concepts of the corpus.
CLIPS = (
    ("shared-media", "the sound of a dog"),
    ("shared-media", "the sound of a cat"),
    ("shared-media", "a bird sings"),
    ("shared-media", "a duck quacks"),
    ("shared-media", "a horse neighs"),
    ("shared-media", "the sound of a rooster"),
    ("shared-media", "the sound of an owl"),
    ("shared-media", "the sound of a wolf howl"),
    ("shared-media", "the sound of a car passing"),
    ("shared-media", "the sound of a motorcycle passing"),
    ("shared-media", "a door closes"),
    ("shared-media", "a water drops"),
    ("shared-media", "the sound of a baby cry"),
    ("shared-media", "the sound of a laugh female"),
    ("shared-media", "the sound of a finger snap"),
    ("shared-media", "the sound of a guitar strum"),
    ("shared-media", "the sound of a drum set"),
    ("shared-media", "the sound of a piano"),
    ("shared-media", "the sound of a church organ"),
    ("shared-media", "the sound of a flute"),
    ("shared-media", "the sound of a cello"),
    ("shared-media", "the sound of a bell choir"),
    ("supertuxkart-data", "a car horn honks"),
    ("supertuxkart-data", "rain falls"),
    ("supertuxkart-data", "a crowd cheers a goal"),
    ("supertuxkart-data", "fireworks bang"),
    ("supertuxkart-data", "a splash of water"),
    ("supertuxkart-data", "a clock ticks"),
    ("0ad-data", "an elephant calls"),
    ("0ad-data", "a sheep bleats"),
    ("0ad-data", "thunder rumbles"),
    ("widelands-data", "a frog croaks"),
    ("minetest-data", "a glass breaks"),
    ("fluid-soundfont-gm", "a harp plays a slow melody"),
    ("fluid-soundfont-gm", "a violin plays a slow melody"),
    ("fluid-soundfont-gm", "a banjo plays a fast melody"),
    ("fluid-soundfont-gm", "an accordion plays a major chord"),
    ("fluid-soundfont-gm", "a muted trumpet plays a slow melody"),
)
# (voice, caption): spoken digits and letters by a voice never heard in training.
SPEECH = tuple(("en-us+m7", f"a voice says the number {n}") for n in ("one", "two", "three", "four", "five")) + \
    tuple(("en-us+f4", f"a voice says the letter {c}") for c in "abcxyz")


class DemoMediaError(ValueError):
    """A corpus that lacks a named row, or a row that is not held out; one line."""


def pick_rows(rows: list[dict]) -> list[dict]:
    """The rows named by CLIPS and SPEECH, in that order; DemoMediaError if one is missing."""
    test = [r for r in rows if r.get("split") == "test"]

    def first(kind: str, caption: str, field: str, value: str) -> dict:
        for r in test:
            if r["kind"] == kind and r.get(field) == value and r["text"] == caption:
                return r
        raise DemoMediaError(f"no held-out {kind} {caption!r} ({field} {value}) in the corpus")

    return ([first("clip", caption, "source", source) for source, caption in CLIPS]
            + [first("speech", caption, "voice", voice) for voice, caption in SPEECH])


def write_demo_media(corpus: Path, out: Path) -> list[dict]:
    """Copy the picked rows' files from `corpus` into `out` (replacing what is there) with the
    manifest and the credits. Returns the rows written."""
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines() if line.strip()]
    licences = json.loads((corpus / "licences.json").read_text())
    picked = pick_rows(rows)
    if out.exists():
        if any(out.iterdir()) and not (out / "CREDITS.md").is_file():  # only ever replace our own output
            raise DemoMediaError(f"{out} holds other files; give an empty or new folder")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    written = []
    for row in picked:
        key = "video" if row["kind"] == "clip" else "audio"
        src = corpus / row[key]
        name = f"{row['kind']}/{Path(row[key]).name}"
        (out / name).parent.mkdir(exist_ok=True)
        shutil.copyfile(src, out / name)
        entry = {key: name, "text": row["text"], "split": "test", "kind": row["kind"], "source": row["source"],
                 "licence": row["licence"]}
        if row.get("picture_source"):
            entry["picture_source"] = row["picture_source"]
            entry["picture_licence"] = licences.get(row["picture_source"], "see the package")
        if row.get("voice"):
            entry["voice"] = row["voice"]
        written.append(entry)
    with open(out / "manifest.jsonl", "w") as f:
        for entry in written:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
    (out / "CREDITS.md").write_text(credits(written))
    return written


def credits(rows: list[dict]) -> str:
    lines = ["# The demo's real media: sources and licences", "",
             "Held-out rows of the corpus `vlsa data corpus` builds (never seen in training), made by",
             "`vlsa data demo-media`. Sounds come unchanged from the named Debian packages (re-encoded",
             "into the clip); a clip's picture is the named package's image, moved; speech is espeak-ng",
             "output. Each file may be redistributed under the licences named, with this credit.", "",
             "| file | caption | sound from | sound licence | picture from | picture licence |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        path = r.get("video") or r["audio"]
        lines.append(f"| {path} | {r['text']} | {_package(r)} | {r['licence']} | "
                     f"{r.get('picture_source', '-')} | {r.get('picture_licence', '-')} |")
    return "\n".join(lines) + "\n"


def _package(row: dict) -> str:
    """The Debian package a sound comes from; the shared media's come from two, told apart by
    their licence (scratch: CC-BY-SA-3.0, (c) 2011 MIT; lmms-common: GPL-2+)."""
    if row["source"] != "shared-media":
        return row["source"]
    return "scratch (Media/Sounds)" if row["licence"].startswith("CC-BY-SA") else "lmms-common (samples)"
