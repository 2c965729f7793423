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
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from train.corpus.clips import redraw_clip
from train.corpus.pictures import load_clipart, render_emoji
from train.corpus.sources import EMOJI_FONT

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
# caption -> (package, picture) each demo clip shows, chosen and looked at one by one: the corpus
# draws a clip's picture at random among those whose name shares a word with the caption, which
# gave "bell choir" a bell pepper, "water drops" a no-drinking-water sign, "a splash of water" a
# ship, "a baby cry" a penguin. Pictures are emoji code points or openclipart-png files.
EMOJI_PICTURES, CLIPART_PICTURES = "fonts-noto-color-emoji", "openclipart-png"
PICTURE_LICENCES = {EMOJI_PICTURES: "Apache-2.0", CLIPART_PICTURES: "Public Domain"}
PICTURES = {
    "the sound of a dog": (EMOJI_PICTURES, "U+1F415"),  # dog
    "the sound of a cat": (EMOJI_PICTURES, "U+1F408"),  # cat
    "a bird sings": (EMOJI_PICTURES, "U+1F426"),  # bird
    "a duck quacks": (EMOJI_PICTURES, "U+1F986"),  # duck
    "a horse neighs": (EMOJI_PICTURES, "U+1F40E"),  # horse
    "the sound of a rooster": (EMOJI_PICTURES, "U+1F413"),  # rooster
    "the sound of an owl": (EMOJI_PICTURES, "U+1F989"),  # owl
    "the sound of a wolf howl": (EMOJI_PICTURES, "U+1F43A"),  # wolf face
    "the sound of a car passing": (EMOJI_PICTURES, "U+1F697"),  # automobile
    "the sound of a motorcycle passing": (EMOJI_PICTURES, "U+1F3CD"),  # racing motorcycle
    "a door closes": (EMOJI_PICTURES, "U+1F6AA"),  # door
    "a water drops": (EMOJI_PICTURES, "U+1F4A7"),  # droplet
    "the sound of a baby cry": (EMOJI_PICTURES, "U+1F476"),  # baby
    "the sound of a laugh female": (EMOJI_PICTURES, "U+1F602"),  # face with tears of joy
    "the sound of a finger snap": (EMOJI_PICTURES, "U+1FAF0"),  # hand, index finger and thumb crossed
    "the sound of a guitar strum": (EMOJI_PICTURES, "U+1F3B8"),  # guitar
    "the sound of a drum set": (EMOJI_PICTURES, "U+1F941"),  # drum with drumsticks
    "the sound of a piano": (EMOJI_PICTURES, "U+1F3B9"),  # musical keyboard
    "the sound of a church organ": (EMOJI_PICTURES, "U+026EA"),  # church
    "the sound of a flute": (CLIPART_PICTURES, "recreation/music/flute_ganson.png"),  # a concert flute
    "the sound of a cello": (CLIPART_PICTURES, "recreation/music/cello_ganson.png"),  # a cello
    "the sound of a bell choir": (EMOJI_PICTURES, "U+1F514"),  # bell
    "a car horn honks": (EMOJI_PICTURES, "U+1F695"),  # taxi
    "rain falls": (EMOJI_PICTURES, "U+02614"),  # umbrella with rain drops
    "a crowd cheers a goal": (EMOJI_PICTURES, "U+1F945"),  # goal net
    "fireworks bang": (EMOJI_PICTURES, "U+1F386"),  # fireworks
    "a splash of water": (EMOJI_PICTURES, "U+1F4A6"),  # splashing drops
    "a clock ticks": (EMOJI_PICTURES, "U+1F570"),  # mantelpiece clock
    "an elephant calls": (EMOJI_PICTURES, "U+1F418"),  # elephant
    "a sheep bleats": (EMOJI_PICTURES, "U+1F411"),  # sheep
    "thunder rumbles": (EMOJI_PICTURES, "U+026C8"),  # thunder cloud and rain
    "a frog croaks": (EMOJI_PICTURES, "U+1F438"),  # frog face
    "a glass breaks": (EMOJI_PICTURES, "U+1F943"),  # tumbler glass
    "a harp plays a slow melody": (CLIPART_PICTURES, "recreation/music/harp2_ganson.png"),  # a concert harp
    "a violin plays a slow melody": (EMOJI_PICTURES, "U+1F3BB"),  # violin
    "a banjo plays a fast melody": (EMOJI_PICTURES, "U+1FA95"),  # banjo
    "an accordion plays a major chord": (EMOJI_PICTURES, "U+1FA97"),  # accordion
    "a muted trumpet plays a slow melody": (EMOJI_PICTURES, "U+1F3BA"),  # trumpet
}
PICTURE_SIDE = 96  # a clip-art file shrunk to the clip's frame (train/corpus/clips.py, SIZE)
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
    _write_manifest(out, written)
    return written


def _write_manifest(out: Path, rows: list[dict]) -> None:
    with open(out / "manifest.jsonl", "w") as f:
        for entry in rows:
            f.write(json.dumps(entry, sort_keys=True) + "\n")
    (out / "CREDITS.md").write_text(credits(rows))


def draw_pictures(out: Path, packages: Path) -> list[dict]:
    """Draw every clip of a demo-media folder `out` anew with its reviewed picture (PICTURES),
    its sound kept as it is, and record the picture in the manifest and credits. `packages`: the
    folder holding the extracted packages (`vlsa data corpus --cache`'s root/). Returns the rows."""
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]
    for row in rows:
        if row["kind"] != "clip":
            continue
        package, key = PICTURES[row["text"]]
        clip = out / row["video"]
        partial = clip.with_name(clip.name + ".partial.mp4")
        rng = np.random.default_rng(zlib.crc32(row["text"].encode()))  # the same motion on every run
        redraw_clip(clip, partial, picture_image(packages, package, key), rng)
        partial.replace(clip)
        row.update(picture=key, picture_source=package, picture_licence=PICTURE_LICENCES[package])
    _write_manifest(out, rows)
    return rows


def picture_image(packages: Path, package: str, key: str) -> Image.Image:
    """A PICTURES entry as an image, read from the extracted package."""
    if package == EMOJI_PICTURES:
        image = render_emoji(packages / package / EMOJI_FONT, key)
        if image is None:
            raise DemoMediaError(f"the emoji font has no picture for {key}")
        return image
    return load_clipart(packages / package, key, PICTURE_SIDE)


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
