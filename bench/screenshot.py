"""The app's screenshots in docs/: `vlsa demo` in headless chromium, one run for all three.

    python bench/screenshot.py --dir /tmp/vlsa-demo --out-dir docs

writes app-text.png (a text search: the results with their captions), app-sound.png (a search
with a sound of the demo library: the query's player and the results) and app-result.png (a
selected result: the clip, what it is, and its heatmaps with their axes and legends). Each is cut
to the part of the page it shows and saved with a palette, so it stays small.

Needs Debian's chromium (`make browser`) and Playwright (a dev dependency).
"""

from __future__ import annotations

import argparse
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
TEXT_QUERY = "a crowd cheers"  # one of the page's examples, answered by shipped real media
SOUND = "vlsa/assets/media/clip/00489_a_car_horn_honks.mp4"  # its sound is the query (the file is in the demo library)
COLOURS = 128  # palette size of the saved PNGs: the pages are mostly flat colour


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

    out = folder / "car_horn.wav"
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

        page.locator("#results .thumbnail-item").first.click()
        page.locator("#heatmap-audio img").wait_for(timeout=TIMEOUT_MS)
        time.sleep(1.5)  # the player and images settle
        save(page, out_dir / "app-result.png", page.locator("#selection"))

        page.get_by_role("tab", name="By sound").click()
        page.locator("#query-audio input[type=file]").set_input_files(str(sound))
        page.locator("#query-audio", has_text=" s").wait_for(timeout=TIMEOUT_MS)
        page.locator("#search-audio").click()
        page.locator("#status", has_text=sound.name).wait_for(timeout=TIMEOUT_MS)
        time.sleep(1.5)
        save(page, out_dir / "app-sound.png")
        browser.close()


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
    finally:
        stop_process(proc)


if __name__ == "__main__":
    main()
