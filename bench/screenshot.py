"""The app's screenshots in docs/: `vlsa demo` in headless chromium, one run for all three.

    python bench/screenshot.py --dir /tmp/vlsa-demo --out-dir docs

writes app-text.png (a text search: the results with their captions), app-sound.png (a search
with a sound of the demo library: the query's player and the results) and app-result.png (the
first result of that search selected: the clip, what it is, and its heatmaps with their axes and
legends). Each is cut
to the part of the page it shows and saved with a palette, so it stays small. Beside them,
app-screenshots.json records what made them: the shipped checkpoint's fingerprint (the one `vlsa
demo` indexes with; tests/test_screenshots.py fails once the shipped checkpoint changes and they are
not taken again), the queries and the date.

Needs Debian's chromium (`make browser`) and Playwright (a dev dependency).
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import tempfile
import time
from pathlib import Path

from demo_start import (  # bench/ is on sys.path when run as a script
    VLSA_BIN,
    free_port,
    stop_process,
    wait_up,
)
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
TIMEOUT_MS = 60_000
# One of the page's examples whose results are right: the shipped checkpoint's first six for it on
# the demo library are five spoken letters (shipped real media) and a synthetic clip.
TEXT_QUERY = "a voice says a letter"
# Its sound is the query (the file is in the demo library): a file of two moments (3 s), so that
# its result shows all three heatmaps (picture, time strip, sound).
SOUND = "vlsa/assets/media/clip/00484_a_crowd_cheers_a_goal.mp4"
COLOURS = 128  # palette size of the saved PNGs: the pages are mostly flat colour
RECORD = "app-screenshots.json"  # beside the pictures: what made them


def save(page, out: Path, locator=None) -> None:
    """A screenshot of `locator`'s box (else of the page from its top to the results' bottom),
    saved as a palette PNG."""
    full = out.with_suffix(".full.png")
    if locator is not None:
        locator.screenshot(path=str(full))
    else:
        results = page.locator("#results").bounding_box()
        width = page.viewport_size["width"]
        page.screenshot(path=str(full), full_page=True,
                        clip={"x": 0, "y": 0, "width": width, "height": results["y"] + results["height"] + 8})
    Image.open(full).convert("RGB").quantize(COLOURS, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    full.unlink()
    print(f"{out}: {out.stat().st_size // 1024} KB")


def query_sound(folder: Path) -> Path:
    """The sound of SOUND as a wav (what a person would upload)."""
    from app.clips import write_wav
    from vlsa.media import read_audio

    out = folder / (Path(SOUND).stem + ".wav")
    write_wav(read_audio(SOUND, 0.0, None, 16000).numpy(), 16000, out)
    return out


def search_text(page, text: str) -> None:
    query = page.get_by_label("Describe what you are looking for")
    query.fill(text)
    query.press("Enter")
    page.locator("#status", has_text=text).wait_for(timeout=TIMEOUT_MS)


def take(url: str, out_dir: Path, sound: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        page.goto(url, timeout=TIMEOUT_MS)
        search_text(page, TEXT_QUERY)
        time.sleep(1.0)  # the thumbnails load
        save(page, out_dir / "app-text.png")

        page.get_by_role("tab", name="By sound").click()
        page.locator("#query-audio input[type=file]").set_input_files(str(sound))
        page.locator("#query-audio", has_text=" s").wait_for(timeout=TIMEOUT_MS)
        page.locator("#search-audio").click()
        page.locator("#status", has_text=sound.name).wait_for(timeout=TIMEOUT_MS)
        time.sleep(1.5)
        save(page, out_dir / "app-sound.png")

        # The sound's own file: all three heatmaps (picture, time, sound).
        page.locator("#results .thumbnail-item").first.click()
        for heatmap in ("spatial", "temporal", "audio"):
            page.locator(f"#heatmap-{heatmap} img").wait_for(timeout=TIMEOUT_MS)
        time.sleep(1.5)  # the player and images settle
        save(page, out_dir / "app-result.png", page.locator("#selection"))
        browser.close()


def record(out_dir: Path) -> None:
    """Write RECORD: the fingerprint of the checkpoint the demo indexed with, the queries, the date."""
    from vlsa.checkpoint import SHIPPED, fingerprint

    made = {"checkpoint": "vlsa/assets/real", "fingerprint": fingerprint(SHIPPED), "text_query": TEXT_QUERY,
            "sound_query": SOUND, "date": datetime.date.today().isoformat()}
    (out_dir / RECORD).write_text(json.dumps(made, indent=2) + "\n")
    print(f"{out_dir / RECORD}: {made['fingerprint']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="the demo folder (made on first use)")
    ap.add_argument("--out-dir", default="docs", type=Path)
    args = ap.parse_args()
    port = free_port()
    work = Path(tempfile.mkdtemp(prefix="vlsa-screenshot-"))
    with open(work / "demo.log", "wb") as out:
        proc = subprocess.Popen([str(VLSA_BIN), "demo", "--no-browser", "--dir", args.dir, "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_up(url, proc, work / "demo.log")
        take(url, args.out_dir, query_sound(work))
        record(args.out_dir)
    finally:
        stop_process(proc)


if __name__ == "__main__":
    main()
