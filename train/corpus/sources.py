"""What the corpus takes from each package: the folders to extract and how each file is captioned.

`sound_items(name, root)` lists a package's sounds as Items (file, caption, kind); a file that gets
no caption is left out and counted by `SkipCounter` with its reason.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from train.corpus import archives, more, named
from train.corpus.captions import sound_caption
from train.corpus.fetch import Package, file_licences
from train.corpus.speech import hedgewars_caption, klettres_caption

AUDIO_EXTENSIONS = (".ogg", ".oga", ".wav", ".flac", ".mp3")
ZERO_AD_AUDIO = "audio/"  # 0ad-data keeps its files in one zip; these members are opened

SOUND_PACKAGES = (
    Package("minetest-data", ("./usr/share/games/minetest/games/minetest_game/mods/*/sounds/*",)),
    Package("lincity-ng-data", ("./usr/share/games/lincity-ng/sounds/*",)),
    Package("freeciv-data", ("./usr/share/games/freeciv/stdsounds/*",)),
    Package("pingus-data", ("./usr/share/games/pingus/data/sounds/*",)),
    Package("oxygen-sounds", ("./usr/share/sounds/*",)),
    Package("heroes-sound-effects", ("./usr/share/games/heroes/sfx/*",)),
    Package("hedgewars-data", ("./usr/share/games/hedgewars/Data/Sounds/*",)),
    Package("supertuxkart-data", ("./usr/share/games/supertuxkart/data/sfx/*",)),
    Package("widelands-data", ("./usr/share/games/widelands/data/sound/*",
                               "./usr/share/games/widelands/data/world/critters/*.ogg")),
    Package("0ad-data", ("./usr/share/games/0ad/mods/public/public.zip",),
            {"usr/share/games/0ad/mods/public/public.zip": ZERO_AD_AUDIO}),
    Package("klettres-data", ("./usr/share/klettres/*",)),
)
# Added 2026-12-06: everyday sounds with hand-written captions (train/corpus/named.py), planned
# after the shared media so the rows above keep their file names and a resumed build reuses them.
GCOMPRIS_RCC = "usr/share/gcompris-qt/rcc"
WIDER_PACKAGES = (
    Package("gcompris-qt-data", tuple(f"./{GCOMPRIS_RCC}/{a}.rcc" for a in named.GCOMPRIS_ARCHIVES),
            unpack=(f"{GCOMPRIS_RCC}/*.rcc",)),
    Package("sound-theme-freedesktop", ("./usr/share/sounds/freedesktop/stereo/*",)),
    Package("openttd-opensfx", ("./usr/share/games/openttd/baseset/opensfx/*",),
            unpack=("usr/share/games/openttd/baseset/opensfx/*.cat",)),
)
# Added 2026-12-06 too, planned after WIDER_PACKAGES (for the same reason): game, drum-kit and
# flight-simulator sounds, each captioned from its package's hand map (train/corpus/more.py).
MORE_PACKAGES = more.MORE_PACKAGES
_MORE = {p.name for p in MORE_PACKAGES}
GCOMPRIS_PHOTOS_PACKAGE = "gcompris-qt-data"  # its animal photos are pictures too (pictures.gcompris_photos)
# Packages captioned only from named.py's maps (a file not in them is left out), so the folder rule
# below does not apply: gcompris' world music is chosen recordings, captioned by what plays.
HAND_CAPTIONED = {p.name for p in WIDER_PACKAGES}
# Packages whose copyright file gives licences file by file: each row records its file's.
PER_FILE_LICENCES = {"gcompris-qt-data", "sound-theme-freedesktop", "scorched3d-data"}
# A package's licence where its copyright file does not give its sounds' (more.LICENCES).
PACKAGE_LICENCES = more.LICENCES
# Folders of a package whose sounds are not captioned from their names: music (titles, not
# sounds), game-interface beeps, and 0ad's voices (Greek, Latin, ... soldiers' lines).
LEFT_OUT_FOLDERS = {"music", "interface", "voice", "devtest", "Music"}
SOUNDFONT = Package("fluid-soundfont-gm", ("./usr/share/sounds/sf2/FluidR3_GM.sf2",))
SOUNDFONT_FILE = "usr/share/sounds/sf2/FluidR3_GM.sf2"
CLIPART = Package("openclipart-png", ("./usr/share/openclipart/png/*",))
EMOJI = Package("fonts-noto-color-emoji", ("./usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",))
EMOJI_FONT = "usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
SHARED_MEDIA = "shared-media"
# The labelled real recordings (--shared-media, sounds/labels.jsonl): its folders' licences, from its README.
SHARED_MEDIA_LICENCES = {"scratch": "CC-BY-SA-3.0", "lmms": "GPL-2+"}


@dataclass(frozen=True)
class Item:
    path: Path  # the file to decode
    origin: str  # where it is in its package (for credits)
    caption: str
    source: str  # the package, or shared-media
    kind: str  # sound, speech
    licence: str | None = None  # the file's own licence, where it is not the package's


class SkipCounter(Counter):
    def skip(self, reason: str) -> None:
        self[reason] += 1


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def sound_items(name: str, root: Path, skipped: SkipCounter) -> list[Item]:
    """The captioned sounds of one extracted package."""
    items = []
    licence_of = file_licences(root, name) if name in PER_FILE_LICENCES else None
    seen: set[bytes] = set()
    for path in _audio_files(root):
        rel = path.relative_to(root)
        folders = rel.parts[:-1]
        if name in _MORE and _already_taken(path, seen):  # megaglest's tilesets link each other's sounds
            skipped.skip("a copy of a sound already taken")
            continue
        if LEFT_OUT_FOLDERS & set(folders) and name not in HAND_CAPTIONED:
            skipped.skip("music, interface or foreign voice")
            continue
        caption, kind = _caption(name, folders, path.stem)
        if name == "openttd-opensfx":  # the catalogue entry's name, kept beside the sound, says it all
            caption, kind, lic = _opensfx(path)
        else:
            lic = licence_of(rel.as_posix()) if licence_of else None
        if caption is None:
            skipped.skip("no caption from its name")
            continue
        items.append(Item(path, rel.as_posix(), caption, name, kind, lic))
    return items


def _already_taken(path: Path, seen: set[bytes]) -> bool:
    """Whether a file with the same bytes was met before (a link, or a copy in another folder)."""
    digest = hashlib.sha256(path.read_bytes()).digest()
    if digest in seen:
        return True
    seen.add(digest)
    return False


def _caption(package: str, folders: tuple[str, ...], stem: str) -> tuple[str | None, str]:
    if package == "hedgewars-data" and "voices" in folders:
        return hedgewars_caption(folders[folders.index("voices") + 1], stem), "speech"
    if package == "klettres-data":
        tail = folders[folders.index("klettres") + 1:]
        return (klettres_caption(tail[0], tail[1], stem), "speech") if len(tail) >= 2 else (None, "speech")
    if package == "gcompris-qt-data":
        return named.GCOMPRIS.get(named.gcompris_key(stem)), "sound"
    if package == "sound-theme-freedesktop":
        return named.freedesktop_caption(stem)
    if package in _MORE:
        return more.more_caption(package, folders, stem)
    if package == "oxygen-sounds":  # notification sounds: the name says the event, not the sound
        caption = sound_caption(stem)
        return (f"a notification chime for {caption.removeprefix('the sound of ')}" if caption else None), "sound"
    return sound_caption(stem, folders), "sound"


def _opensfx(path: Path) -> tuple[str | None, str, str | None]:
    """(caption, kind, licence) of a sound unpacked from OpenSFX's catalogue, from its entry's name."""
    name_file = path.with_suffix(".txt")
    name = name_file.read_text().strip() if name_file.is_file() else ""
    return named.OPENSFX.get(archives.cat_title(name).lower()), "sound", archives.cat_licence(name)


def shared_media_items(folder: Path, skipped: SkipCounter) -> list[Item]:
    """The labelled sounds of the real recordings folder (sounds/labels.jsonl)."""
    labels = folder / "sounds" / "labels.jsonl"
    items = []
    for line in labels.read_text().splitlines():
        d = json.loads(line)
        caption = sound_caption(d["name"]) or f"the sound of {d['name']}"
        if d.get("source") not in SHARED_MEDIA_LICENCES:
            skipped.skip("shared media without a known licence")
            continue
        items.append(Item(folder / d["path"], d["path"], caption, SHARED_MEDIA, "sound"))
    return items
