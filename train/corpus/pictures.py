"""Pictures with their names: openclipart-png clip art (folders and file names say what each
shows) and Noto colour emoji (Python's unicodedata names each one)."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from train.corpus import named
from train.corpus.captions import words

EMOJI_RANGES = ((0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF),
                (0x1FA70, 0x1FAFF), (0x2600, 0x26FF), (0x2700, 0x27BF))
EMOJI_PIXELS = 109  # the one size NotoColorEmoji's bitmaps come in
# Clip-art folders whose pictures are things with names (not icons, flags, shapes or buttons).
CLIPART_FOLDERS = ("animals", "food", "plants", "transportation", "recreation", "people", "buildings",
                   "household", "nature", "tools", "music", "science", "weather", "holiday", "sports",
                   "office", "education", "medical", "military", "clothing", "electronics", "landscapes")
# Clip-art file names end in an author's name; only the first words are the subject.
CLIPART_NAME_WORDS = 3
SKIP_WORDS = {"and", "with", "of", "the", "png", "clip", "art", "clipart", "icon", "simple", "cartoon",
              "lumen", "desig", "nicu", "bucule", "ganson", "benji", "dave", "pena", "johnny", "automatic"}


@dataclass(frozen=True)
class Picture:
    key: str  # a stable name: the file's path, or the emoji's code point
    caption: str  # "a picture of a dog"
    name: str  # the plain name ("dog"), for matching pictures with sounds
    source: str  # the Debian package
    licence: str | None = None  # the picture's own licence, where it is not the package's


def emoji_pictures() -> list[Picture]:
    """Every emoji code point in EMOJI_RANGES with a name (rendered later; empty glyphs dropped)."""
    out = []
    for lo, hi in EMOJI_RANGES:
        for cp in range(lo, hi + 1):
            name = unicodedata.name(chr(cp), "").lower()
            if name and "skin tone" not in name and "emoji modifier" not in name:
                out.append(Picture(f"U+{cp:05X}", f"an emoji of {_a(name)}", name, "fonts-noto-color-emoji"))
    return out


@functools.lru_cache(maxsize=1)
def _emoji_font(path: str) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, EMOJI_PIXELS)  # 10 MB: loaded once per process


def render_emoji(font_path: Path, key: str) -> Image.Image | None:
    """RGBA picture of one emoji, cropped to its glyph; None if the font has no picture for it."""
    font = _emoji_font(str(font_path))
    image = Image.new("RGBA", (EMOJI_PIXELS + 40, EMOJI_PIXELS + 40), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((0, 0), chr(int(key[2:], 16)), font=font, embedded_color=True)
    box = image.getbbox()
    return image.crop(box) if box and image.getchannel("A").getextrema()[1] > 0 else None


def clipart_pictures(root: Path) -> list[Picture]:
    """The clip art under usr/share/openclipart/png whose top folder is in CLIPART_FOLDERS."""
    base = root / "usr/share/openclipart/png"
    out = []
    for path in sorted(base.rglob("*.png")):
        rel = path.relative_to(base)
        if rel.parts[0] not in CLIPART_FOLDERS:
            continue
        name = " ".join([w for w in words(path.stem) if w not in SKIP_WORDS and len(w) > 1][:CLIPART_NAME_WORDS])
        if name:
            out.append(Picture(rel.as_posix(), f"a drawing of {_a(name)}", name, "openclipart-png"))
    return out


def gcompris_photos(root: Path, licence_of: Callable[[str], str]) -> list[Picture]:
    """gcompris-qt-data's photos (.webp, unpacked from its .rcc archives) of the animals named in
    named.GCOMPRIS_PHOTOS: "a photo of a cow", each with its file's licence."""
    out = []
    for path in sorted(root.rglob("*.webp")):
        name = named.GCOMPRIS_PHOTOS.get(" ".join(words(path.stem)))
        if name:
            rel = path.relative_to(root).as_posix()
            out.append(Picture(rel, f"a photo of {_a(name)}", name, "gcompris-qt-data", licence_of(rel)))
    return out


def load_picture(path: Path, side: int) -> Image.Image:
    """A picture file shrunk to fit `side` x `side`."""
    image = Image.open(path).convert("RGBA")
    image.thumbnail((side, side), Image.LANCZOS)
    return image


MAX_PIXELS = 16_000_000  # a few clip-art files are posters of 100+ megapixels: too slow to decode


def load_clipart(root: Path, key: str, side: int) -> Image.Image:
    """The drawing shrunk to fit `side` x `side`; ValueError for one too large to decode."""
    image = Image.open(root / "usr/share/openclipart/png" / key)
    if image.size[0] * image.size[1] > MAX_PIXELS:
        raise ValueError("picture too large")
    image = image.convert("RGBA")
    image.thumbnail((side, side), Image.LANCZOS)
    return image


def _a(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase
