"""Readers for the archives some packages keep their sounds in, so the corpus can open them:
Qt resource archives (`.rcc`, gcompris-qt-data), OpenTTD's sound catalogue (`.cat`,
openttd-opensfx) and OpenClonk's C4Group (`.ocg`, openclonk-data). `unpack(archive, out)` writes
an archive's files under `out`.

Qt resource archives, as Qt's `rcc -binary` writes them:

    header   "qres", then big-endian uint32s: version, tree offset, data offset, names offset,
             and (version >= 3) the OR of every entry's flags
    tree     one node per entry, node 0 the root; a node is name offset (u32), flags (u16), then
             for a directory: child count (u32), first child's node index (u32); for a file:
             country (u16), language (u16), data offset (u32); version >= 2 adds a u64 modified time
    names    at a name offset: length in UTF-16 units (u16), a hash (u32), the UTF-16BE name
    data     at a data offset: length (u32), then the bytes; a zlib-compressed entry's bytes are
             qCompress's: the uncompressed length (u32) and a zlib stream

Flags: 0x01 zlib-compressed, 0x02 directory, 0x04 zstd-compressed (version 3). No zstd entry occurs
in gcompris-qt-data 3.1 (every archive's header flags are 0 or 1), so zstd is refused with a clear
error instead of adding a dependency for it.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

COMPRESSED, DIRECTORY, COMPRESSED_ZSTD = 0x01, 0x02, 0x04


class ArchiveError(ValueError):
    """A file that is not an archive of its kind, or an entry that cannot be read; one line."""


class Rcc:
    """The files of one archive: `names()` lists their paths, `read(path)` returns one's bytes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.blob = self.path.read_bytes()
        if self.blob[:4] != b"qres" or len(self.blob) < 20:
            raise ArchiveError(f"{self.path.name}: not a Qt resource archive")
        self.version, self.tree, self.data, self.names_at = struct.unpack_from(">4I", self.blob, 4)
        if self.version not in (1, 2, 3):
            raise ArchiveError(f"{self.path.name}: unknown rcc version {self.version}")
        self.node_size = 14 + (8 if self.version >= 2 else 0)
        self.files: dict[str, tuple[int, int]] = {}  # path -> (flags, data offset)
        self._walk(0, "", depth=0)

    def _node(self, index: int) -> tuple[int, int, int, int]:
        """(name offset, flags, a, b): a, b are child count and first child, or locale and data offset."""
        at = self.tree + index * self.node_size
        if at + 14 > len(self.blob):
            raise ArchiveError(f"{self.path.name}: tree node {index} past the end")
        name, flags, a, b = struct.unpack_from(">IHII", self.blob, at)
        return name, flags, a, b

    def _name(self, offset: int) -> str:
        at = self.names_at + offset
        (length,) = struct.unpack_from(">H", self.blob, at)
        return self.blob[at + 6: at + 6 + 2 * length].decode("utf-16-be")

    def _walk(self, index: int, prefix: str, depth: int) -> None:
        if depth > 32:  # a corrupt tree that loops
            raise ArchiveError(f"{self.path.name}: directory tree too deep")
        name_at, flags, count, first = self._node(index)
        if not flags & DIRECTORY:
            self.files[prefix] = (flags, first)
            return
        for child in range(first, first + count):
            child_name = self._name(self._node(child)[0])
            self._walk(child, f"{prefix}/{child_name}" if prefix else child_name, depth + 1)

    def names(self) -> list[str]:
        return sorted(self.files)

    def entries(self) -> Iterator[tuple[str, bytes]]:
        """(path, bytes) of each file, in names() order, read one at a time."""
        for name in self.names():
            yield name, self.read(name)

    def read(self, name: str) -> bytes:
        flags, offset = self.files[name]
        at = self.data + offset
        (length,) = struct.unpack_from(">I", self.blob, at)
        raw = self.blob[at + 4: at + 4 + length]
        if len(raw) != length:
            raise ArchiveError(f"{self.path.name}: {name} runs past the end")
        if flags & COMPRESSED_ZSTD:
            raise ArchiveError(f"{self.path.name}: {name} is zstd-compressed (not supported)")
        if flags & COMPRESSED:
            try:
                return zlib.decompress(raw[4:])
            except zlib.error as e:
                raise ArchiveError(f"{self.path.name}: {name}: {e}") from None
        return raw


# OpenTTD's sound catalogue (`.cat`): a table of (offset, size) little-endian uint32 pairs, its
# first offset also the table's length (so the entry count is offset / 8; the new format sets the
# offset's top bit, which is masked off). At each offset: a name length (1 byte), the name (in
# OpenSFX: '"Title". Original ... License: ...', NUL-terminated), then `size` bytes of RIFF WAV.
CAT_OFFSET_MASK = 0x7FFFFFFF


def cat_entries(path: Path) -> list[tuple[str, bytes]]:
    """(name, wav bytes) of each sound in an OpenTTD .cat file, in catalogue order."""
    blob = Path(path).read_bytes()
    if len(blob) < 8:
        raise ArchiveError(f"{Path(path).name}: too short for a sound catalogue")
    count = (struct.unpack_from("<I", blob, 0)[0] & CAT_OFFSET_MASK) // 8
    if count == 0 or count * 8 > len(blob):
        raise ArchiveError(f"{Path(path).name}: not a sound catalogue")
    out = []
    for i in range(count):
        offset, size = struct.unpack_from("<II", blob, 8 * i)
        offset &= CAT_OFFSET_MASK
        if offset >= len(blob):
            raise ArchiveError(f"{Path(path).name}: entry {i} past the end")
        length = blob[offset]
        name = blob[offset + 1: offset + 1 + length].rstrip(b"\0").decode("utf-8", errors="replace")
        wav = blob[offset + 1 + length: offset + 1 + length + size]
        if wav[:4] != b"RIFF" or len(wav) != size:
            raise ArchiveError(f"{Path(path).name}: entry {i} is not a RIFF WAV")
        out.append((name, wav))
    return out


def cat_title(name: str) -> str:
    """'"Cow". Original "x.wav" by y. License: ...' -> 'Cow' (the quoted title, else the name)."""
    found = re.match(r'\s*"([^"]*)"', name)
    return (found.group(1) if found else name).strip()


def cat_licence(name: str) -> str | None:
    """The licence an OpenSFX entry's name states, as an SPDX-like id ('CC-BY-3.0'), or None."""
    found = re.search(r"License:\s*Creative Commons ([A-Za-z-]+) (\d\.\d)", name)
    if not found:
        return None
    kind = {"Zero": "CC0", "Attribution": "CC-BY", "Attribution-ShareAlike": "CC-BY-SA"}.get(found.group(1))
    return f"{kind}-{found.group(2)}" if kind else None


# OpenClonk's C4Group (`.ocg`), as its engine's C4Group.cpp reads it: a gzip stream whose magic
# bytes are 1e 8c (not 1f 8b), holding a group: a 204-byte header scrambled by C4Group's
# MemScramble (every byte XOR 0xED, then in each 3-byte run the first and last bytes swapped),
# that starts "RedWolf Design GrpFolder" and holds the entry count (int32) at byte 36; then one
# 316-byte entry per file: its name (260 bytes, NUL-padded), packed, child group, size, a
# reserved int, and its offset (int32s, little-endian) from the end of the entry table. A child
# group is a nested group of the same form (not compressed again).
C4_MAGIC, C4_ID = b"\x1e\x8c", b"RedWolf Design GrpFolder"
C4_HEADER, C4_ENTRY, C4_MAX_DEPTH = 204, 316, 16


def c4_unscramble(header: bytes) -> bytes:
    """A C4Group header as written, from the scrambled one (the XOR and the swaps commute, so
    MemScramble is its own inverse)."""
    out = bytearray(b ^ 0xED for b in header)
    for i in range(0, len(out) - 2, 3):
        out[i], out[i + 2] = out[i + 2], out[i]
    return bytes(out)


def c4group_entries(path: Path) -> list[tuple[str, bytes]]:
    """(path inside the group, bytes) of each file of an OpenClonk group file, child groups'
    files under their folder (its '.ocg' dropped: 'Structures.ocg/DoorClose1.wav' ->
    'Structures/DoorClose1.wav')."""
    raw = Path(path).read_bytes()
    if raw[:2] != C4_MAGIC:
        raise ArchiveError(f"{Path(path).name}: not an OpenClonk group (no C4Group gzip magic)")
    try:
        blob = gzip.decompress(b"\x1f\x8b" + raw[2:])
    except (OSError, EOFError, zlib.error) as e:
        raise ArchiveError(f"{Path(path).name}: {e}") from None
    out: list[tuple[str, bytes]] = []
    _c4_walk(Path(path).name, blob, 0, len(blob), "", out, 0)
    return out


def _c4_walk(name: str, blob: bytes, start: int, end: int, prefix: str, out: list, depth: int) -> None:
    header = c4_unscramble(blob[start:start + C4_HEADER])
    if depth > C4_MAX_DEPTH or not header.startswith(C4_ID):
        raise ArchiveError(f"{name}: {prefix or 'its root'} is not a C4Group")
    (count,) = struct.unpack_from("<i", header, 36)
    table, data = start + C4_HEADER, start + C4_HEADER + count * C4_ENTRY
    if count < 0 or data > end:
        raise ArchiveError(f"{name}: {prefix or 'its root'}: entry table past its end")
    for i in range(count):
        entry = blob[table + i * C4_ENTRY: table + (i + 1) * C4_ENTRY]
        file_name = entry[:260].split(b"\0")[0].decode("latin-1")
        _packed, child, size, _reserved, offset = struct.unpack_from("<iiIIi", entry, 260)
        at = data + offset
        if offset < 0 or at + size > end:
            raise ArchiveError(f"{name}: {prefix}{file_name} runs past the end")
        if child:
            _c4_walk(name, blob, at, at + size, f"{prefix}{file_name.removesuffix('.ocg')}/", out, depth + 1)
        else:
            out.append((prefix + file_name, blob[at:at + size]))


def unpack(archive: Path, out: Path) -> list[Path]:
    """Write the files of an .rcc or an .ocg (under their archive paths) or a .cat (as
    NN_<title>.wav, the entry's full name beside it in NN_<title>.txt: it holds the sound's
    credit and licence) under `out`; the paths written."""
    try:
        return _unpack(archive, out)
    except (struct.error, UnicodeDecodeError) as e:  # an offset or a name past what the file holds
        raise ArchiveError(f"{archive.name}: corrupt ({e})") from None


NAME_MAX = 255  # bytes in one part of a path on the file systems we write to


def inside(name: str) -> bool:
    """Whether an archive's entry name stays under the folder it is unpacked to and can be written
    there: relative, no `..`, `.` or empty parts, none longer than a file name may be (a name is
    the archive writer's, not ours; a leading `/` is an empty first part; a C4Group name may be
    260 bytes)."""
    return (all(part not in ("", ".", "..") and len(os.fsencode(part)) <= NAME_MAX for part in name.split("/"))
            and "\x00" not in name)


def _unpack(archive: Path, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if archive.suffix in (".rcc", ".ocg"):
        for name, data in Rcc(archive).entries() if archive.suffix == ".rcc" else c4group_entries(archive):
            if not inside(name):
                continue
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            written.append(target)
    elif archive.suffix == ".cat":
        for i, (name, wav) in enumerate(cat_entries(archive)):
            stem = f"{i:02d}_" + (re.sub(r"[^A-Za-z0-9]+", "_", cat_title(name)).strip("_")[:100] or "x")
            (out / f"{stem}.txt").write_text(name + "\n")
            (out / f"{stem}.wav").write_bytes(wav)
            written.append(out / f"{stem}.wav")
    else:
        raise ArchiveError(f"{archive.name}: unknown archive kind")
    return written
