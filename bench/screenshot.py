"""The README's screenshot: `vlsa demo` in headless chromium, a caption typed, the first result
selected, its heatmaps drawn.

    python bench/screenshot.py --dir /tmp/vlsa-demo --out docs/app.png

Needs Debian's chromium (`make browser`) and Playwright (a dev dependency).
"""

from __future__ import annotations

import argparse
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

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", required=True, help="the demo folder (made on first use)")
    ap.add_argument("--out", default="docs/app.png")
    ap.add_argument("--clip", type=int, default=0, help="which demo clip's caption to type")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="vlsa-screenshot-")) / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(VLSA_BIN), "demo", "--no-browser", "--dir", args.dir, "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_up(url, proc, log)
        rows = [json.loads(line) for line in (Path(args.dir) / "library" / "manifest.jsonl").open()]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            page.goto(url, timeout=60_000)
            query = page.get_by_label("Describe what you are looking for")
            query.fill(rows[args.clip]["text"])
            query.press("Enter")
            page.locator("#results img").first.wait_for(timeout=60_000)
            page.locator("#results img").first.click()
            page.locator("#heatmap-spatial img").wait_for(timeout=60_000)
            page.locator("#heatmap-audio img").wait_for(timeout=60_000)
            time.sleep(1.0)  # let the player and images settle
            page.screenshot(path=args.out, full_page=True)
            browser.close()
        print(f"{args.out}: {rows[args.clip]['text']!r}")
    finally:
        stop_process(proc)


if __name__ == "__main__":
    main()
