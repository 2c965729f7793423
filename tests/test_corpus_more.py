"""The corpus's more everyday sounds (train/corpus/more.py): real file names of each added package
captioned from its hand map, left-out files counted, per-file licences, links not taken twice, and
the new packages planned after the old ones. Fake package trees only; nothing is downloaded."""

from __future__ import annotations

import gzip
import struct
import wave
from pathlib import Path

import numpy as np
import pytest
from test_corpus import _wav_bytes

from train.corpus.build import plan_corpus
from train.corpus.sources import SkipCounter, sound_items

RATE = 16000
OC = "usr/share/games/openclonk/Sound"  # where openclonk-data's Sound.ocg is unpacked


def _touch(root: Path, rel: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(rel.encode())  # each file its own bytes: copies are told by their bytes
    return path


@pytest.mark.parametrize("package, rel, caption, kind", [
    ("supertux-data", "usr/share/games/supertux2/sounds/yeti_roar.wav", "a yeti roars", "sound"),
    ("freedroidrpg-data", "usr/share/freedroidrpg/data/sound/effects/Glass_Break.ogg", "glass breaks", "sound"),
    ("freedroidrpg-data", "usr/share/freedroidrpg/data/sound/effects/tux_ingame_comments/"
     "ICantCarryAnyMore_Sound_1.ogg", "a voice says 'i can't carry any more'", "speech"),
    ("frozen-bubble-data", "usr/share/games/frozen-bubble/snd/typewriter.ogg", "a typewriter types", "sound"),
    ("extremetuxracer-data", "usr/share/games/etr/sounds/snow_slide.wav", "a sled slides on snow", "sound"),
    ("warmux-data", "usr/share/games/warmux/sound/default/weapons/ricoche2.ogg", "a bullet ricochets", "sound"),
    ("scorched3d-data", "usr/share/games/scorched3d/data/globalmods/apoc/data/wav/misc/dog2.wav",
     "a dog barks", "sound"),
    ("scorched3d-data", "usr/share/games/scorched3d/data/globalmods/none/data/wav/shoot/large.wav",
     "a cannon fires", "sound"),
    ("scorched3d-data", "usr/share/games/scorched3d/data/globalmods/none/data/wav/explosions/large.wav",
     "a large explosion", "sound"),
    ("7kaa-data", "usr/share/games/7kaa/SOUND/THUNDER.WAV", "thunder rumbles", "sound"),
    ("megaglest-data", "usr/share/games/megaglest/techs/megapack/commondata/sounds/cow_ack2.wav",
     "a cow moos", "sound"),
    ("megaglest-data", "usr/share/games/megaglest/data/core/water_sounds/water3.wav", "a splash of water", "sound"),
    ("simutrans-pak64", "usr/share/games/simutrans/pak/sound/boat-horn.wav", "a ship's horn blows", "sound"),
    ("hydrogen-data", "usr/share/hydrogen/data/drumkits/GMRockKit/Snare-Hardest.wav", "a snare drum is hit", "sound"),
    ("hydrogen-data", "usr/share/hydrogen/data/drumkits/GMRockKit/Crash-Soft.wav", "a crash cymbal crashes",
     "sound"),
    ("hydrogen-data", "usr/share/hydrogen/data/drumkits/TR808EmulationKit/808_Snare_2.flac",
     "an electronic snare drum is hit", "sound"),
    ("flightgear-data-base", "usr/share/games/flightgear/Aircraft/c172p/Sounds/tires-screech-asphalt.wav",
     "tyres screech", "sound"),
    ("flightgear-data-base", "usr/share/games/flightgear/Sounds/tcas/female/climb_now.wav",
     "a woman says 'climb now'", "speech"),
    ("flightgear-data-base", "usr/share/games/flightgear/Sounds/mk-viii/dont-sink.wav",
     "a voice says 'don't sink'", "speech"),
    ("kanagram", "usr/share/kanagram/ui/sounds/chalk.ogg", "chalk scratches on a blackboard", "sound"),
    ("openclonk-data", f"{OC}/Structures/DoorClose2.wav", "a door closes", "sound"),
    ("openclonk-data", f"{OC}/Clonk/Skin/Steampunk/Laughter3.ogg", "someone laughs", "sound"),
    ("openclonk-data", f"{OC}/Clonk/Movement/StepHard4.ogg", "footsteps", "sound"),
    ("openclonk-data", f"{OC}/Hits/Materials/Glass/GlassBreak.ogg", "glass breaks", "sound"),
    ("openclonk-data", f"{OC}/Environment/Lightning/Thunder5.ogg", "thunder rumbles", "sound"),
])
def test_more_sounds_captioned_from_real_names(tmp_path, package, rel, caption, kind):
    """A real file name of each added package gets its caption and kind. Catches: a drum's velocity
    layer kept in its name (Snare-Hardest finds nothing), the folder not read first (scorched3d's
    shoot/large captioned as an explosion, or not at all), a camelCase phrase left unsplit, a spoken
    callout given the kind sound."""
    _touch(tmp_path, rel)
    items = sound_items(package, tmp_path, SkipCounter())
    assert [(i.caption, i.kind) for i in items] == [(caption, kind)]


def test_more_sounds_leave_out_unnamed_files_and_record_file_licences(tmp_path):
    """scorched3d-data: its `apoc` mod is CC-BY-SA-3 by its own `Files:` paragraph, the rest the
    package's GPL-2+; a beep and the altitude count of flightgear's callouts are left out and
    counted. Catches: the package licence given to the apoc sounds (per-file licences not read),
    an interface beep or a number callout captioned."""
    wav = "usr/share/games/scorched3d/data/globalmods/{}/data/wav/misc/{}.wav"
    for mod, name in (("apoc", "dog"), ("none", "beep"), ("none", "rain")):
        _touch(tmp_path, wav.format(mod, name))
    doc = tmp_path / "usr/share/doc/scorched3d-data"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Format: x\n\nFiles: *\nLicense: GPL-2+\n\n"
                                   "Files: data/globalmods/apoc/*\nLicense: CC-BY-SA-3\n\nFiles: debian/*\nLicense: MIT\n")
    skipped = SkipCounter()
    items = sound_items("scorched3d-data", tmp_path, skipped)
    assert [(i.caption, i.licence) for i in items] == [("a dog barks", "CC-BY-SA-3"), ("rain falls", "GPL-2+")]
    assert skipped == {"no caption from its name": 1}

    fg = tmp_path / "fg"
    _touch(fg, "usr/share/games/flightgear/Sounds/mk-viii/altitude-100.wav")
    _touch(fg, "usr/share/games/flightgear/Sounds/mk-viii/pull-up.wav")
    skipped = SkipCounter()
    assert [i.caption for i in sound_items("flightgear-data-base", fg, skipped)] == ["a voice says 'pull up'"]
    assert skipped == {"no caption from its name": 1}


def test_more_sounds_take_a_linked_or_copied_sound_once(tmp_path):
    """megaglest-data's tilesets link each other's sound folders (96 links), and a package may hold
    a file twice: the same bytes are one row, a different recording with the same name (its units'
    72 "swordman_attack" files are 72 different recordings) is kept. Catches: a link or a copy
    taken again, or a sound dropped for its name alone."""
    glest = tmp_path / "usr/share/games/megaglest"
    wolf = _touch(glest, "tilesets/desert2/sounds/wolf.wav")
    (glest / "tilesets/birch_forest/sounds").mkdir(parents=True)
    (glest / "tilesets/birch_forest/sounds/wolf.wav").symlink_to(wolf)
    for unit, data in (("swordman", b"clang"), ("swordman_berserk", b"clang"), ("spearman", b"clonk")):
        path = glest / f"techs/megapack/factions/norsemen/units/{unit}/sounds/swordman_attack1.wav"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
    skipped = SkipCounter()
    items = sound_items("megaglest-data", tmp_path, skipped)
    assert sorted(i.caption for i in items) == ["a wolf howls", "swords clash", "swords clash"]
    assert skipped == {"a copy of a sound already taken": 2}


def _tone(path: Path, hz: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (0.5 * np.sin(2 * np.pi * hz * np.arange(RATE // 2) / RATE) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(RATE)
        w.writeframes(data.tobytes())


def _extracted(cache: Path, package: str, rel: str) -> None:
    root = cache / "root" / package
    _tone(root / rel, 440)
    doc = root / "usr/share/doc" / package
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Files: *\nLicense: GPL-2+\n")
    (root / ".extracted").write_text("{}")


def test_more_packages_planned_after_the_others_so_old_rows_keep_their_files(tmp_path):
    """A cache with minetest-data, gcompris-qt-data's knock and 7kaa-data's rain: the older rows
    have the same files whether or not the new package is built, and the rain row records its
    licence and its phrasings. Catches: the new packages planned before the old ones (every older
    row renumbered, so a resumed build renders them all again)."""
    cache = tmp_path / "cache"
    _extracted(cache, "minetest-data", "usr/share/games/minetest/games/minetest_game/mods/doors/sounds/"
                                       "doors_door_open.wav")
    _extracted(cache, "gcompris-qt-data", "usr/share/gcompris-qt/rcc/canal_lock/knock.wav")
    _extracted(cache, "7kaa-data", "usr/share/games/7kaa/SOUND/RAIN.WAV")
    old = {"minetest-data", "gcompris-qt-data"}
    before = plan_corpus(cache, None, offline=True, only=frozenset(old))
    after = plan_corpus(cache, None, offline=True, only=frozenset(old | {"7kaa-data"}))
    def files(plan, sources):  # (mixes are drawn again whenever a sound is added, as before)
        return [j.rel for j in plan.jobs if j.row["source"] in sources and j.row["kind"] in {"sound", "sound-noise"}]

    assert len(files(before, old)) == 4 and files(after, old) == files(before, old)
    rain = next(j.row for j in after.jobs if j.row["source"] == "7kaa-data" and j.row["kind"] == "sound")
    assert rain["licence"] == "GPL-2+"
    assert rain["captions"] == ["rain falls", "rain falling", "the sound of rain"]


def _c4group(files: dict, archives) -> bytes:
    """An OpenClonk group of `files` ({name: bytes | {child group}}), laid out as the engine's
    C4Group writes one: the scrambled header, the entry table, then the entries' bytes."""
    entries, body = b"", b""
    for name, node in files.items():
        data = _c4group(node, archives) if isinstance(node, dict) else node
        entries += (name.encode("latin-1").ljust(260, b"\0")
                    + struct.pack("<iiIIi", 0, isinstance(node, dict), len(data), 0, len(body)) + bytes(36))
        body += data
    header = archives.C4_ID.ljust(28, b"\0") + struct.pack("<iii", 1, 2, len(files)) + bytes(164)
    return _mem_scramble(header) + entries + body


def _mem_scramble(header: bytes) -> bytes:
    """The engine's MemScramble, written again here so a reader that drops a step fails: each byte
    XOR 0xED, then each 3-byte run's first and last bytes swapped."""
    out = bytearray(b ^ 0xED for b in header)
    for i in range(0, len(out) - 2, 3):
        out[i], out[i + 2] = out[i + 2], out[i]
    return bytes(out)


def test_openclonk_group_unpacks_nested_sounds_with_their_licence(tmp_path):
    """A Sound.ocg laid out as openclonk-data's (gzip with its magic changed, a scrambled header,
    child groups for folders): every file comes back under its folders ('.ocg' dropped), the
    builder captions them, and its rows and its licences.json record the CC-BY-3.0 of the group's
    authors.txt, and a file that is not a group is one ArchiveError line. Catches: the header not
    unscrambled (or the byte swap left out: the id does not match), an offset read from the
    table's start instead of its end (wrong bytes), the child flag ignored (a folder written as a
    file), the package's ISC given as the sounds' licence or as the package's."""
    from train.corpus import archives

    door, laugh = _wav_bytes(300), _wav_bytes(500)
    group = {"authors.txt": b"CC Attribution 3.0", "Structures.ocg": {"DoorOpen1.wav": door},
             "Clonk.ocg": {"Skin.ocg": {"Adventurer.ocg": {"Laughter1.wav": laugh}}}}
    root = tmp_path / "cache/root/openclonk-data"  # as the builder extracts it
    path = root / "usr/share/games/openclonk/Sound.ocg"
    path.parent.mkdir(parents=True)
    path.write_bytes(archives.C4_MAGIC + gzip.compress(_c4group(group, archives))[2:])
    got = dict(archives.c4group_entries(path))
    assert got == {"authors.txt": b"CC Attribution 3.0", "Structures/DoorOpen1.wav": door,
                   "Clonk/Skin/Adventurer/Laughter1.wav": laugh}
    archives.unpack(path, path.with_suffix(""))
    doc = root / "usr/share/doc/openclonk-data"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("License:\n   The OpenClonk engine is licensed under the terms of the ISC license\n")
    (root / ".extracted").write_text("{}")
    plan = plan_corpus(tmp_path / "cache", None, offline=True, only=frozenset({"openclonk-data"}))
    sounds = sorted((j.row["text"], j.row["licence"]) for j in plan.jobs if j.row["kind"] == "sound")
    assert sounds == [("a door opens", "CC-BY-3.0"), ("someone laughs", "CC-BY-3.0")]
    assert plan.licences == {"openclonk-data": "CC-BY-3.0"}
    (tmp_path / "bad.ocg").write_bytes(b"\x1f\x8b" + bytes(40))
    with pytest.raises(archives.ArchiveError, match="bad.ocg: not an OpenClonk group"):
        archives.unpack(tmp_path / "bad.ocg", tmp_path / "bad")
    scrambled = bytearray(gzip.decompress(b"\x1f\x8b" + path.read_bytes()[2:]))
    scrambled[0:3] = scrambled[0:3][::-1]  # the header's first run left unswapped
    (tmp_path / "cut.ocg").write_bytes(archives.C4_MAGIC + gzip.compress(bytes(scrambled))[2:])
    with pytest.raises(archives.ArchiveError, match="cut.ocg: its root is not a C4Group"):
        archives.unpack(tmp_path / "cut.ocg", tmp_path / "cut")


def test_archive_names_longer_than_a_file_name_are_cut_or_left_out(tmp_path):
    """An OpenSFX title of 250 characters (its name's length is one byte) becomes a file name a file system takes (cut), and a
    C4Group entry whose 260-byte name no file system takes is left out, its neighbour written:
    never an OSError mid-build. Catches the title's cut dropped and the name-length check dropped."""
    from train.corpus import archives

    name = b'"' + b"a long title " * 19 + b'abc"\0'
    wav = _wav_bytes(200)
    (tmp_path / "sfx.cat").write_bytes(struct.pack("<II", 8 | 0x80000000, len(wav)) + bytes([len(name)]) + name + wav)
    written = archives.unpack(tmp_path / "sfx.cat", tmp_path / "sfx")
    assert len(written) == 1 and written[0].read_bytes() == wav and len(written[0].name) <= archives.NAME_MAX
    group = {"x" * 259: b"too long", "ok.wav": wav}
    (tmp_path / "Sound.ocg").write_bytes(archives.C4_MAGIC + gzip.compress(_c4group(group, archives))[2:])
    assert [p.name for p in archives.unpack(tmp_path / "Sound.ocg", tmp_path / "Sound")] == ["ok.wav"]


def test_extract_opens_a_zip_in_a_package_and_leaves_out_a_name_too_long(tmp_path):
    """A .deb (built here by dpkg-deb) holding a zip, as 0ad-data keeps its audio: extract opens
    the wanted members beside the zip, removes the zip, and leaves out a member whose name no
    file system takes instead of failing the build. Catches the name check dropped (OSError)."""
    import subprocess
    import zipfile

    from train.corpus.fetch import Package, extract

    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN/control").write_text("Package: fake-data\nVersion: 1\nArchitecture: all\n"
                                        "Maintainer: x <x@example.org>\nDescription: x\n")
    games = pkg / "usr/share/games/fake"
    games.mkdir(parents=True)
    with zipfile.ZipFile(games / "public.zip", "w") as z:
        z.writestr("audio/wolf.wav", _wav_bytes(300))
        z.writestr("audio/" + "y" * 300 + ".wav", b"too long")
        z.writestr("art/tree.png", b"not wanted")
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(pkg), str(tmp_path / "fake.deb")],
                   check=True, capture_output=True)
    zipped = "usr/share/games/fake/public.zip"
    root = extract(Package("fake-data", (f"./{zipped}",), {zipped: "audio/"}), tmp_path / "fake.deb", tmp_path / "cache")
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != ".extracted") \
        == ["usr/share/games/fake/audio/wolf.wav"]
