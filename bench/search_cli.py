"""Benchmark `vlsa search` end to end, as a user runs it: wall seconds from the command to its
last line of results, start-up (imports, model load) included.

    python bench/search_cli.py                        # the media shipped in the package, indexed once
    python bench/search_cli.py --db library.db --runs 7 --query "a dog barks" --audio bark.wav

Without --db, the files of vlsa/assets/media (real clips, sounds and spoken words, also in the
demo library) are indexed with the shipped checkpoint into a temporary catalog first (not timed).
Then each command runs --runs times as a subprocess: a text query (through the catalog's text
query encoder, the ONNX export `vlsa index` writes beside it: catalog/text_export.py), the same
query through the model (`--checkpoint`, the catalog's own: what a text query cost before, and
costs still without the export), a sound (--audio; default: the first sound file of the catalog),
a window of the catalog (--like), and `python -c "import torch"`, which the model's commands pay.
Prints JSON: median, min and max seconds of each, and the command lines.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VLSA_BIN = Path(sys.executable).with_name("vlsa")
SHIPPED_MEDIA = REPO / "vlsa" / "assets" / "media"
SOUND_SUFFIXES = (".wav", ".mp3", ".ogg", ".flac", ".m4a")


def timed(command: list[str], runs: int) -> dict:
    """Seconds of `runs` runs of `command` (each must succeed)."""
    seconds = []
    for _ in range(runs):
        began = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True)
        seconds.append(time.perf_counter() - began)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{proc.stderr}")
    return {"median_s": round(statistics.median(seconds), 3), "min_s": round(min(seconds), 3),
            "max_s": round(max(seconds), 3), "runs": len(seconds), "command": " ".join(command)}


def index_shipped_media(db: Path) -> None:
    proc = subprocess.run([str(VLSA_BIN), "index", str(SHIPPED_MEDIA), "--db", str(db), "-q"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"vlsa index {SHIPPED_MEDIA} failed:\n{proc.stderr}")


def catalog_sound_window_checkpoint(db: Path) -> tuple[str, int, str | None]:
    """A sound file of the catalog (the --audio query), a window id (the --like query) and the
    checkpoint the catalog was built with (None: an untrained preset)."""
    sys.path.insert(0, str(REPO))
    from catalog.store import Catalog

    with Catalog(db, read_only=True) as catalog:
        media = catalog.media(status="ok")
        sound = next((m for m in media if m.path.lower().endswith(SOUND_SUFFIXES)), media[0])
        return sound.path, catalog.windows(sound.id)[0].id, catalog.settings.checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, help="a catalog to search (default: the shipped media, indexed now)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--query", default="a dog barks")
    parser.add_argument("--audio", help="the sound to search with (default: a sound file of the catalog)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vlsa-bench-") as tmp:
        db = args.db
        if db is None:
            db = Path(tmp) / "shipped.db"
            index_shipped_media(db)
        sound, window, checkpoint = catalog_sound_window_checkpoint(db)
        search = [str(VLSA_BIN), "search", "--db", str(db), "--top", "10"]
        report = {
            "text": timed([*search, args.query], args.runs),
            **({"text_model": timed([*search, "--checkpoint", checkpoint, args.query], args.runs)}
               if checkpoint else {}),
            "audio": timed([*search, "--audio", args.audio or sound], args.runs),
            "like": timed([*search, "--like", str(window)], args.runs),
            "import_torch": timed([sys.executable, "-c", "import torch"], args.runs),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
