"""The whole page in a real browser: Debian's chromium driven by Playwright (`make browser`
installs chromium with apt; Playwright's own browser download is never used).

Opens the app, types a caption, waits for the result thumbnails, selects the first, and checks
that the heatmaps and a playing-ready video appear. The screenshot goes to tests/artifacts/app.png.
"""

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT_MS = 60_000  # a search or a selection on a busy 2-core machine: seconds, not a minute


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium: run `make browser` (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_browser_search_select_shows_heatmaps_and_player(browser, running_app, app_library):
    page = browser.new_page(viewport={"width": 1400, "height": 1600})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(running_app.url + "/", timeout=TIMEOUT_MS)

    query = page.get_by_label("Describe what you are looking for")
    query.fill(app_library.captions[0])
    query.press("Enter")
    thumbnails = page.locator("#results img")
    thumbnails.first.wait_for(timeout=TIMEOUT_MS)
    assert thumbnails.count() == len(app_library.clips)
    assert app_library.clips[0].name in page.locator("#results").inner_text()  # best result first

    thumbnails.first.click()
    page.locator("#heatmap-spatial img").wait_for(timeout=TIMEOUT_MS)
    page.locator("#heatmap-temporal img").wait_for(timeout=TIMEOUT_MS)
    page.locator("#heatmap-audio img").wait_for(timeout=TIMEOUT_MS)
    # The clip is an H.264 mp4 the browser can decode: its metadata loads and it lasts the window.
    page.wait_for_function("() => { const v = document.querySelector('#player-video video');"
                           " return v && v.readyState >= 1 && v.duration > 0; }", timeout=TIMEOUT_MS)
    assert page.evaluate("document.querySelector('#player-video video').duration") == pytest.approx(2.0, abs=0.1)
    assert app_library.clips[0].name in page.locator("#details").inner_text()

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)
    assert not errors, errors
    page.close()
