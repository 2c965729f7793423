"""Debian packages into a cache: `apt-get download`, then `dpkg-deb` extracts only what is needed.

    cache/debs/<package>_<version>_<arch>.deb       the downloaded archive (kept: later runs reuse it)
    cache/root/<package>/usr/...                     its extracted files
    cache/root/<package>/.extracted                  the member patterns of a finished extraction

A step that is done is never repeated, so a killed run resumes where it stopped; a package that
cannot be fetched raises FetchError with one line, and the caller skips it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from train.corpus import archives
from vlsa.durable import replace_durably


class FetchError(Exception):
    """A package that could not be downloaded or extracted; the message is one line."""


@dataclass(frozen=True)
class Package:
    name: str
    members: tuple[str, ...] = ()  # tar patterns under the package root; () extracts everything
    unzip: dict[str, str] = field(default_factory=dict)  # archive in the package -> member prefix to open
    # .rcc / .cat / .ocg archives in the package (glob patterns): their files are written beside each, in a
    # folder named by the archive's stem (train/corpus/archives.py), and the archive removed
    unpack: tuple[str, ...] = ()


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise FetchError(f"{cmd[0]} {cmd[-1]}: {last}")


def download(name: str, cache: Path) -> Path:
    """The package's .deb in cache/debs, downloaded unless already there."""
    debs = cache / "debs"
    found = sorted(debs.glob(f"{name}_*.deb"))
    if found:
        return found[-1]
    debs.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=debs) as tmp:  # a killed download leaves no half .deb
        _run(["apt-get", "download", "-q", name], cwd=Path(tmp))
        got = sorted(Path(tmp).glob("*.deb"))
        if not got:
            raise FetchError(f"apt-get download {name}: no .deb written")
        target = debs / got[0].name
        replace_durably(got[0], target)
    return target


def extract(package: Package, deb: Path, cache: Path) -> Path:
    """Extract the package's members (and its copyright) into cache/root/<name>; return that root."""
    root = cache / "root" / package.name
    stamp = root / ".extracted"
    # (unpack only when given, so the stamps of caches made before it existed stay valid)
    wanted = json.dumps({"members": package.members, "unzip": package.unzip,
                         **({"unpack": package.unpack} if package.unpack else {})})
    if stamp.is_file() and stamp.read_text() == wanted:
        return root
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    members = [f"./usr/share/doc/{package.name}/copyright", *package.members] if package.members else []
    tar = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True)
    if tar.returncode:
        raise FetchError(f"dpkg-deb {deb.name}: {tar.stderr.decode(errors='replace').strip()[-200:]}")
    untar = subprocess.run(["tar", "-x", "--wildcards", "-C", str(root), *members], input=tar.stdout,
                           capture_output=True)
    if untar.returncode and not any(root.rglob("*.*")):
        raise FetchError(f"tar {deb.name}: {untar.stderr.decode(errors='replace').strip()[-200:]}")
    for archive, prefix in package.unzip.items():
        with zipfile.ZipFile(root / archive) as z:
            for info in z.infolist():
                if info.filename.startswith(prefix) and not info.is_dir() and archives.inside(info.filename):
                    z.extract(info, root / Path(archive).parent)
        (root / archive).unlink()  # the opened members are what is used; the archive is large
    for pattern in package.unpack:
        for archive in sorted(root.glob(pattern)):
            try:
                archives.unpack(archive, archive.with_suffix(""))
            except archives.ArchiveError as e:
                raise FetchError(str(e)) from None
            archive.unlink()
    stamp.write_text(wanted)
    return root


def fetch(package: Package, cache: Path) -> Path:
    """Download (once) and extract (once) a package; its root folder."""
    return extract(package, download(package.name, cache), cache)


def licence(root: Path, name: str) -> str:
    """The licence of the package's main files, from its machine-readable copyright file: the
    `License:` of the `Files: *` paragraph, else the first one given, else 'see copyright'."""
    path = root / "usr/share/doc" / name / "copyright"
    if not path.is_file():
        return "unknown (no copyright file)"
    paragraphs = re.split(r"\n\s*\n", path.read_text(encoding="utf-8", errors="replace"))
    first = None
    for para in paragraphs:
        found = re.search(r"^License:\s*(\S.*)$", para, re.M)
        if not found:
            continue
        first = first or found.group(1).strip()
        if re.search(r"^Files:\s*\*\s*$", para, re.M):
            return found.group(1).strip()
    if first:
        return first
    text = " ".join(paragraphs)  # an older free-form copyright file: the first licence it names
    found = re.search(r"\b(L?GPL-?\d[\d.+]*|CC-BY[-A-Z0-9.]*|CC0|[Pp]ublic [Dd]omain|Apache-2\.0|BSD-\d-clause|MIT|ISC)\b", text)
    if found:
        return found.group(1)
    gnu = re.search(r"GNU (Lesser |Library )?General Public License,? (?:as published by .*?)?[Vv]ersion (\d)", text, re.S)
    return f"{'L' if gnu.group(1) else ''}GPL-{gnu.group(2)}+" if gnu else "see copyright"


def file_licences(root: Path, name: str) -> Callable[[str], str]:
    """A function from a file's path in the package (as extracted, e.g. 'usr/share/sounds/x/bell.oga',
    or inside an unpacked archive) to its licence, from the `Files:` paragraphs of the package's
    machine-readable copyright file: the last paragraph whose pattern matches wins, as that format
    says. A pattern is matched against the path and every tail of it ('stereo/bell.oga' names
    usr/share/sounds/freedesktop/stereo/bell.oga, 'src/activities/x/*' names a file unpacked at
    .../rcc/x/gcompris/src/activities/x/y.ogg); no match gives the package's `licence`."""
    path = root / "usr/share/doc" / name / "copyright"
    fallback = licence(root, name)
    rules: list[tuple[re.Pattern, str]] = []
    text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    for para in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:((?:.*)(?:\n[ \t]+.*)*)", para, re.M)
        lic = re.search(r"^License:\s*(\S.*)$", para, re.M)
        if files and lic:
            for pattern in files.group(1).split():
                glob = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
                rules.append((re.compile(rf"(?:^|.*/){glob}$"), lic.group(1).strip()))

    def of(file: str) -> str:
        found = fallback
        for rule, lic in rules:
            if rule.match(file):
                found = lic
        return found

    return of


def missing_dependencies(name: str) -> list[str]:
    """The package and its run-time dependencies (recursively) that this system lacks, sorted: what
    must be extracted beside a program to run it from the cache without installing anything."""
    done = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                           "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", name],
                          capture_output=True, text=True)
    if done.returncode:
        raise FetchError(f"apt-cache depends {name}: {done.stderr.strip()[-200:]}")
    names = {line.strip() for line in done.stdout.splitlines() if line and not line.startswith((" ", "<"))}
    installed = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Status}\n"], capture_output=True, text=True)
    have = {line.split()[0].split(":")[0] for line in installed.stdout.splitlines() if line.endswith("ok installed")}
    return sorted(n for n in names if n.split(":")[0] not in have)


def library_path(roots: list[Path]) -> str:
    """LD_LIBRARY_PATH for programs extracted into `roots`: every folder holding a shared library."""
    folders = sorted({str(p.parent) for root in roots for p in root.rglob("*.so*") if p.is_file() or p.is_symlink()})
    return ":".join(folders)
