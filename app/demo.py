"""`vlsa demo`: the first thing to run. Builds a small library offline, indexes it with the
checkpoint shipped in the package and opens the search app.

    vlsa demo                                   # http://127.0.0.1:7860; library in ~/.cache/vlsa/demo
    vlsa demo --add ~/Videos --no-browser --port 8080   # ~/Videos is indexed on every later run too
    vlsa demo --remove ~/Videos                 # forget it, and drop its files from the catalog
    vlsa demo --rebuild                         # generate and index everything again

The demo folder (--dir, else $VLSA_DEMO_DIR, else ${XDG_CACHE_HOME:-~/.cache}/vlsa/demo) holds:

    library/        the generated clips (clips/NNNNN.mp4, with sound), manifest.jsonl (captions, the
                    sounding object's box per frame) and demo.json (how many clips, which seed)
    demo.db         the catalog
    added.json      the folders given with --add, re-added on every run until --remove

Beside the synthetic clips the catalog holds the real media shipped in the package
(vlsa/assets/media: 49 held-out sounds, picture-with-sound clips and spoken words, credited in
its CREDITS.md), indexed in place.

The first run generates the clips in this process with the `synth` package (which `vlsa data
synth` also runs) into a temporary folder inside the demo folder and renames it into place, so a
killed first run never leaves half a library: the next run removes the leftover and generates
again. Later runs find the library, index incrementally (no
file changed: nothing is embedded) and start in seconds. A catalog made with another checkpoint
(a new release shipped a new one) is rebuilt. Folders given with --add are indexed in place beside
the clips and remembered: every later run indexes them again, until `--remove FOLDER` forgets one
and drops its files from the catalog. A remembered folder missing at start (an unmounted drive) is
said in one line and its files stay in the catalog, unless --prune.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import click
from tqdm import tqdm

import synth
from app.server import AUTH_ENV, AUTH_HELP, parse_login
from catalog import text_export
from catalog.indexer import Indexer, IndexReport
from catalog.lock import indexing, not_served
from catalog.model import load_model
from catalog.paths import DEMO_CATALOG, is_under
from catalog.paths import demo_dir as default_dir
from catalog.store import Catalog, SchemaError
from vlsa.durable import replace_durably
from vlsa.errors import one_line

DEMO_SEED = 20261126  # the generator's seed for the demo clips; the shipped checkpoint trains on seeds 0 and 1
DEMO_CLIPS = 64
# The test split gives every clip its own caption, so a caption names exactly one clip.
MAX_CLIPS = synth.DISTINCT_CAPTIONS
LIBRARY, CATALOG, STAMP = "library", DEMO_CATALOG, "demo.json"
ADDED = "added.json"  # in the demo folder: {"folders": [absolute paths given with --add]}
TEMP_PREFIX = ".library-"  # generation in progress, or an old library being removed


class DemoError(ValueError):
    """A problem the user can fix, reported in one line (vlsa.cli.main turns it into "error: ...")."""


@dataclass
class Demo:
    dir: Path
    library: Path  # the generated clips and their manifest
    db: Path  # the catalog
    checkpoint: Path  # the shipped checkpoint the catalog was built with
    roots: list[str]  # what was indexed: the library and the added folders present now
    missing: list[str]  # added folders absent at start, whose files were kept
    generated: bool  # whether this call generated the clips
    report: IndexReport  # what this call's indexing did


def shipped() -> Path:
    """The checkpoint shipped in the package; DemoError if this installation lacks it."""
    from vlsa.checkpoint import SHIPPED, shipped_checkpoint

    path = shipped_checkpoint()
    if path is None:
        raise DemoError(f"no checkpoint ships with this installation ({SHIPPED} is missing or incomplete); "
                        "reinstall vlsa, or index your own with `vlsa index --checkpoint`")
    return path


def shipped_media() -> Path | None:
    """The held-out real recordings and picture-with-sound clips shipped in the package (credited in
    its CREDITS.md), or None if this installation lacks them."""
    import vlsa

    folder = Path(vlsa.__file__).resolve().parent / "assets" / "media"
    return folder if (folder / "manifest.jsonl").is_file() else None


def _say(message: str) -> None:
    click.echo(message, err=True)


def _stamp(clips: int, seed: int) -> dict:
    return {"clips": clips, "seed": seed, "split": "test"}


def library_ready(library: Path, clips: int, seed: int = DEMO_SEED) -> bool:
    """Whether `library` is a complete demo library of `clips` clips from `seed`."""
    try:
        stamp = json.loads((library / STAMP).read_text())
    except (OSError, ValueError):
        return False
    return stamp == _stamp(clips, seed) and (library / "manifest.jsonl").is_file()


def _remove_leftovers(folder: Path) -> None:
    """Delete what a killed run left: half-generated libraries and old ones being removed."""
    for leftover in folder.glob(TEMP_PREFIX + "*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _discard(library: Path) -> None:
    """Remove a library: renamed aside first, so a kill half-way leaves a leftover, not a damaged
    library that looks complete."""
    if library.exists():
        aside = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX + "old-", dir=library.parent))
        os.replace(library, aside / LIBRARY)
        shutil.rmtree(aside, ignore_errors=True)


def generate_library(folder: Path, clips: int, seed: int = DEMO_SEED, progress: bool = True) -> Path:
    """Generate `clips` demo clips as `folder`/library, atomically: in a temporary folder beside
    it, renamed into place when complete. Returns the library folder."""
    library = folder / LIBRARY
    tmp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=folder))
    try:
        with tqdm(total=clips, unit="clip", desc="synth", file=sys.stderr, disable=not progress) as bar:
            synth.generate(tmp, clips, seed, split="test", workers=synth.WORKERS, on_clip=bar.update)
        (tmp / STAMP).write_text(json.dumps(_stamp(clips, seed)) + "\n")
        _discard(library)
        os.replace(tmp, library)
    except (ValueError, OSError, av.error.FFmpegError) as e:
        raise DemoError(f"generating the demo clips failed: {one_line(e)}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when the rename happened
    return library


def _added_roots(add: Sequence[str | os.PathLike]) -> list[str]:
    roots = []
    for folder in add:
        if not os.path.isdir(folder):
            raise DemoError(f"--add {os.fspath(folder)}: no such folder")
        roots.append(os.path.abspath(folder))
    return roots


def added_folders(folder: Path) -> list[str]:
    """The folders remembered in `folder`/added.json (none if there is no such file)."""
    path = folder / ADDED
    try:
        folders = json.loads(path.read_text()).get("folders")
    except FileNotFoundError:
        return []
    except (OSError, ValueError, AttributeError) as e:
        raise DemoError(f"{path}: unreadable ({one_line(e)}); delete it and --add the folders again") from None
    if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        raise DemoError(f"{path}: not a list of folders; delete it and --add the folders again")
    return folders


def _remember(folder: Path, folders: list[str]) -> None:
    """Write added.json whole or not at all: a kill half-way leaves the previous list."""
    partial = folder / (ADDED + ".partial")
    partial.write_text(json.dumps({"folders": folders}, indent=1) + "\n")
    replace_durably(partial, folder / ADDED)


def _check_removals(known: list[str], added: list[str], removed: list[str]) -> None:
    """DemoError for a --remove of a folder that is not remembered, or one also given to --add."""
    for path in removed:
        if path in added:
            raise DemoError(f"--remove {path}: also given to --add")
        if path not in known:
            raise DemoError(f"--remove {path}: not an added folder (added: {', '.join(known) or 'none'})")


def _updated_folders(folder: Path, added: list[str], removed: list[str]) -> list[str]:
    """The remembered folders with `added` appended and `removed` dropped, saved if they changed."""
    known = added_folders(folder)
    _check_removals(known, added, removed)
    folders = [f for f in dict.fromkeys([*known, *added]) if f not in removed]
    if folders != known:
        _remember(folder, folders)
    return folders


def prepare_demo(folder: str | os.PathLike, clips: int = DEMO_CLIPS, add: Sequence[str | os.PathLike] = (),
                 rebuild: bool = False, progress: bool = False, real_media: bool = True,
                 checkpoint: Path | None = None, prune: bool = False,
                 remove: Sequence[str | os.PathLike] = ()) -> Demo:
    """Make sure `folder` holds the demo library (generated if missing) and its catalog, up to
    date with the shipped checkpoint, the library, the shipped real media (unless `real_media` is
    false) and the added folders, indexed with `checkpoint` (default: the shipped one; a benchmark
    passes another). The added folders are those of earlier runs (added.json) and `add`, less
    `remove`, whose files leave the catalog. `prune`: as `vlsa index --prune`, for the added
    folders; without it a missing one keeps its files. Returns what it did.

    CatalogBusy if another process indexes the catalog or serves it (catalog/lock.py): this
    changes the library and the catalog under it."""
    if not 1 <= clips <= MAX_CLIPS:
        raise DemoError(f"--clips must be between 1 and {MAX_CLIPS} (the generator's distinct captions), not {clips}")
    checkpoint = Path(checkpoint) if checkpoint else shipped()
    added = _added_roots(add)
    removed = [os.path.abspath(f) for f in remove]
    folder = Path(folder).expanduser().absolute()
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / CATALOG
    with indexing(db, "vlsa demo"), not_served(db, "vlsa demo"):
        added = _updated_folders(folder, added, removed)
        return _prepare(folder, db, clips, added, rebuild, progress, real_media, checkpoint, prune)


def _prepare(folder: Path, db: Path, clips: int, added: list[str], rebuild: bool, progress: bool,
             real_media: bool, checkpoint: Path, prune: bool) -> Demo:
    """prepare_demo's work, under its locks."""
    _remove_leftovers(folder)
    library = folder / LIBRARY
    if rebuild:
        _discard(library)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    generated = not library_ready(library, clips)
    if generated:
        _say(f"generating {clips} demo clips in {library} ...")
        generate_library(folder, clips, progress=progress)

    media = shipped_media() if real_media else None
    # A remembered folder that is gone now may be a drive not mounted: its files are kept (left
    # out of the roots, and out of the removal below), unless --prune has the indexer drop them.
    missing = [] if prune else [f for f in added if not os.path.isdir(f)]
    roots = [str(library), *([str(media)] if media else []), *(f for f in added if f not in missing)]
    _say(f"indexing {', '.join(roots)} ...")
    model, model_path = load_model(str(checkpoint))
    try:
        catalog = Catalog(db)
    except SchemaError as e:  # damaged, or made by a newer vlsa: the demo's own file, so say how to redo it
        raise DemoError(f"{e}; pass --rebuild to build the demo afresh") from None
    with catalog:
        settings = catalog.settings
        if settings is not None and settings.fingerprint != model.fingerprint():
            _say(f"the shipped checkpoint changed since {db} was built: re-indexing everything")
        known = catalog.known_files()
        for absent in missing:
            kept = sum(is_under(p, absent) for p in known)
            _say(f"{absent}: missing (an unmounted drive?); its {kept} catalogued files are kept "
                 "(--remove it to drop them)")
        # Files under no folder of the library leave the catalog (a folder given to --remove), and
        # so do the clips of a library generated anew (every clip is a new file; through the
        # indexer their going would look like a folder emptied, which it refuses without prune).
        outside = [p for p in known if not any(is_under(p, r) for r in [*roots, *missing])
                   or (generated and is_under(p, str(library)))]
        removed = catalog.remove_media(outside)
        report = Indexer(catalog, model, checkpoint=model_path, progress=progress).run(roots, rebuild=True,
                                                                                        prune=prune)
        report.removed += removed
    text_export.update(db, model)  # a text search without torch (catalog/text_export.py); once, seconds
    _say(f"indexed {report.indexed} files ({report.windows} windows), {report.unchanged} unchanged, "
         f"{report.removed} removed, {len(report.failed)} failed")
    return Demo(folder, library, db, checkpoint, roots, missing, generated, report)


@click.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              help="Where the demo library and its catalog live [default: $VLSA_DEMO_DIR, else "
                   "${XDG_CACHE_HOME:-~/.cache}/vlsa/demo].")
@click.option("--port", default=7860, show_default=True, type=click.IntRange(1, 65535))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 0.0.0.0 exposes the library to your network and needs --auth.")
@click.option("--auth", envvar=AUTH_ENV, show_envvar=True, metavar="USER:PASSWORD", help=AUTH_HELP)
@click.option("--no-browser", is_flag=True, help="Do not open a browser tab.")
@click.option("--add", "add", multiple=True, type=click.Path(path_type=str), metavar="FOLDER",
              help="Also index the media in FOLDER, in place, on this run and every later one (repeatable), "
                   "e.g. ~/Videos.")
@click.option("--remove", "remove", multiple=True, type=click.Path(path_type=str), metavar="FOLDER",
              help="Forget a folder given to --add before, and drop its files from the catalog (repeatable).")
@click.option("--clips", default=DEMO_CLIPS, show_default=True, type=click.IntRange(1, MAX_CLIPS),
              help="How many synthetic clips the library has.")
@click.option("--rebuild", is_flag=True, help="Generate the clips and index everything again.")
@click.option("--no-real-media", is_flag=True, help="Leave out the real recordings shipped in the package.")
@click.option("--prune", is_flag=True, help="As `vlsa index --prune`: remove the files of an added folder that "
              "is missing or emptied (without it a missing one keeps its files and an emptied one is an error, "
              "as an unmounted drive looks the same).")
def demo(folder: Path | None, port: int, host: str, auth: str | None, no_browser: bool, add: tuple[str, ...],
         remove: tuple[str, ...], clips: int, rebuild: bool, no_real_media: bool, prune: bool) -> None:
    """Build a small demo library, index it with the shipped checkpoint and open the search app.

    The first run generates and indexes the library (a minute or so); later runs reuse it and
    start in seconds. Works offline.
    """
    from app.cli import check_port, serve

    login = parse_login(host, auth)  # before the minute of generating and indexing
    check_port(host, port)
    folder = (folder or default_dir()).expanduser()
    # A missing --add folder or a wrong --remove fails now, not after the clips are generated.
    _check_removals(added_folders(folder), _added_roots(add), [os.path.abspath(f) for f in remove])
    state = prepare_demo(folder, clips=clips, add=add, rebuild=rebuild, progress=True,
                         real_media=not no_real_media, prune=prune, remove=remove)
    serve(str(state.db), checkpoint=str(state.checkpoint), host=host, port=port, no_browser=no_browser, login=login,
          who="vlsa demo")
