"""Benchmark the search page as a person feels it: milliseconds from clicking Search to the results
drawn in a real browser (headless Debian chromium driven by Playwright), on the demo library.

    python bench/app_latency.py                          # demo library in a fresh temporary folder
    python bench/app_latency.py --dir /tmp/vlsa-demo --n 20 --windows 100000

Each start: `vlsa app --db DEMO.db --no-browser --port FREE`; the app is ready when GET / answers.
The page opens, and the clock (the page's own, `performance.now()`) starts at the click on Search
and stops at the first animation frame where the status names the new query and every result
thumbnail has loaded. Sound searches upload a shipped recording first (under a new name each time,
so each search is a new query) and time the click on "Search by sound" the same way.

The first search after a start is reported apart from the rest: one start begins with a text
search, a second with a sound search. Then N text and N sound searches give p50 and p95.
`--windows` (repeatable) adds a start on a copy of the demo catalog filled up to that many windows
with random vectors (a picture and a sound vector each, of files that do not exist: one that makes
the top 12 is drawn as a blank tile, with a warning in the log), to time text searches at that
size; from ANN_MIN_VECTORS windows the copy gets its approximate indexes (as `vlsa index` would
build them), so the app searches it as it would a library that large. For each: seconds from
starting the app to the first search's results drawn, and the app's resident memory (now and
its peak) after the searches. With --dir the grown copies stay there and a rerun reuses them.

The server side is timed apart, without the browser: the stages of a text search (encoding the
words, the exact top-k with its SQL, thumbnails and captions, the gallery writing its image
files) through the app's own context, p50 over N; what the browser's time adds on top is
gradio's round trip, fetching the images and drawing. And the first text and sound search of a
fresh process, with the context opened as `vlsa app` opens it (warmed up) and without the
warm-up ("cold"). Prints JSON (and writes it to --out).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo_start import VLSA_BIN, free_port, stop_process, wait_up  # noqa: E402 (bench/ is on sys.path)
from screenshot import ARGS as CHROMIUM_ARGS  # noqa: E402
from screenshot import CHROMIUM  # noqa: E402
from search import WINDOWS_PER_FILE, progress, unit_vectors  # noqa: E402

from app.demo import CATALOG, LIBRARY, prepare_demo, shipped_media  # noqa: E402

TIMEOUT_MS = 120_000
# The page's clock at the first frame where the status names the query and every thumbnail has
# loaded; null until then (Playwright polls it once an animation frame).
RENDERED = """([status]) => {
  const s = document.querySelector('#status');
  if (window.__clicked === undefined || !s || !s.innerText.includes(status)) return null;
  const images = [...document.querySelectorAll('#results img')];
  if (!images.length || !images.every(i => i.complete && i.naturalWidth > 0)) return null;
  return performance.now() - window.__clicked;
}"""
ARM = """(button) => { delete window.__clicked; document.querySelector(button).addEventListener(
  'click', () => { window.__clicked = performance.now(); }, {capture: true, once: true}); }"""


# --- the library -------------------------------------------------------------------------------


def captions(folder: Path) -> list[str]:
    """The demo clips' captions, then the shipped recordings': every one names something there."""
    manifests = [folder / LIBRARY / "manifest.jsonl", *([shipped_media() / "manifest.jsonl"] if shipped_media() else [])]
    return [json.loads(line)["text"] for m in manifests for line in m.read_text().splitlines()]


def sounds() -> list[Path]:
    """The shipped sound-only recordings (speech), the query sounds of the sound searches."""
    media = shipped_media()
    if media is None:
        raise SystemExit("this installation ships no recordings (vlsa/assets/media) to search with")
    return sorted(media.rglob("*.m4a"))


def grown_copy(db: Path, windows: int, out: Path) -> tuple[Path, dict]:
    """A copy of catalog `db` filled up to `windows` windows with random unit vectors (a picture
    and a sound vector each) of files that do not exist, as bench/search.py fills its catalog,
    with its approximate indexes from ANN_MIN_VECTORS windows; and how long each step took. A
    copy finished by an earlier run (its `.done` file beside it) is reused."""
    from catalog import ann
    from catalog.store import WINDOW_MODALITIES, Catalog, FileRecord

    done = out.with_name(out.name + ".done")
    if done.exists():
        return out, json.loads(done.read_text())
    made: dict = {"windows": windows}
    began = time.perf_counter()
    out.unlink(missing_ok=True)
    with sqlite3.connect(db) as source, sqlite3.connect(out) as target:
        source.backup(target)
    rng = np.random.default_rng(0)
    with Catalog(out) as catalog:
        dim, missing = catalog.settings.embed_dim, windows - catalog.stats()["windows"]
        files = -(-max(missing, 0) // WINDOWS_PER_FILE)
        for first in range(0, files, 50):  # 5,000 windows a transaction
            records = []
            for f in range(first, min(files, first + 50)):
                n = min(WINDOWS_PER_FILE, missing - f * WINDOWS_PER_FILE)
                records.append(FileRecord(f"/bench/{f // 100:04d}/file{f:06d}.mp4", 1, 1, duration=2.0 * n,
                                          has_video=True, has_audio=True,
                                          windows=[(2.0 * i, 2.0 * i + 2.0) for i in range(n)],
                                          vectors={m: unit_vectors(rng, n, dim) for m in WINDOW_MODALITIES}))
            catalog.write_files(records)
            if first % 20_000 == 0:
                progress(f"{out.name}: {first * WINDOWS_PER_FILE:,} of {missing:,} windows written")
        made["fill_s"] = round(time.perf_counter() - began, 1)
        for modality in WINDOW_MODALITIES:
            began = time.perf_counter()
            built = ann.update(catalog, modality)  # 'small' below ANN_MIN_VECTORS: the exact scan serves it
            made[f"index_{modality}"] = {"status": built, "s": round(time.perf_counter() - began, 1)}
            progress(f"{out.name}: {modality} index {built}")
    made["catalog_gb"] = round(out.stat().st_size / 2**30, 2)
    done.write_text(json.dumps(made))
    return out, made


def resident_gb(pid: int) -> dict:
    """A process's resident memory now and at its peak (VmRSS, VmHWM), in GB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {name: round(int(fields[key].split()[0]) / 2**20, 2) for name, key in (("rss_gb", "VmRSS"),
                                                                               ("peak_gb", "VmHWM"))}


# --- the browser -------------------------------------------------------------------------------


class Page:
    """One browser tab on a freshly started app."""

    def __init__(self, browser, db: Path, log: Path):
        port = free_port()
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        self.began = began = time.monotonic()
        with open(log, "wb") as out:
            self.proc = subprocess.Popen([str(VLSA_BIN), "app", "--db", str(db), "--no-browser", "--port", str(port)],
                                         stdout=out, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}/"
        wait_up(url, self.proc, log)
        self.ready_s = round(time.monotonic() - began, 2)
        self.page = browser.new_page(viewport={"width": 1400, "height": 1600})
        self.page.goto(url, timeout=TIMEOUT_MS)
        self.page.locator("#search-text").wait_for(timeout=TIMEOUT_MS)
        self.uploads = Path(tempfile.mkdtemp(prefix="vlsa-latency-"))
        self.searches = 0

    def _timed_click(self, button: str, status: str) -> float:
        self.page.evaluate(ARM, button)
        self.page.click(button)
        handle = self.page.wait_for_function(RENDERED, arg=[status], polling="raf", timeout=TIMEOUT_MS)
        return round(handle.json_value(), 1)

    def text_search(self, text: str) -> float:
        """Milliseconds from the click on Search to the results drawn."""
        self.searches += 1
        self.page.get_by_role("tab", name="By words").click()
        self.page.get_by_label("Describe what you are looking for").fill(text)
        return self._timed_click("#search-text", f"“{text}”")

    def sound_search(self, sound: Path) -> float:
        """Milliseconds from the click on "Search by sound" to the results drawn; the upload
        before it (a new file name each time) is not counted."""
        self.searches += 1
        upload = self.uploads / f"q{self.searches:03d}-{sound.name}"
        shutil.copyfile(sound, upload)
        self.page.get_by_role("tab", name="By sound").click()
        player = self.page.locator("#query-audio")
        if player.get_by_label("Clear").count():  # the previous query sound
            player.get_by_label("Clear").click()
        player.locator("input[type=file]").set_input_files(str(upload))
        player.get_by_label("Clear").wait_for(timeout=TIMEOUT_MS)  # shown once the upload is the value
        return self._timed_click("#search-audio", f"the sound {upload.name}")

    def close(self) -> None:
        self.page.close()
        stop_process(self.proc)
        shutil.rmtree(self.uploads, ignore_errors=True)


def percentiles(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1), "max_ms": round(max(ms), 1)}


@contextlib.contextmanager
def started(browser, db: Path, log: Path) -> Iterator[Page]:
    page = Page(browser, db, log)
    try:
        yield page
    finally:
        page.close()


def browser_runs(db: Path, n: int, texts: list[str], queries: list[Path], scratch: Path,
                 grown: list[Path]) -> dict:
    """Starts: text first, sound first, then one on each grown catalog."""
    from playwright.sync_api import sync_playwright

    def later_texts(page: Page) -> dict:  # texts[0] was the first search
        return percentiles([page.text_search(texts[1 + i % (len(texts) - 1)]) for i in range(n)])

    out: dict = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            with started(browser, db, scratch / "text-first.log") as page:
                out["ready_s"] = page.ready_s
                out["first_text_ms"] = page.text_search(texts[0])
                out["text"] = later_texts(page)
                out["sound"] = percentiles([page.sound_search(queries[i % len(queries)]) for i in range(n)])
            with started(browser, db, scratch / "sound-first.log") as page:
                out["first_sound_ms"] = page.sound_search(queries[0])
            for catalog in grown:
                with started(browser, catalog, scratch / f"{catalog.stem}.log") as page:
                    first = page.text_search(texts[0])
                    answered = round(time.monotonic() - page.began, 2)
                    out[catalog.stem] = {"ready_s": page.ready_s, "first_text_ms": first,
                                         "start_to_first_answer_s": answered, "text": later_texts(page),
                                         "app_memory": resident_gb(page.proc.pid)}
                    progress(f"{catalog.stem}: {out[catalog.stem]}")
        finally:
            browser.close()
    return out


# --- the server side ---------------------------------------------------------------------------


def server_breakdown(db: Path, n: int, texts: list[str], workdir: Path) -> dict:
    """Milliseconds per stage of a text search, p50 over n searches, through the app's context
    after its start-up warm-up: the stages of callbacks.search_text, then the page's gallery
    turning the thumbnails into image files (gradio does that for every search's results)."""
    from app import callbacks
    from app.cli import open_app
    from catalog.store import WINDOW_MODALITIES

    workdir.mkdir()
    ctx, page = open_app(str(db), workdir=str(workdir))
    gallery = next(b for b in page.blocks.values() if getattr(b, "elem_id", None) == "results")
    stages: dict[str, list[float]] = {s: [] for s in ("encode_text", "top_k_and_sql", "thumbnails_and_captions",
                                                       "gallery_image_files")}

    def one(ctx, text: str) -> None:
        clock = time.perf_counter()

        def lap(stage: str) -> None:
            nonlocal clock
            now = time.perf_counter()
            stages[stage].append((now - clock) * 1e3)
            clock = now

        vector = ctx.model.embed_text([text])[0].numpy()
        lap("encode_text")
        hits = ctx.service.search_vector(vector, **callbacks.search_options("any", None, "any length", True, ctx.top))
        lap("top_k_and_sql")
        images, *_ = callbacks.results(ctx, hits, {m: vector for m in WINDOW_MODALITIES}, text, clock)
        lap("thumbnails_and_captions")
        gallery.postprocess(images)
        lap("gallery_image_files")

    for i in range(n):
        ctx.run(one, texts[1 + i % (len(texts) - 1)])
    ctx.thread.close()
    return {stage: round(float(np.percentile(ms, 50)), 1) for stage, ms in stages.items()}


# The first text and sound search of a fresh process, on the callbacks, with the context as
# `vlsa app` opens it (open_app: warmed up) or as it was opened before the warm-up (open_context).
FIRST_SEARCHES = """
import json, sys, time
from app.cli import make_workdir, open_app
workdir = make_workdir()
from app import callbacks
from app.context import open_context
db, text, sound, how = sys.argv[1:]
ctx = open_app(db, workdir=workdir)[0] if how == "warmed" else open_context(db, workdir=workdir)
ms = {}
for kind, search, query in (("text", callbacks.search_text, text), ("sound", callbacks.search_audio, sound)):
    began = time.perf_counter()
    ctx.run(search, query)
    ms[kind] = round((time.perf_counter() - began) * 1e3, 1)
print(json.dumps(ms))
"""


def first_searches(db: Path, text: str, sound: Path) -> dict:
    """Server milliseconds of the first text and sound search in a fresh process, cold and warmed."""
    run = [sys.executable, "-c", FIRST_SEARCHES, str(db), text, str(sound)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    return {how: json.loads(subprocess.run([*run, how], check=True, capture_output=True, text=True,
                                           env=env).stdout.splitlines()[-1])
            for how in ("cold", "warmed")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, help="Demo folder, and the grown copies' [default: a fresh temporary "
                        "one, removed after]; a rerun reuses what is there.")
    parser.add_argument("--n", type=int, default=20, help="Searches of each kind after the first.")
    parser.add_argument("--windows", type=int, action="append", default=[],
                        help="Also time text searches on a copy grown to this many windows (repeatable).")
    parser.add_argument("--out", type=Path, help="Write the JSON here too.")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="vlsa-latency-bench-"))
    try:
        folder = args.dir or scratch / "demo"
        prepare_demo(folder)
        db = folder / CATALOG
        texts = captions(folder)
        made = [grown_copy(db, w, (args.dir or scratch) / f"grown-{w}.db") for w in args.windows]
        grown = [path for path, _ in made]
        result = {"cpu_count": os.cpu_count(), "n": args.n, "load_average": os.getloadavg(),
                  "grown": {path.stem: steps for path, steps in made}}
        result["browser"] = browser_runs(db, args.n, texts, sounds(), scratch, grown)
        result["server_text_p50_ms"] = server_breakdown(db, args.n, texts, scratch / "work")
        result["server_first_search_ms"] = first_searches(db, texts[0], sounds()[0])
        for path in grown:
            result[f"server_text_p50_ms_{path.stem}"] = server_breakdown(path, args.n, texts, scratch / f"work-{path.stem}")
            result[f"server_first_search_ms_{path.stem}"] = first_searches(path, texts[0], sounds()[0])
        result["load_average_after"] = os.getloadavg()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
